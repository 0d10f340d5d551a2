package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The webhook phases (issue 15): how fast one node delivers to a fast
// receiver, and how many events reach a receiver that takes 200 ms per
// POST.
//
//   - webhook-fast: a second endpoint in the Cloud envelope (one event per
//     POST, signed) fails while the phones send -webhook-events messages,
//     then recovers; measured is the rate its backlog is drained at: POSTs
//     per second from the moment it answers 200 to its last event.
//   - webhook-slow: the same with an endpoint in the on-prem envelope
//     (up to 50 events per POST) whose receiver sleeps -webhook-slow-delay
//     per POST; measured is events per second.
//
// A backlog measures the dispatcher, not the phones, which cannot send
// 6,000 messages a second on the machine they share with the stack.
//
// Both run with webhooks.max_concurrent_requests at on-prem's largest
// value, 24.

// WebhookResult is the webhook phases' part of the report.
type WebhookResult struct {
	Concurrency int `json:"max_concurrent_requests"`
	Fast        struct {
		Events int     `json:"events"`
		Posts  int64   `json:"posts"`
		PostPS float64 `json:"posts_per_s"`
	} `json:"fast"`
	Slow struct {
		Events  int     `json:"events"`
		DelayMS int64   `json:"receiver_delay_ms"`
		Posts   int64   `json:"posts"`
		EventPS float64 `json:"events_per_s"`
	} `json:"slow"`
}

// receiver is a webhook receiver of one phase.
type receiver struct {
	srv     *http.Server
	url     string
	failing atomic.Bool
	posts   atomic.Int64
	delay   time.Duration
	done    chan struct{} // closed when the server goroutine returns

	mu   sync.Mutex
	ids  map[string]bool
	want map[string]bool // the ids wait waits for
	got  int             // how many of want arrived
	last time.Time
}

func startReceiver(addr string, delay time.Duration) (*receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String(), delay: delay, ids: map[string]bool{}}
	r.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(r.serve)}
	r.done = make(chan struct{})
	go func() { defer close(r.done); r.srv.Serve(ln) }()
	return r, nil
}

// close stops the receiver and waits for its server goroutine.
func (r *receiver) close() { r.srv.Close(); <-r.done }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 8<<20))
	if err != nil || r.failing.Load() {
		http.Error(w, "failing on purpose", http.StatusServiceUnavailable)
		return
	}
	time.Sleep(r.delay)
	if !json.Valid(body) {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	ids := idsIn(body)
	r.posts.Add(1)
	r.mu.Lock()
	for _, id := range ids {
		if !r.ids[id] {
			r.ids[id] = true
			if r.want[id] {
				r.got++
			}
		}
	}
	r.last = time.Now()
	r.mu.Unlock()
}

// expect names the ids wait waits for; call it before they can arrive.
func (r *receiver) expect(ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.want, r.got = make(map[string]bool, len(ids)), 0
	for _, id := range ids {
		r.want[id] = true
		if r.ids[id] {
			r.got++
		}
	}
}

// idsIn returns every "id" string value of a webhook body (message ids,
// and others such as the entry's, which expect does not name): a scan, not
// a decode, so the receiver costs the machine it shares with the stack as
// little as a receiver can.
func idsIn(body []byte) []string {
	var ids []string
	key := []byte(`"id":"`)
	for {
		i := bytes.Index(body, key)
		if i < 0 {
			return ids
		}
		body = body[i+len(key):]
		j := bytes.IndexByte(body, '"')
		if j < 0 {
			return ids
		}
		ids = append(ids, string(body[:j]))
		body = body[j:]
	}
}

