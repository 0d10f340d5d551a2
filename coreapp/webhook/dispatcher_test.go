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
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/webhooksign"
	"github.com/openwaba/openwaba/db/keystore"

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
	if err := d.QueryRow("SELECT (SELECT COUNT(*) FROM webhook_events WHERE next_attempt_at < ?) + (SELECT COUNT(*) FROM webhook_deliveries WHERE state IN (?, ?))",
		int64(never), StatePending, StateFailing).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitEmpty waits for the outbox to empty: the dispatcher marks deliveries
// delivered after the receiver's answer reaches it.
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
	got, err := renderOnPrem(KindMessage, ps)
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
	got, err := renderOnPrem(KindStatus, ps)
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
	got, err = renderOnPrem(KindTemplateStatus, [][]byte{b})
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
		if err := d.QueryRow("SELECT COALESCE(MAX(attempts), 0) FROM webhook_deliveries").Scan(&attempts); err != nil {
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
	if _, err := d.Exec("UPDATE webhook_deliveries SET next_attempt_at = 0"); err != nil {
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
		d.QueryRow("SELECT MAX(attempts) FROM webhook_deliveries").Scan(&attempts)
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

// TestFanOutSignedAndIsolated: a number with its first endpoint failing and
// a second, signed endpoint that filters statuses: the second gets every
// event at once, signed with a secret whose rotation keeps the old one
// valid, while the first keeps failing; once the first recovers it gets
// every event too, and the log holds each attempt.
func TestFanOutSignedAndIsolated(t *testing.T) {
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d)
	var mu sync.Mutex
	broken := true
	first, firstSrv := newReceiver(t, func() int {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			return 500
		}
		return 200
	})
	var verr []error
	var ids []string
	secondSrv := httptest.NewServer(nil)
	t.Cleanup(secondSrv.Close)
	ks, err := keystore.New([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	disp := NewDispatcher(d, st, slog.New(slog.DiscardHandler), Options{Keystore: ks})
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"url":"`+firstSrv.URL+`"},"callback_backoff_delay_ms":200,"max_callback_backoff_delay_ms":200}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	old := webhooksign.NewSecret()
	ep, err := disp.CreateEndpoint(t.Context(), 1, NewEndpoint{URL: secondSrv.URL, Format: settings.FormatOnPrem, Events: []string{TopicStatuses}, Secret: old})
	if err != nil {
		t.Fatal(err)
	}
	next, err := disp.RotateSecret(t.Context(), 1, ep.ID, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	second := &receiver{handle: func() int { return 200 }, signal: make(chan struct{}, 1)}
	secondSrv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		h := req.Header
		second.mu.Lock()
		for _, s := range []string{old, next} {
			if err := webhooksign.Verify(s, h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature"), body, time.Now()); err != nil {
				verr = append(verr, err)
			}
		}
		ids = append(ids, h.Get("webhook-id"))
		var m map[string][]json.RawMessage
		json.Unmarshal(body, &m)
		second.bodies = append(second.bodies, m)
		second.mu.Unlock()
		select {
		case second.signal <- struct{}{}:
		default:
		}
	})
	enqueueStatuses(t, d, 1, 30)
	// A message event: the second endpoint's filter leaves it out.
	if err := db.Tx(t.Context(), d, func(tx *sql.Tx) error {
		return Enqueue(tx, MessageEvent(1, Contact{WaID: "15551234567"}, InboundMessage{From: "15551234567", ID: "in.1", Type: "text"}))
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); disp.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	start := time.Now()
	second.waitStatuses(t, 30)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the healthy endpoint got its events after %s: the failing one held it back", took)
	}
	second.mu.Lock()
	if len(verr) > 0 {
		t.Errorf("a receiver holding one of the two secrets refused %d POSTs: %v", len(verr), verr[0])
	}
	for _, b := range second.bodies {
		if len(b["messages"]) > 0 {
			t.Error("the statuses-only endpoint got a message")
		}
	}
	if len(ids) == 0 || ids[0] == "" {
		t.Error("no webhook-id header")
	}
	second.mu.Unlock()

	// The first endpoint fails at least twice, then recovers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var attempts int
		d.QueryRow("SELECT COALESCE(MAX(attempts), 0) FROM webhook_deliveries WHERE endpoint_id = 0").Scan(&attempts)
		if attempts >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failing endpoint was not retried")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	broken = false
	mu.Unlock()
	first.waitStatuses(t, 30)
	waitEmpty(t, d)
	first.mu.Lock()
	messages := 0
	for _, b := range first.bodies {
		messages += len(b["messages"])
	}
	first.mu.Unlock()
	if messages != 1 {
		t.Errorf("the first endpoint got %d messages, want 1", messages)
	}
	// Every attempt is in the log: the failed ones (500) and the last (200).
	var failed, ok int
	d.QueryRow("SELECT COUNT(*) FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = 0 AND a.http_status = 500").Scan(&failed)
	d.QueryRow("SELECT COUNT(*) FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = 0 AND a.http_status = 200").Scan(&ok)
	if failed < 31 || ok != 31 {
		t.Errorf("the log has %d failed and %d good attempts of the first endpoint, want at least 31 (one each) and exactly 31", failed, ok)
	}
}

