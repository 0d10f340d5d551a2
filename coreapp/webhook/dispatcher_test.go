package webhook

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/openwaba/openwaba/api/errcode"

	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
)

// receiver records webhook POSTs; handle decides the answer.
type receiver struct {
	mu       sync.Mutex
	bodies   []map[string][]json.RawMessage
	times    []time.Time
	inflight int
	maxSeen  int
	handle   func() int
	signal   chan struct{}
}

func newReceiver(t *testing.T, handle func() int) (*receiver, *httptest.Server) {
	r := &receiver{handle: handle, signal: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.inflight++
		r.maxSeen = max(r.maxSeen, r.inflight)
		r.times = append(r.times, time.Now())
		r.mu.Unlock()
		code := r.handle()
		r.mu.Lock()
		r.inflight--
		if code == 200 {
			var m map[string][]json.RawMessage
			json.Unmarshal(body, &m)
			r.bodies = append(r.bodies, m)
		}
		r.mu.Unlock()
		w.WriteHeader(code)
		select {
		case r.signal <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) statuses() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, b := range r.bodies {
		n += len(b["statuses"])
	}
	return n
}

func (r *receiver) waitStatuses(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for r.statuses() < n {
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("receiver got %d statuses, want %d", r.statuses(), n)
		}
	}
}

func enqueueStatuses(t *testing.T, d *sql.DB, account int64, n int) {
	t.Helper()
	var events []Event
	for i := range n {
		events = append(events, StatusEvent(account, Status{ID: fmt.Sprintf("wamid.%d", i), RecipientID: "15551234567", Status: "delivered", Timestamp: "1"}))
	}
	if err := db.Tx(t.Context(), d, func(tx *sql.Tx) error { return Enqueue(tx, events...) }); err != nil {
		t.Fatal(err)
	}
}

func runDispatcher(t *testing.T, d *sql.DB, st *settings.Store) *Dispatcher {
	t.Helper()
	disp := NewDispatcher(d, st, slog.New(slog.DiscardHandler), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); disp.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return disp
}

func pending(t *testing.T, d *sql.DB) int {
	t.Helper()
	var n int
	if err := d.QueryRow("SELECT COUNT(*) FROM webhook_events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitEmpty waits for the outbox to empty: the dispatcher deletes events
// after the receiver's answer reaches it.
func waitEmpty(t *testing.T, d *sql.DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for pending(t, d) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := pending(t, d); n != 0 {
		t.Errorf("%d delivered events left in the outbox", n)
	}
}

func TestDispatcherBatchesAndDeletes(t *testing.T) {
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d)
	rcv, srv := newReceiver(t, func() int { return 200 })
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"url":"`+srv.URL+`"}}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	enqueueStatuses(t, d, 1, 120)
	runDispatcher(t, d, st)
	rcv.waitStatuses(t, 120)
	rcv.mu.Lock()
	posts := len(rcv.bodies)
	rcv.mu.Unlock()
	if posts < 3 || posts > 120 {
		t.Errorf("120 events went out in %d POSTs, want batches of at most %d", posts, MaxBatch)
	}
	for _, b := range rcv.bodies {
		if len(b["statuses"]) > MaxBatch {
			t.Errorf("a POST carried %d statuses, more than %d", len(b["statuses"]), MaxBatch)
		}
	}
	waitEmpty(t, d)
}

