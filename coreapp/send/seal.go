package send

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/message"
	"github.com/openwaba/openwaba/chatd/clientproto"
	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/coreapp/egress"
	"github.com/openwaba/openwaba/coreapp/medialib"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// maxRetry is the highest retry count answered; a peer that still cannot
// decrypt after it gets the message marked failed (package clientproto).
const maxRetry = clientproto.MaxRetries

// bundles is the result of fetching the bundles of peers without a session.
type bundles struct {
	found   map[string]*chatdv1.PreKeyBundle
	unknown map[string]bool // not on the network: the message fails
	later   map[string]bool // no keys yet, rate-limited, or offline: try again later
}

// fetchBundles asks chatd for the bundles of peers (a few at a time).
func (s *Sender) fetchBundles(ctx context.Context, peers []string) bundles {
	b := bundles{found: map[string]*chatdv1.PreKeyBundle{}, unknown: map[string]bool{}, later: map[string]bool{}}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, p := range peers {
		g.Go(func() error {
			ictx, cancel := context.WithTimeout(gctx, 15*time.Second)
			defer cancel()
			res, err := s.sess.IQ(ictx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET,
				Payload: &chatdv1.IQ_PrekeyFetch{PrekeyFetch: &chatdv1.PreKeyFetch{Number: p}}})
			mu.Lock()
			defer mu.Unlock()
			var iqErr *session.IQError
			switch {
			case err == nil && res.GetPrekeyBundle() != nil:
				b.found[p] = res.GetPrekeyBundle()
			case errors.As(err, &iqErr) && iqErr.Code == 404:
				b.unknown[p] = true
			default:
				s.log.Debug("no bundle yet", "peer", p, "err", err)
				b.later[p] = true
			}
			return nil
		})
	}
	g.Wait()
	return b
}