// TestDeadAfterTheAgeLimit: a delivery failing longer than DeadAfter is
// dead, no longer attempted, and still listed.
func TestDeadAfterTheAgeLimit(t *testing.T) {
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d)
	_, srv := newReceiver(t, func() int { return 503 })
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"url":"`+srv.URL+`"},"callback_backoff_delay_ms":100,"max_callback_backoff_delay_ms":100}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	enqueueStatuses(t, d, 1, 3)
	disp := NewDispatcher(d, st, slog.New(slog.DiscardHandler), Options{DeadAfter: 500 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); disp.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for {
		var dead int
		d.QueryRow("SELECT COUNT(*) FROM webhook_deliveries WHERE state = ?", StateDead).Scan(&dead)
		if dead == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 deliveries are dead after the age limit", dead)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var attempts int
	d.QueryRow("SELECT MAX(attempts) FROM webhook_deliveries").Scan(&attempts)
	time.Sleep(400 * time.Millisecond)
	var later int
	d.QueryRow("SELECT MAX(attempts) FROM webhook_deliveries").Scan(&later)
	if later != attempts {
		t.Errorf("dead deliveries were attempted again (%d attempts, then %d)", attempts, later)
	}
}

// TestBatchWebhookIDIsStable: the webhook-id of a POST of several events
// depends only on its deliveries; one event's is its event's id.
func TestBatchWebhookIDIsStable(t *testing.T) {
	a := batch{deliveries: []delivery{{id: 1, event: 10}, {id: 2, event: 11}}}
	b := batch{deliveries: []delivery{{id: 2, event: 11}, {id: 1, event: 10}}} // a retry may list them in another order
	c := batch{deliveries: []delivery{{id: 1, event: 10}}}
	if a.webhookID() != b.webhookID() {
		t.Error("the same deliveries got two ids")
	}
	if a.webhookID() == c.webhookID() || c.webhookID() != "evt_10" {
		t.Errorf("ids %s and %s: a subset must not share the batch's id, and one event's id is evt_<event>", a.webhookID(), c.webhookID())
	}
}

// TestLogListsAndReplays: the dead deliveries are listed with their
// attempts, filtered by state, topic and message id and paged; a replay of
// one and of a range sends them again, with the same event, to a receiver
// that now answers.
func TestLogListsAndReplays(t *testing.T) {
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d)
	var mu sync.Mutex
	code := 503
	rcv, srv := newReceiver(t, func() int { mu.Lock(); defer mu.Unlock(); return code })
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"url":"`+srv.URL+`"},"callback_backoff_delay_ms":100,"max_callback_backoff_delay_ms":100}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	enqueueStatuses(t, d, 1, 5)
	disp := NewDispatcher(d, st, slog.New(slog.DiscardHandler), Options{DeadAfter: 300 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); disp.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, dead, err := disp.Counts(t.Context(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if dead == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 5 deliveries dead", dead)
		}
		time.Sleep(20 * time.Millisecond)
	}
	page, more, err := disp.Deliveries(t.Context(), 1, Filter{States: []int{StateDead}, Topic: TopicStatuses, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 3 || !more {
		t.Fatalf("first page: %d deliveries, more %v; want 3 and more", len(page), more)
	}
	for _, dl := range page {
		if dl.State != "dead" || len(dl.Log) == 0 || dl.Log[0].HTTPStatus != 503 || dl.Log[0].URL != srv.URL {
			t.Errorf("delivery %d: state %s, log %+v; want dead with its 503 attempts", dl.ID, dl.State, dl.Log)
		}
	}
	rest, more, err := disp.Deliveries(t.Context(), 1, Filter{States: []int{StateDead}, Before: page[2].ID})
	if err != nil || len(rest) != 2 || more {
		t.Fatalf("second page: %d, more %v, %v; want the other 2", len(rest), more, err)
	}
	byRef, _, err := disp.Deliveries(t.Context(), 1, Filter{Ref: "wamid.3"})
	if err != nil || len(byRef) != 1 || byRef[0].Ref != "wamid.3" {
		t.Fatalf("by message id: %+v, %v", byRef, err)
	}
	if none, _, _ := disp.Deliveries(t.Context(), 1, Filter{Topic: TopicMessages}); len(none) != 0 {
		t.Errorf("the messages topic lists %d status deliveries", len(none))
	}
	mu.Lock()
	code = 200
	mu.Unlock()
	if err := disp.Replay(t.Context(), 1, byRef[0].ID); err != nil {
		t.Fatal(err)
	}
	rcv.waitStatuses(t, 1)
	if err := disp.Replay(t.Context(), 1, 999999); err != ErrNoDelivery {
		t.Errorf("replaying an unknown id: %v, want ErrNoDelivery", err)
	}
	n, err := disp.ReplayMatching(t.Context(), 1, Filter{States: []int{StateDead}})
	if err != nil || n != 4 {
		t.Fatalf("bulk replay: %d, %v; want the 4 still dead", n, err)
	}
	rcv.waitStatuses(t, 5)
	waitEmpty(t, d)
}

// TestSlowEndpointHoldsOnlyItsLane: a receiver that hangs with a backlog
// of more POSTs than the node sends at once (maxInFlight) holds only its
// own max_concurrent_requests senders; another endpoint of the number gets
// every event meanwhile.
func TestSlowEndpointHoldsOnlyItsLane(t *testing.T) {
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d)
	release := make(chan struct{})
	slow, slowSrv := newReceiver(t, func() int { <-release; return 200 })
	fast, fastSrv := newReceiver(t, func() int { return 200 })
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"url":"`+slowSrv.URL+`"}}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	disp := runDispatcher(t, d, st)
	if _, err := disp.CreateEndpoint(t.Context(), 1, NewEndpoint{URL: fastSrv.URL, Format: settings.FormatOnPrem}); err != nil {
		t.Fatal(err)
	}
	n := (maxInFlight + 44) * MaxBatch
	enqueueStatuses(t, d, 1, n)
	fast.waitStatuses(t, n)
	slow.mu.Lock()
	if slow.maxSeen > 6 {
		t.Errorf("the hung receiver had %d POSTs in flight, more than max_concurrent_requests", slow.maxSeen)
	}
	slow.mu.Unlock()
	close(release)
	slow.waitStatuses(t, n)
}