func TestDispatcherHonoursMaxConcurrentRequests(t *testing.T) {
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d)
	release := make(chan struct{})
	rcv, srv := newReceiver(t, func() int { <-release; return 200 })
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"url":"`+srv.URL+`","max_concurrent_requests":6}}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	enqueueStatuses(t, d, 1, 20*MaxBatch) // 20 POSTs' worth
	runDispatcher(t, d, st)
	deadline := time.After(30 * time.Second)
	for {
		rcv.mu.Lock()
		in := rcv.inflight
		rcv.mu.Unlock()
		if in == 6 {
			break
		}
		select {
		case <-rcv.signal:
		case <-deadline:
			t.Fatalf("in flight = %d, want the cap of 6 to be reached", in)
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(release)
	rcv.waitStatuses(t, 20*MaxBatch)
	if rcv.maxSeen != 6 {
		t.Errorf("at most %d POSTs were in flight at once, want exactly the cap of 6", rcv.maxSeen)
	}
}

func TestDispatcherBacksOffLinearlyThenDelivers(t *testing.T) {
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d)
	var mu sync.Mutex
	failures := 4
	rcv, srv := newReceiver(t, func() int {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return 503
		}
		return 200
	})
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"url":"`+srv.URL+`"},"callback_backoff_delay_ms":150,"max_callback_backoff_delay_ms":300}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	enqueueStatuses(t, d, 1, 1)
	runDispatcher(t, d, st)
	rcv.waitStatuses(t, 1)
	rcv.mu.Lock()
	times := append([]time.Time(nil), rcv.times...)
	rcv.mu.Unlock()
	if len(times) != 5 {
		t.Fatalf("attempts = %d, want 4 failures and 1 success", len(times))
	}
	// Linear steps of 150 ms capped at 300 ms: 150, 300, 300, 300. Only
	// lower bounds are checked; a loaded machine may be slower.
	for i, min := range []time.Duration{150, 300, 300, 300} {
		if gap := times[i+1].Sub(times[i]); gap < min*time.Millisecond*9/10 {
			t.Errorf("gap before attempt %d = %s, want at least %dms", i+2, gap, min)
		}
	}
	waitEmpty(t, d)
}

func TestDispatcherWaitsForAURL(t *testing.T) {
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d)
	rcv, srv := newReceiver(t, func() int { return 200 })
	enqueueStatuses(t, d, 1, 3)
	runDispatcher(t, d, st)
	if n := pending(t, d); n != 3 {
		t.Fatalf("pending = %d, want 3 kept while no URL is set", n)
	}
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"url":"`+srv.URL+`"}}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	rcv.waitStatuses(t, 3)
}

func TestBodyMergesContacts(t *testing.T) {
	var c Contact
	c.WaID, c.Profile.Name = "15551234567", "Kerry"
	var ps [][]byte
	for _, id := range []string{"a", "b"} {
		b, _ := json.Marshal(messageEvent{c, InboundMessage{From: c.WaID, ID: id, Type: "text", Object: json.RawMessage(`{"body":"` + id + `"}`)}})
		ps = append(ps, b)
	}
	got, err := body(KindMessage, ps)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"contacts":[{"profile":{"name":"Kerry"},"wa_id":"15551234567"}],"messages":[{"from":"15551234567","id":"a","timestamp":"","type":"text","text":{"body":"a"}},{"from":"15551234567","id":"b","timestamp":"","type":"text","text":{"body":"b"}}]}`
	if string(got) != want {
		t.Errorf("body =\n%s\nwant\n%s", got, want)
	}
}

// TestBodyShapes: a status with its conversation and pricing (the
// expiration only where the message opened the conversation), a failed
// re-engagement status with the title Meta's status reference shows, and
// template changes in the business-account envelope.
func TestBodyShapes(t *testing.T) {
	opened, joined := Status{ID: "m1", RecipientID: "155", Status: "sent", Timestamp: "1"}, Status{ID: "m2", RecipientID: "155", Status: "delivered", Timestamp: "2"}
	opened.Conversation, opened.Pricing = ConversationOf("c1", "utility", 1700086400)
	joined.Conversation, joined.Pricing = ConversationOf("c1", "utility", 0)
	failed := Status{ID: "m3", RecipientID: "155", Status: "failed", Timestamp: "3", Errors: []Error{Err(errcode.ReEngagement, "")}}
	var ps [][]byte
	for _, st := range []Status{opened, joined, failed} {
		b, _ := json.Marshal(st)
		ps = append(ps, b)
	}
	got, err := body(KindStatus, ps)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"statuses":[` +
		`{"id":"m1","recipient_id":"155","status":"sent","timestamp":"1","conversation":{"id":"c1","expiration_timestamp":1700086400,"origin":{"type":"utility"}},"pricing":{"billable":true,"pricing_model":"CBP","category":"utility"}},` +
		`{"id":"m2","recipient_id":"155","status":"delivered","timestamp":"2","conversation":{"id":"c1","origin":{"type":"utility"}},"pricing":{"billable":true,"pricing_model":"CBP","category":"utility"}},` +
		`{"id":"m3","recipient_id":"155","status":"failed","timestamp":"3","errors":[{"code":470,"title":"Message failed to send because more than 24 hours have passed since the customer last replied to this number"}]}]}`
	if string(got) != want {
		t.Errorf("statuses body =\n%s\nwant\n%s", got, want)
	}

	ev := TemplateStatusEvent(1, "15550100", 1700000000, TemplateStatus{Event: "APPROVED", ID: 42, Name: "order_update", Language: "en_US", Reason: "NONE"})
	b, _ := json.Marshal(ev.Payload)
	got, err = body(KindTemplateStatus, [][]byte{b})
	if err != nil {
		t.Fatal(err)
	}
	want = `{"object":"whatsapp_business_account","entry":[{"id":"15550100","time":1700000000,"changes":[{"field":"message_template_status_update",` +
		`"value":{"event":"APPROVED","message_template_id":42,"message_template_name":"order_update","message_template_language":"en_US","reason":"NONE"}}]}]}`
	if string(got) != want {
		t.Errorf("template status body =\n%s\nwant\n%s", got, want)
	}
}