// wait waits until every id of expect arrived, and returns when the last
// did. It polls: the receiver counts, so waiting costs the benchmark
// nothing per POST.
func (r *receiver) wait(ctx context.Context, what string) (time.Time, error) {
	for {
		r.mu.Lock()
		got, want, last := r.got, len(r.want), r.last
		r.mu.Unlock()
		if got == want {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s: %d of %d events arrived", what, got, want)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// sendInbound has every phone send its share of n texts from its own
// goroutine, and returns their ids.
func (b *bench) sendInbound(ctx context.Context, phones []*phone, n int, prefix string) ([]string, error) {
	ids := make([][]string, len(phones))
	var wg sync.WaitGroup
	var sendErr atomic.Value
	for pi, p := range phones {
		wg.Go(func() {
			for i := pi; i < n; i += len(phones) {
				id, err := p.SendText(ctx, b.waID, prefix+" "+strconv.Itoa(i), "", "")
				if err != nil {
					sendErr.Store(err)
					return
				}
				ids[pi] = append(ids[pi], id)
			}
		})
	}
	wg.Wait()
	if err, _ := sendErr.Load().(error); err != nil {
		return nil, err
	}
	var out []string
	for _, l := range ids {
		out = append(out, l...)
	}
	return out, nil
}

// webhookConcurrency is webhooks.max_concurrent_requests in the webhook
// phases: on-prem's largest value.
const webhookConcurrency = 24

func (b *bench) createEndpoint(ctx context.Context, body map[string]any) (string, error) {
	out, err := b.call(ctx, "POST", "/v1/webhooks/endpoints", body, 201)
	if err != nil {
		return "", err
	}
	eps, _ := out["endpoints"].([]any)
	if len(eps) != 1 {
		return "", fmt.Errorf("POST /v1/webhooks/endpoints answered %v", out)
	}
	id, _ := eps[0].(map[string]any)["id"].(string)
	return id, nil
}

func (b *bench) webhookSettings(ctx context.Context) error {
	_, err := b.call(ctx, "PATCH", "/v1/settings/application", map[string]any{
		"webhooks":                  map[string]any{"max_concurrent_requests": webhookConcurrency},
		"callback_backoff_delay_ms": 100, "max_callback_backoff_delay_ms": 100,
	}, 200)
	return err
}

// drain builds a backlog of n events for a new endpoint whose receiver
// fails, then lets it answer (after delay per POST) and times the backlog
// out: it returns the events, the POSTs and the seconds from the moment
// the receiver answers to its last event.
func (b *bench) drain(ctx context.Context, phones []*phone, n int, cloud bool, delay time.Duration, what string) (events int, posts int64, secs float64, err error) {
	if err := b.webhookSettings(ctx); err != nil {
		return 0, 0, 0, err
	}
	r, err := startReceiver("127.0.0.1:0", delay)
	if err != nil {
		return 0, 0, 0, err
	}
	defer r.close()
	r.failing.Store(true)
	format := "onprem"
	if cloud {
		format = "cloud"
	}
	id, err := b.createEndpoint(ctx, map[string]any{"url": r.url, "format": format, "events": []string{"messages"}})
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() {
		if _, err := b.call(context.WithoutCancel(ctx), "DELETE", "/v1/webhooks/endpoints/"+id, nil, 200); err != nil {
			fmt.Fprintln(os.Stderr, "wabench: removing the phase's webhook endpoint:", err) // the next phase still measures its own endpoint
		}
	}()
	ids, err := b.sendInbound(ctx, phones, n, what+" backlog")
	if err != nil {
		return 0, 0, 0, err
	}
	// Every event is in the outbox once the first endpoint has it (the
	// deliveries of both are made in one transaction).
	if err := b.waitHookIn(ctx, ids, what+": the first endpoint"); err != nil {
		return 0, 0, 0, err
	}
	r.expect(ids)
	before := r.posts.Load()
	start := time.Now()
	r.failing.Store(false)
	last, err := r.wait(ctx, what)
	if err != nil {
		return 0, 0, 0, err
	}
	return len(ids), r.posts.Load() - before, last.Sub(start).Seconds(), nil
}

// webhookFast drains a backlog to a fast Cloud-envelope receiver: one
// event per POST.
func (b *bench) webhookFast(ctx context.Context, phones []*phone, res *Result) error {
	if b.o.hookEvents == 0 {
		return nil
	}
	events, posts, secs, err := b.drain(ctx, phones, b.o.hookEvents, true, 0, "webhook-fast")
	if err != nil {
		return err
	}
	w := res.webhooks()
	w.Fast.Events, w.Fast.Posts, w.Fast.PostPS = events, posts, float64(posts)/secs
	return nil
}

// webhookSlow drains a backlog to an on-prem-envelope receiver that takes
// -webhook-slow-delay per POST: events per second.
func (b *bench) webhookSlow(ctx context.Context, phones []*phone, res *Result) error {
	if b.o.slowEvents == 0 {
		return nil
	}
	events, posts, secs, err := b.drain(ctx, phones, b.o.slowEvents, false, b.o.slowDelay, "webhook-slow")
	if err != nil {
		return err
	}
	w := res.webhooks()
	w.Slow.Events, w.Slow.DelayMS, w.Slow.Posts, w.Slow.EventPS = events, b.o.slowDelay.Milliseconds(), posts, float64(events)/secs
	return nil
}

func (res *Result) webhooks() *WebhookResult {
	if res.Webhooks == nil {
		res.Webhooks = &WebhookResult{Concurrency: webhookConcurrency}
	}
	return res.Webhooks
}

// waitHookIn waits until wabench's first receiver has every inbound id.
func (b *bench) waitHookIn(ctx context.Context, ids []string, what string) error {
	for {
		b.hookMu.Lock()
		got := 0
		for _, id := range ids {
			if b.hookIn[id] {
				got++
			}
		}
		b.hookMu.Unlock()
		if got == len(ids) {
			return nil
		}
		select { // polled: a scan per POST would cost the benchmark more than the stack
		case <-ctx.Done():
			return fmt.Errorf("%s: %d of %d messages arrived", what, got, len(ids))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