// TestBatchesFillBehindASlowReceiver: events that trickle in while the
// receiver is busy wait in the endpoint's lane and leave in full POSTs.
func TestBatchesFillBehindASlowReceiver(t *testing.T) {
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d)
	const delay = time.Second
	rcv, srv := newReceiver(t, func() int { time.Sleep(delay); return 200 })
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"url":"`+srv.URL+`"}}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	disp := runDispatcher(t, d, st)
	// 400 events one at a time: a POST per event as they come would be 400
	// POSTs (and 400/6 s); 6 senders of one POST a second make at most 6
	// POSTs a second, whatever the pace of the events (which the machine's
	// load sets), so unless enqueueing takes more than 15 s most POSTs
	// carry several events.
	const events = 400
	for range events {
		enqueueStatuses(t, d, 1, 1)
		disp.Wake()
		time.Sleep(5 * time.Millisecond)
	}
	rcv.waitStatuses(t, events)
	rcv.mu.Lock()
	posts := len(rcv.bodies)
	rcv.mu.Unlock()
	t.Logf("%d events in %d POSTs", events, posts)
	if posts > events/4 {
		t.Errorf("%d events took %d POSTs: they did not wait to fill batches of up to %d", events, posts, MaxBatch)
	}
}

// TestClaimKeepsPinnedGroupsWhole: a claim whose limit falls inside a
// pinned group leaves the whole group for the next round.
func TestClaimKeepsPinnedGroupsWhole(t *testing.T) {
	d := dbtest.New(t, db.Core)
	disp := NewDispatcher(d, settings.NewStore(d), slog.New(slog.DiscardHandler), Options{})
	// Deliveries 1 to 3 unpinned, 4 and 5 pinned together, all due.
	for id := int64(1); id <= 5; id++ {
		batch := int64(0)
		if id >= 4 {
			batch = 4
		}
		if _, err := d.Exec("INSERT INTO webhook_deliveries (id, event_id, account_id, endpoint_id, state, attempts, batch, next_attempt_at, created_at, updated_at, retry_since) VALUES (?,?,1,0,2,1,?,1,1,1,1)",
			id, id, batch); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(ds []delivery) (out []int64) {
		for _, dl := range ds {
			out = append(out, dl.id)
		}
		return out
	}
	first, err := disp.claim(t.Context(), 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := disp.claim(t.Context(), 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(first); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("first claim %v, want 1 2 3 (the group 4+5 left whole)", got)
	}
	if got := ids(second); !slices.Equal(got, []int64{4, 5}) {
		t.Errorf("second claim %v, want the group 4 5", got)
	}
}

// TestClaimKeepsSharedPinsWhole: prePin gives two endpoints' groups made
// from the same first event the same pin, and their rows interleave; a
// limit inside them leaves both whole, not the last row's endpoint alone.
func TestClaimKeepsSharedPinsWhole(t *testing.T) {
	d := dbtest.New(t, db.Core)
	disp := NewDispatcher(d, settings.NewStore(d), slog.New(slog.DiscardHandler), Options{})
	// Delivery 1 unpinned and due first; 2 and 4 to endpoint 0, 3 and 5 to
	// endpoint 1, all pinned -2 (events 2 and 3 fanned out to both
	// endpoints).
	for id := int64(1); id <= 5; id++ {
		batch, endpoint, event, due := int64(0), int64(0), int64(1), 0
		if id >= 2 {
			batch, endpoint, event, due = -2, (id+1)%2, 2+(id-2)/2, 1
		}
		if _, err := d.Exec("INSERT INTO webhook_deliveries (id, event_id, account_id, endpoint_id, state, attempts, batch, next_attempt_at, created_at, updated_at, retry_since) VALUES (?,?,1,?,2,1,?,?,1,1,1)",
			id, event, endpoint, batch, due); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(ds []delivery) (out []int64) {
		for _, dl := range ds {
			out = append(out, dl.id)
		}
		return out
	}
	first, err := disp.claim(t.Context(), 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := disp.claim(t.Context(), 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(first); !slices.Equal(got, []int64{1}) {
		t.Errorf("first claim %v, want 1 (both groups pinned -2 left whole)", got)
	}
	if got := ids(second); !slices.Equal(got, []int64{2, 3, 4, 5}) {
		t.Errorf("second claim %v, want both groups, 2 to 5", got)
	}
}

// TestFullLaneRefillsAtOnce: deliveries that found their lane full go back
// to the table, and come due again as soon as the lane is half empty, not
// after the deferral (an hour here): a backlog larger than a lane drains
// without idling, through an outage of the receiver too.
func TestFullLaneRefillsAtOnce(t *testing.T) {
	d := dbtest.New(t, db.Core)
	st := settings.NewStore(d)
	var mu sync.Mutex
	failures := 5
	rcv, srv := newReceiver(t, func() int {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return 503
		}
		return 200
	})
	if _, err := st.Update(t.Context(), 1, []byte(`{"webhooks":{"url":"`+srv.URL+`","max_concurrent_requests":6},"callback_backoff_delay_ms":50,"max_callback_backoff_delay_ms":100}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	const events = 300
	enqueueStatuses(t, d, 1, events)
	disp := NewDispatcher(d, st, slog.New(slog.DiscardHandler), Options{})
	disp.laneCap, disp.laneDefer = 20, time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); disp.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	rcv.waitStatuses(t, events)
	waitEmpty(t, d)
}

// TestPrePin: a round's deliveries are pinned into whole POSTs per endpoint
// and kind, MaxBatch at a time; what does not fill a POST stays unpinned,
// and pins never look like the delivery ids deliver pins with.
func TestPrePin(t *testing.T) {
	var out []delivery
	add := func(n int, endpoint int64, kind string) {
		for range n {
			ev := int64(len(out) + 1)
			out = append(out, delivery{event: ev, account: 1, endpoint: endpoint, kind: kind})
		}
	}
	add(70, 0, KindStatus) // events 1–70
	add(50, 1, KindStatus) // 71–120: another endpoint
	add(30, 0, KindStatus) // 121–150: the first endpoint again
	add(49, 0, KindMessage)
	prePin(out)
	pins := map[int64][]int64{}
	for _, dl := range out {
		pins[dl.batch] = append(pins[dl.batch], dl.event)
	}
	// Endpoint 0's statuses: events 1–50 in one POST, 51–70 and 121–150
	// (50 more) in a second; endpoint 1's 71–120 in one; the 49 messages
	// fill none.
	if len(pins[-1]) != 50 || len(pins[-71]) != 50 || len(pins[-51]) != 50 || len(pins[0]) != 49 || len(pins) != 4 {
		t.Fatalf("groups = %v; want -1, -51 and -71 of 50 each and 49 unpinned", pins)
	}
	for _, ev := range pins[-51] {
		if !(ev > 50 && ev <= 70 || ev > 120 && ev <= 150) {
			t.Errorf("event %d in endpoint 0's second POST", ev)
		}
	}
	for pin := range pins {
		if pin > 0 {
			t.Errorf("pin %d is positive: it could be a delivery id", pin)
		}
	}
}
