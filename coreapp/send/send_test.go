package send

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/coreapp/account"
	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

func newStore(t *testing.T) (*Store, *sql.DB) {
	t.Helper()
	return newStoreWith(t, func(*Store) {})
}

// newStoreWith is newStore with a change to the Store before it runs.
func newStoreWith(t *testing.T, change func(*Store)) (*Store, *sql.DB) {
	t.Helper()
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d)
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"message":{"sent":true,"delivered":true,"read":true}}}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	s := NewStore(d, st, slog.New(slog.DiscardHandler), func() {})
	change(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, d
}

func text(body string) *messagev1.Content {
	return &messagev1.Content{Body: &messagev1.Content_Text{Text: &messagev1.Text{Body: body}}}
}

var acct = account.Account{ID: 1, WaID: "15550100", State: account.StateVerified, Shards: 1}

func TestAcceptDeduplicatesRequestIDs(t *testing.T) {
	s, d := newStore(t)
	// Concurrent sends, many sharing request ids, land in shared batches.
	ids := make([]string, 40)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			m, _, err := s.Accept(t.Context(), acct, []string{"req-a", "req-b", ""}[i%3], "15551234567", text("x"), "")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = m.ID
		})
	}
	wg.Wait()
	byReq := map[string]map[string]bool{}
	for i, id := range ids {
		r := []string{"req-a", "req-b", ""}[i%3]
		if byReq[r] == nil {
			byReq[r] = map[string]bool{}
		}
		byReq[r][id] = true
	}
	if len(byReq["req-a"]) != 1 || len(byReq["req-b"]) != 1 {
		t.Errorf("ids per request id: req-a %d, req-b %d; want one each", len(byReq["req-a"]), len(byReq["req-b"]))
	}
	if len(byReq[""]) != 13 {
		t.Errorf("sends without a request id got %d distinct ids, want 13", len(byReq[""]))
	}
	var n int
	if err := d.QueryRow("SELECT COUNT(*) FROM outbound_messages").Scan(&n); err != nil || n != 15 {
		t.Errorf("stored messages = %d (%v), want 15", n, err)
	}
}