// seal fills the payload of the messages without one: their envelopes and
// the advanced sessions are stored in one transaction before anything is
// sent, so a resend after a crash sends the same bytes. It returns the
// messages ready to send; messages to numbers that are not on the network
// are marked failed, and those whose peer has no keys yet wait for the next
// scan.
func (s *Sender) seal(ctx context.Context, p prepped) ([]Message, error) {
	if p.err != nil {
		return nil, p.err
	}
	msgs, prepared, mediaFailed := p.msgs, p.prepared, p.failed
	var peers []string
	need := false
	for _, m := range msgs {
		if m.Payload == nil {
			need = true
			peers = append(peers, m.Peer)
		}
	}
	if !need {
		return msgs, nil
	}
	missing, err := s.sealer.Missing(ctx, s.accountID, peers)
	if err != nil {
		return nil, err
	}
	bs := s.fetchBundles(ctx, missing)
	var failed []Message
	payloads := make([][]byte, len(msgs))
	skip := make([]bool, len(msgs))
	enqueued := false
	err = s.committer.Do(ctx, func(tx *sql.Tx) error {
		failed, enqueued = failed[:0], false
		clear(skip)
		// Lock the rows; another process may have sealed some (a previous
		// owner of the slot): its envelope is the one to send.
		var ids []any
		for _, m := range msgs {
			if m.Payload == nil {
				ids = append(ids, m.ID)
			}
		}
		rows, err := tx.Query("SELECT id, payload, status FROM outbound_messages WHERE account_id = ? AND id IN ("+db.Placeholders(len(ids))+") FOR UPDATE",
			append([]any{s.accountID}, ids...)...)
		if err != nil {
			return err
		}
		stored := map[string][]byte{}
		dead := map[string]bool{} // failed before it was sent: never send it
		for rows.Next() {
			var id string
			var p []byte
			var status int
			if err := rows.Scan(&id, &p, &status); err != nil {
				rows.Close()
				return err
			}
			stored[id] = p
			dead[id] = status == StatusFailed
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		t, err := s.sealer.Begin(ctx, tx, s.accountID)
		if err != nil {
			return err
		}
		if err := t.Preload(ctx, peers); err != nil {
			return err
		}
		var events []webhook.Event
		for i, m := range msgs {
			switch {
			case m.Payload != nil:
				continue
			case dead[m.ID]:
				skip[i] = true
				continue
			case stored[m.ID] != nil:
				payloads[i] = stored[m.ID]
				continue
			case mediaFailed[i] != nil:
				skip[i] = true
				continue
			case p.waiting[i] || s.blockedBy(m):
				// Waits for its file, or behind an earlier message to the
				// same customer that does: a later scan sends them in order.
				skip[i] = true
				continue
			case bs.unknown[m.Peer]:
				failed = append(failed, m)
				skip[i] = true
				continue
			case bs.later[m.Peer]:
				// Keep the uploaded file for the next attempt.
				skip[i] = true
				if prepared[i] {
					if _, err := tx.Exec("UPDATE outbound_messages SET content = ? WHERE account_id = ? AND id = ?", m.Content, s.accountID, m.ID); err != nil {
						return err
					}
				}
				continue
			}
			sealed, err := t.Seal(ctx, m.Peer, m.Content, bs.found[m.Peer])
			if err != nil {
				return fmt.Errorf("seal %s: %w", m.ID, err)
			}
			if sealed.IdentityChanged != "" {
				ev, err := s.identityEvent(ctx, m.Peer, m.ID, sealed.IdentityChanged)
				if err != nil {
					return err
				}
				events = append(events, ev...)
			}
			b, err := proto.Marshal(sealed.Enc)
			if err != nil {
				return err
			}
			if prepared[i] {
				_, err = tx.Exec("UPDATE outbound_messages SET payload = ?, content = ? WHERE account_id = ? AND id = ?", b, m.Content, s.accountID, m.ID)
			} else {
				_, err = tx.Exec("UPDATE outbound_messages SET payload = ? WHERE account_id = ? AND id = ?", b, s.accountID, m.ID)
			}
			if err != nil {
				return err
			}
			payloads[i] = b
		}
		if err := t.Commit(ctx); err != nil {
			return err
		}
		enqueued = len(events) > 0
		return webhook.Enqueue(tx, events...)
	})
	if err != nil {
		return nil, err
	}
	if enqueued {
		s.store.webhookWake()
	}
	for _, m := range failed {
		s.store.Fail(s.accountID, m.Peer, []string{m.ID}, time.Now().Unix(), webhook.Err(errcode.UserNotValid, ""), func(error) {})
	}
	for i, err := range mediaFailed {
		m := msgs[i]
		if payloads[i] != nil {
			continue // sealed by an earlier owner of the slot
		}
		var ce *errcode.Error
		if errors.As(err, &ce) { // refused before its media (admit)
			s.store.Fail(s.accountID, m.Peer, []string{m.ID}, time.Now().Unix(), webhook.Err(ce.Code, ce.Details), func(error) {})
			continue
		}
		why := egress.Describe(err)
		s.log.Warn("media message cannot be sent", "id", m.ID, "err", why)
		s.store.Fail(s.accountID, m.Peer, []string{m.ID}, time.Now().Unix(), webhook.Err(errcode.MediaDownload, why), func(error) {})
	}
	out := msgs[:0:0]
	for i, m := range msgs {
		if skip[i] {
			continue
		}
		if payloads[i] != nil {
			m.Payload = payloads[i]
		}
		out = append(out, m)
	}
	return out, nil
}

// pendingMedia reports whether c has a file (a media message's, an
// interactive header's) not prepared yet.
func pendingMedia(c *messagev1.Content) bool {
	for _, mp := range message.MediaOf(c) {
		if medialib.Pending(*mp) {
			return true
		}
	}
	return false
}

// mediaWorkers bounds the media files prepared at once by one sender.
const mediaWorkers = 32

// prepped is a chunk of messages whose media files were prepared.
type prepped struct {
	msgs     []Message
	prepared map[int]bool  // Content replaced by what travels end to end
	failed   map[int]error // media that cannot be sent: the message fails
	waiting  map[int]bool  // media not prepared yet: sent by a later scan
	err      error         // sending pauses
}

// prepare readies a copy of msgs: templates hydrated and the window
// checked (admit), then the media prepared.
func (s *Sender) prepare(ctx context.Context, msgs []Message) prepped {
	p := prepped{msgs: slices.Clone(msgs)}
	hydrated, refused, err := s.admit(ctx, p.msgs)
	if err != nil {
		p.err = err
		return p
	}
	p.prepared, p.failed, p.waiting, p.err = s.prepareMedia(ctx, p.msgs, refused)
	if p.err != nil {
		return p
	}
	for i := range hydrated {
		p.prepared[i] = true
	}
	for i, err := range refused {
		p.failed[i] = err
	}
	return p
}

// prepareMedia encrypts and uploads the files of the media messages among
// msgs that are not sealed yet, a few at once, and replaces their Content
// with what travels end to end. prepared marks the messages whose Content
// changed (stored with the envelope); mediaFailed holds the messages that
// cannot be sent (they are marked failed). A file that fails for a reason
// that may pass (the media server cannot be reached) holds its message and
// the later ones to the same customer (blocked) until a later attempt;
// after mediaGiveUp the message fails. Other messages go on. An error
// pauses sending.
func (s *Sender) prepareMedia(ctx context.Context, msgs []Message, skip map[int]error) (prepared map[int]bool, mediaFailed map[int]error, waiting map[int]bool, err error) {
	prepared, mediaFailed, waiting = map[int]bool{}, map[int]error{}, map[int]bool{}
	type job struct {
		i int
		c *messagev1.Content
	}
	var jobs []job
	for i, m := range msgs {
		if m.Payload != nil || skip[i] != nil {
			continue
		}
		c := new(messagev1.Content)
		if err := proto.Unmarshal(m.Content, c); err != nil {
			return nil, nil, nil, fmt.Errorf("stored content of %s: %w", m.ID, err)
		}
		if !pendingMedia(c) {
			continue
		}
		waiting[i] = true // until prepared or failed
		if s.blockedBy(m) {
			continue
		}
		if s.media == nil || s.net == nil {
			return nil, nil, nil, errors.New("media sending is not configured")
		}
		jobs = append(jobs, job{i, c})
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, mediaWorkers)
	for _, j := range jobs {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			m := msgs[j.i]
			var err error
			for _, mp := range message.MediaOf(j.c) {
				if !medialib.Pending(*mp) {
					continue
				}
				var md *messagev1.Media
				if md, err = s.media.Prepare(ctx, s.accountID, *mp, s.net); err != nil {
					break
				}
				*mp = md
			}
			var b []byte
			if err == nil {
				b, err = proto.Marshal(j.c)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				msgs[j.i].Content, prepared[j.i] = b, true
				delete(waiting, j.i)
				s.unblock(m, nil)
			case errors.Is(err, medialib.ErrSend):
				mediaFailed[j.i] = err
				delete(waiting, j.i)
				s.unblock(m, nil)
			case ctx.Err() != nil:
			default:
				if first := s.block(m); time.Since(first) > mediaGiveUp {
					mediaFailed[j.i] = fmt.Errorf("%w: %v", medialib.ErrSend, err)
					delete(waiting, j.i)
					s.unblock(m, nil)
					return
				}
				s.log.Warn("media file not sent yet; trying again", "id", m.ID, "err", err)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	return prepared, mediaFailed, waiting, nil
}

// mediaGiveUp is how long a media message waits for its file to be
// prepared (the media server to be reachable) before it fails.
const mediaGiveUp = 10 * time.Minute

// block records that m waits for its file; it returns when it first did.
func (s *Sender) block(m Message) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blocked[m.Peer]
	if !ok || b.id != m.ID {
		b = blocker{id: m.ID, since: time.Now()}
		s.blocked[m.Peer] = b
	}
	return b.since
}

// unblock lets the messages after m to its customer go.
func (s *Sender) unblock(m Message, _ error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.blocked[m.Peer]; ok && b.id == m.ID {
		delete(s.blocked, m.Peer)
	}
}

// blockedBy reports whether m must wait behind an earlier message to its
// customer whose file is not prepared yet.
func (s *Sender) blockedBy(m Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blocked[m.Peer]
	return ok && b.id != m.ID
}

// blocker is a media message that holds the later messages to its customer.
type blocker struct {
	id    string
	since time.Time
}

// identityEvent returns the user_identity_changed webhook when the account
// wants security notifications.
func (s *Sender) identityEvent(ctx context.Context, peer, msgID, fingerprint string) ([]webhook.Event, error) {
	app, err := s.store.settings.Get(ctx, s.accountID)
	if err != nil {
		return nil, err
	}
	s.log.Info("customer's identity key changed; trusted the new one", "customer", peer)
	if !app.ShowSecurityNotifications {
		return nil, nil
	}
	return []webhook.Event{webhook.IdentityChangedEvent(s.accountID, peer, "sys."+msgID, fingerprint, time.Now().Unix())}, nil
}

// answerRetries encrypts messages again for peers that could not decrypt
// them: with the current session on the first retry, with a session rebuilt
// from a new bundle from the second on. The new envelope replaces the stored
// one before it is sent with the retry count.
func (s *Sender) answerRetries(ctx context.Context, rs []retry) error {
	var resend []Message
	for _, r := range rs {
		var m Message
		var status int
		err := s.db.QueryRowContext(ctx, "SELECT seq, id, peer, content, status FROM outbound_messages WHERE account_id = ? AND id = ?", s.accountID, r.id).
			Scan(&m.Seq, &m.ID, &m.Peer, &m.Content, &status)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (m.Peer != r.peer || status >= StatusDelivered && status != StatusFailed)) {
			continue // not ours, someone else's, or already delivered
		}
		if err != nil {
			return err
		}
		if r.count > maxRetry {
			s.store.Fail(s.accountID, m.Peer, []string{m.ID}, time.Now().Unix(), webhook.Err(errcode.GenericStatus, "the recipient could not decrypt the message"), func(error) {})
			continue
		}
		m.Shard, m.retry = s.shard, r.count
		if r.count >= clientproto.RebuildFrom {
			// Rebuild: drop the session so sealing starts from a new bundle.
			if err := s.committer.Do(ctx, func(tx *sql.Tx) error {
				t, err := s.sealer.Begin(ctx, tx, s.accountID)
				if err != nil {
					return err
				}
				if err := t.Forget(ctx, m.Peer); err != nil {
					return err
				}
				return t.Commit(ctx)
			}); err != nil {
				return err
			}
		}
		resend = append(resend, m) // Payload nil: sealed again
	}
	if len(resend) == 0 {
		return nil
	}
	s.log.Info("encrypting messages again for a peer that could not decrypt them", "messages", len(resend), "peer", resend[0].Peer)
	s.mu.Lock()
	for _, m := range resend {
		delete(s.inflight, m.ID)
	}
	s.mu.Unlock()
	return s.resealAndSend(ctx, resend)
}

// resealAndSend replaces the stored envelopes of msgs and sends them.
func (s *Sender) resealAndSend(ctx context.Context, msgs []Message) error {
	ids := make([]any, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	if _, err := s.db.ExecContext(ctx, "UPDATE outbound_messages SET payload = NULL WHERE account_id = ? AND id IN ("+db.Placeholders(len(ids))+")",
		append([]any{s.accountID}, ids...)...); err != nil {
		return err
	}
	return s.sendMessages(ctx, msgs)
}