// TestDispatcherGuardsTenantURLs: a URL a tenant set is reached only at
// public addresses, at every connection: the loopback receiver never sees
// a POST (the attempt fails and the event waits), until the deployment
// allows private addresses. The admin's URL to the same receiver works.
func TestDispatcherGuardsTenantURLs(t *testing.T) {
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d) // no CheckTenantURL: only the dispatcher's guard is tested
	rcv, srv := newReceiver(t, func() int { return 200 })
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"url":"`+srv.URL+`"}}`), settings.ActorTenant); err != nil {
		t.Fatal(err)
	}
	enqueueStatuses(t, d, 1, 3)
	disp := NewDispatcher(d, st, slog.New(slog.DiscardHandler), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); disp.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	attempts := 0
	for attempts == 0 && time.Now().Before(deadline) {
		if err := d.QueryRow("SELECT COALESCE(MAX(attempts), 0) FROM webhook_events").Scan(&attempts); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if attempts == 0 {
		t.Fatal("no failed attempt was recorded")
	}
	rcv.mu.Lock()
	posts := len(rcv.bodies)
	rcv.mu.Unlock()
	if posts != 0 {
		t.Fatalf("the guarded dispatcher reached the loopback receiver %d times", posts)
	}
	if n := pending(t, d); n != 3 {
		t.Fatalf("%d events pending, want the 3 kept for later", n)
	}
	if _, err := d.Exec("UPDATE webhook_events SET next_attempt_at = 0"); err != nil {
		t.Fatal(err)
	}
	// With WA_WEBHOOK_ALLOW_PRIVATE the same URL is reached.
	allowed := NewDispatcher(d, st, slog.New(slog.DiscardHandler), Options{AllowPrivate: true})
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { defer close(done); allowed.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	rcv.waitStatuses(t, 3)
	waitEmpty(t, d)
}

// TestDispatcherNewURLStartsAfresh: the backoff belongs to the URL that
// failed; events go to a new URL at once.
func TestDispatcherNewURLStartsAfresh(t *testing.T) {
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d)
	_, dead := newReceiver(t, func() int { return 503 })
	rcv, live := newReceiver(t, func() int { return 200 })
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"url":"`+dead.URL+`"},"callback_backoff_delay_ms":60000,"max_callback_backoff_delay_ms":60000}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	enqueueStatuses(t, d, 1, 1)
	disp := runDispatcher(t, d, st)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var attempts int
		d.QueryRow("SELECT MAX(attempts) FROM webhook_events").Scan(&attempts)
		if attempts > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failing URL was not tried")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"url":"`+live.URL+`"}}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	// The event waits a minute for the old URL; the change (coreapp calls
	// URLChanged when a URL is set) lets it go now.
	if err := disp.URLChanged(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rcv.waitStatuses(t, 1)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the new URL got the event after %s: the old URL's backoff held it", took)
	}
}