// TestAcceptRefusesAReusedRequestID: the same request id with another
// recipient or content is a conflict, never the first message's id, in one
// batch or across batches; the same request gets the first id again, also
// after the stored content was replaced by the sending.
func TestAcceptRefusesAReusedRequestID(t *testing.T) {
	s, d := newStore(t)
	ctx := t.Context()
	first, dup, err := s.Accept(ctx, acct, "req-1", "15551234567", text("hello"), "")
	if err != nil || dup {
		t.Fatal(err, dup)
	}
	again, dup, err := s.Accept(ctx, acct, "req-1", "15551234567", text("hello"), "")
	if err != nil || !dup || again.ID != first.ID {
		t.Fatalf("same request = %+v, %v, %v; want the first id", again, dup, err)
	}
	for _, c := range []struct {
		to   string
		body string
	}{{"15551234567", "hello!"}, {"15557654321", "hello"}} {
		if _, _, err := s.Accept(ctx, acct, "req-1", c.to, text(c.body), ""); !errors.Is(err, ErrRequestConflict) {
			t.Errorf("request id reused for %s %q = %v, want ErrRequestConflict", c.to, c.body, err)
		}
	}
	// The sender rewrites the content (media are prepared); the hash is of
	// the request, so a retry still matches.
	if _, err := d.Exec("UPDATE outbound_messages SET content = ? WHERE id = ?", []byte("rewritten"), first.ID); err != nil {
		t.Fatal(err)
	}
	if again, dup, err := s.Accept(ctx, acct, "req-1", "15551234567", text("hello"), ""); err != nil || !dup || again.ID != first.ID {
		t.Fatalf("retry after the content changed = %+v, %v, %v", again, dup, err)
	}
	// Within one batch: concurrent sends of two bodies under one id.
	var wg sync.WaitGroup
	var conflicts, oks atomic.Int32
	for i := range 20 {
		wg.Go(func() {
			_, _, err := s.Accept(ctx, acct, "req-2", "15551234567", text([]string{"a", "b"}[i%2]), "")
			switch {
			case errors.Is(err, ErrRequestConflict):
				conflicts.Add(1)
			case err == nil:
				oks.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if oks.Load() != 10 || conflicts.Load() != 10 {
		t.Errorf("20 sends of two bodies under one id: %d accepted, %d conflicts; want 10 and 10", oks.Load(), conflicts.Load())
	}
}

func advance(t *testing.T, s *Store, peer, id string, status int) {
	t.Helper()
	ch := make(chan error, 1)
	s.Advance(1, peer, []string{id}, status, 100, func(err error) { ch <- err })
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
}

func statusOf(t *testing.T, d *sql.DB, id string) int {
	t.Helper()
	var st int
	if err := d.QueryRow("SELECT status FROM outbound_messages WHERE id = ?", id).Scan(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func webhookStatuses(t *testing.T, d *sql.DB) int {
	t.Helper()
	var n int
	if err := d.QueryRow("SELECT COUNT(*) FROM webhook_events WHERE kind = ?", webhook.KindStatus).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTransitionsOnlyMoveForward(t *testing.T) {
	s, d := newStore(t)
	m, _, err := s.Accept(t.Context(), acct, "", "15551234567", text("x"), "")
	if err != nil {
		t.Fatal(err)
	}
	advance(t, s, "", m.ID, StatusSent)
	advance(t, s, "15551234567", m.ID, StatusRead)
	advance(t, s, "15551234567", m.ID, StatusDelivered) // late: ignored
	advance(t, s, "15559999999", m.ID, StatusRead)      // from someone else: ignored
	if got := statusOf(t, d, m.ID); got != StatusRead {
		t.Errorf("status = %d, want read", got)
	}
	if n := webhookStatuses(t, d); n != 2 {
		t.Errorf("status webhooks = %d, want 2 (sent, read)", n)
	}
	ch := make(chan error, 1)
	s.Fail(1, "", []string{m.ID}, 100, webhook.Err(errcode.MessageExpired, ""), func(err error) { ch <- err })
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
	if got := statusOf(t, d, m.ID); got != StatusRead {
		t.Errorf("a delivered message was marked failed (status %d)", got)
	}
}

func TestFailRecordsTheError(t *testing.T) {
	s, d := newStore(t)
	m, _, err := s.Accept(t.Context(), acct, "", "15551234567", text("x"), "")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	s.Fail(1, "", []string{m.ID}, 100, webhook.Err(errcode.UserNotValid, ""), func(err error) { ch <- err })
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
	var st, code int
	if err := d.QueryRow("SELECT status, error_code FROM outbound_messages WHERE id = ?", m.ID).Scan(&st, &code); err != nil {
		t.Fatal(err)
	}
	if st != StatusFailed || code != 1013 {
		t.Errorf("status, error = %d, %d; want failed, 1013", st, code)
	}
	var payload string
	if err := d.QueryRow("SELECT payload FROM webhook_events").Scan(&payload); err != nil {
		t.Fatal(err)
	}
	want := `{"id":"` + m.ID + `","recipient_id":"15551234567","status":"failed","timestamp":"100","errors":[{"code":1013,"title":"User is not valid"}]}`
	if payload != want {
		t.Errorf("failed webhook =\n%s\nwant\n%s", payload, want)
	}
}

func TestLateAckStillSendsSent(t *testing.T) {
	s, d := newStore(t)
	m, _, err := s.Accept(t.Context(), acct, "", "15551234567", text("x"), "")
	if err != nil {
		t.Fatal(err)
	}
	// The customer's receipt overtakes chatd's ack.
	advance(t, s, "15551234567", m.ID, StatusDelivered)
	conv := &chatdv1.Conversation{Id: "c1", Category: "service", Opened: true, Expires: 5000}
	for range 2 { // the second is a replayed ack
		ch := make(chan error, 1)
		s.Sent(1, "", m.ID, 101, conv, func(err error) { ch <- err })
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if got := statusOf(t, d, m.ID); got != StatusDelivered {
		t.Errorf("status = %d, want delivered (a late ack does not move it back)", got)
	}
	payloads := statusPayloads(t, d)
	if len(payloads) != 2 || !strings.Contains(payloads[0], `"delivered"`) || !strings.Contains(payloads[1], `"sent"`) || !strings.Contains(payloads[1], `"c1"`) {
		t.Errorf("status webhooks = %q; want delivered, then one sent with conversation c1", payloads)
	}
	// Later statuses carry the conversation the late ack stored.
	advance(t, s, "15551234567", m.ID, StatusRead)
	var p string
	if err := d.QueryRow("SELECT payload FROM webhook_events WHERE kind = ? ORDER BY id DESC LIMIT 1", webhook.KindStatus).Scan(&p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p, `"read"`) || !strings.Contains(p, `"c1"`) {
		t.Errorf("read webhook = %s; want it with conversation c1", p)
	}
}

// statusPayloads lists the status webhooks in the order they were made.
func statusPayloads(t *testing.T, d *sql.DB) []string {
	t.Helper()
	rows, err := d.Query("SELECT payload FROM webhook_events WHERE kind = ? ORDER BY id", webhook.KindStatus)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// TestSentWaitsForTheReceipt: chatd's ack and the customer's receipt that
// follows it are written in one transaction, sent first, both with the
// ack's conversation; a sent status without a receipt is written alone.
func TestSentWaitsForTheReceipt(t *testing.T) {
	var mu sync.Mutex
	statusTxs := 0
	db.SetBatchObserver(func(name string, items int, _ time.Duration, err error) {
		if name == "statuses" && err == nil {
			mu.Lock()
			statusTxs++
			mu.Unlock()
		}
	})
	t.Cleanup(func() { db.SetBatchObserver(nil) })
	// A long wait: the receipt comes within it however slow the machine.
	s, d := newStoreWith(t, func(s *Store) { s.linger.wait = time.Minute })
	m, _, err := s.Accept(t.Context(), acct, "", "15551234567", text("x"), "")
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	s.Sent(1, "15551234567", m.ID, 100, &chatdv1.Conversation{Id: "c1", Category: "service", Opened: true, Expires: 5000}, func(err error) { sent <- err })
	advance(t, s, "15551234567", m.ID, StatusDelivered)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if statusTxs != 1 {
		t.Errorf("the ack and the receipt took %d status transactions, want 1", statusTxs)
	}
	mu.Unlock()
	if got := statusOf(t, d, m.ID); got != StatusDelivered {
		t.Errorf("status = %d, want delivered", got)
	}
	p := statusPayloads(t, d)
	if len(p) != 2 || !strings.Contains(p[0], `"sent"`) || !strings.Contains(p[1], `"delivered"`) || !strings.Contains(p[0], `"c1"`) || !strings.Contains(p[1], `"c1"`) {
		t.Errorf("status webhooks = %q; want sent, then delivered, both in conversation c1", p)
	}

	// No receipt: the sent status is written after sentLinger, alone.
	s, d = newStore(t)
	m2, _, err := s.Accept(t.Context(), acct, "", "15551234567", text("y"), "")
	if err != nil {
		t.Fatal(err)
	}
	s.Sent(1, "15551234567", m2.ID, 101, nil, func(err error) { sent <- err })
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if got := statusOf(t, d, m2.ID); got != StatusSent {
		t.Errorf("status without a receipt = %d, want sent", got)
	}
}

// TestStopWritesWaitingSentStatuses: a store that stops writes the sent
// statuses that wait for a receipt before Run returns.
func TestStopWritesWaitingSentStatuses(t *testing.T) {
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d)
	s := NewStore(d, st, slog.New(slog.DiscardHandler), func() {})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); s.Run(ctx) }()
	m, _, err := s.Accept(t.Context(), acct, "", "15551234567", text("x"), "")
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	s.Sent(1, "15551234567", m.ID, 100, nil, func(err error) { sent <- err })
	cancel()
	<-stopped
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("Run returned before the waiting sent status was written")
	}
	if got := statusOf(t, d, m.ID); got != StatusSent {
		t.Errorf("status after the stop = %d, want sent", got)
	}
}
