package send

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// windowLength is the customer-service window: a business may send
// free-form messages for 24 hours after the customer last wrote.
const windowLength = 24 * time.Hour

// admit readies the unsealed messages of a chunk for sealing, before their
// files are prepared: a template message is hydrated from the number's pack
// (its Content replaced: hydrated marks it); a free-form message to a
// customer whose window is closed fails at once with 470, without spending
// one of the customer's pre-keys on a message the network refuses. The
// window is checked where the stored contacts say it may be closed (the
// customer never wrote, or wrote more than 24 hours ago), and then asked of
// chatd, which decides (a message from the customer may be on its way to
// this node). refused holds the messages that fail and why (an
// *errcode.Error). An error (the pack could not be read) pauses sending.
func (s *Sender) admit(ctx context.Context, msgs []Message) (hydrated map[int]bool, refused map[int]error, err error) {
	hydrated, refused = map[int]bool{}, map[int]error{}
	check := s.sess.Success().GetWindowEnforced()
	var freeForm []int
	for i, m := range msgs {
		if m.Payload != nil {
			continue
		}
		c := new(messagev1.Content)
		if err := proto.Unmarshal(m.Content, c); err != nil {
			return nil, nil, fmt.Errorf("stored content of %s: %w", m.ID, err)
		}
		t := c.GetTemplate()
		if t == nil {
			if check {
				freeForm = append(freeForm, i)
			}
			continue
		}
		if t.Hydrated != nil {
			continue // hydrated by an earlier attempt
		}
		if s.templates == nil {
			refused[i] = errcode.New(errcode.TemplateFetchFailed, "this node cannot read template packs")
			continue
		}
		err := s.templates.Hydrate(ctx, s.accountID, s.sess.IQ, t)
		var ce *errcode.Error
		switch {
		case errors.As(err, &ce):
			s.log.Info("template message refused", "id", m.ID, "code", int(ce.Code), "details", ce.Details)
			refused[i] = ce
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("template pack: %w", err)
		}
		b, err := proto.Marshal(c)
		if err != nil {
			return nil, nil, err
		}
		msgs[i].Content, hydrated[i] = b, true
	}
	if len(freeForm) == 0 {
		return hydrated, refused, nil
	}
	peers := map[string]bool{}
	args := []any{s.accountID}
	for _, i := range freeForm {
		if p := msgs[i].Peer; !peers[p] {
			peers[p] = true
			args = append(args, p)
		}
	}
	rows, err := s.db.QueryContext(ctx, "SELECT wa_id, last_inbound_at FROM contacts WHERE account_id = ? AND wa_id IN ("+db.Placeholders(len(peers))+")", args...)
	if err != nil {
		return nil, nil, fmt.Errorf("read the customers' windows: %w", err)
	}
	defer rows.Close()
	last := map[string]int64{}
	for rows.Next() {
		var p string
		var t int64
		if err := rows.Scan(&p, &t); err != nil {
			return nil, nil, err
		}
		last[p] = t
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	// Ask chatd about the customers whose window the contacts say is
	// closed.
	open := time.Now().Add(-windowLength).UnixMilli()
	var ask []string
	for p := range peers {
		if last[p] < open {
			ask = append(ask, p)
		}
	}
	if len(ask) == 0 {
		return hydrated, refused, nil
	}
	ictx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	res, err := s.sess.IQ(ictx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_WindowQuery{WindowQuery: &chatdv1.WindowQuery{Numbers: ask}}})
	if err != nil {
		return nil, nil, fmt.Errorf("window query: %w", err)
	}
	closed := map[string]bool{}
	for _, st := range res.GetWindowStates().GetStates() {
		// A number that is not on the network fails as such later (1013).
		closed[st.Number] = st.Registered && !st.Open
	}
	for _, i := range freeForm {
		if closed[msgs[i].Peer] {
			refused[i] = errcode.New(errcode.ReEngagement, "")
		}
	}
	return hydrated, refused, nil
}
