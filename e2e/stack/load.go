package stack

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// LoadOptions configure StartLoad.
type LoadOptions struct {
	Auth Auth     // how every request authenticates
	To   []string // the recipients (wa_id); each gets its own sender
	// Rate is the total number of messages per second, shared evenly by
	// the recipients. A recipient's next message waits for the answer to
	// its previous one, so a slow API lowers the rate instead of queueing.
	Rate float64
	// Webs lists the webapps to send through, in turn (indexes into
	// Stack.Webs); empty means every webapp.
	Webs []int
	// Retry resends a message that got no answer, a 5xx or a 429, with the
	// same X-Request-Id (the API deduplicates by it), until it is accepted
	// or the load stops; the next message to that recipient waits. Without
	// Retry a failed message is given up and the next one is sent.
	Retry bool
	// Prefix starts every message body (default "load"); the body is
	// "<prefix> <recipient> #<seq>".
	Prefix string
}

// LoadError is one failed send.
type LoadError struct {
	To        string
	Seq       int    // the message's number for this recipient, from 0
	Text      string // its body
	RequestID string // its X-Request-Id
	Web       int    // the webapp asked (index into Stack.Webs)
	Status    int    // HTTP status; 0 when no answer came (the message may still have been accepted)
	Code      int    // errors[0].code of the answer, 0 if none
	Err       string // the transport error, or the answer's body
	At        time.Time
}

func (e LoadError) String() string {
	return fmt.Sprintf("%s #%d via web%d: %d (code %d) %s", e.To, e.Seq, e.Web+1, e.Status, e.Code, e.Err)
}

// LoadResult is what a Load did.
type LoadResult struct {
	// Accepted holds, per recipient, the id of every message the API
	// accepted (201), in the order it accepted them; Texts maps those ids to
	// their bodies.
	Accepted map[string][]string
	Texts    map[string]string
	// Errors are every failed request (retries included), in the order
	// seen. One with Status 0 (or 5xx) may still have been accepted: a test
	// checking exactly-once delivery should use Retry, or match its Text.
	Errors []LoadError
}

// Load keeps sending text messages through the API until Stop. Its
// goroutines are owned by the Load: Stop (or the end of the test) stops them
// and waits for them.
type Load struct {
	s      *Stack
	o      LoadOptions
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex // guards the fields below
	accepted map[string][]string
	texts    map[string]string
	errs     []LoadError

	stopOnce sync.Once
	result   LoadResult
}

// StartLoad starts sending messages as o says, one sender goroutine per
// recipient, until the returned Load is stopped (at the latest when the test
// ends).
func (s *Stack) StartLoad(o LoadOptions) *Load {
	s.t.Helper()
	if len(o.To) == 0 || o.Rate <= 0 {
		s.t.Fatalf("StartLoad: need recipients and a positive rate, got %d and %v", len(o.To), o.Rate)
	}
	if len(o.Webs) == 0 {
		for i := range s.Webs {
			o.Webs = append(o.Webs, i)
		}
	}
	for _, w := range o.Webs {
		if w < 0 || w >= len(s.Webs) {
			s.t.Fatalf("StartLoad: no webapp %d", w)
		}
	}
	if o.Prefix == "" {
		o.Prefix = "load"
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{s: s, o: o, cancel: cancel, accepted: map[string][]string{}, texts: map[string]string{}}
	every := time.Duration(float64(time.Second) * float64(len(o.To)) / o.Rate)
	for i, to := range o.To {
		l.wg.Go(func() { l.send(ctx, i, to, every) })
	}
	s.t.Cleanup(func() { l.Stop() })
	return l
}

// Accepted counts the messages accepted so far.
func (l *Load) Accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.texts)
}

// WaitAccepted waits until at least n messages were accepted in all.
func (l *Load) WaitAccepted(n int, within time.Duration) {
	l.s.t.Helper()
	deadline := time.Now().Add(within)
	for l.Accepted() < n {
		if time.Now().After(deadline) {
			l.mu.Lock()
			errs := l.errs[max(len(l.errs)-10, 0):]
			l.mu.Unlock()
			l.s.t.Fatalf("load: %d of %d messages accepted within %s; last errors: %v", l.Accepted(), n, within, errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops sending, waits for the requests in flight (their answers
// count), and returns what the load did. Later calls return the same.
func (l *Load) Stop() LoadResult {
	l.stopOnce.Do(func() {
		l.cancel()
		l.wg.Wait()
		l.mu.Lock()
		defer l.mu.Unlock()
		l.result = LoadResult{Accepted: l.accepted, Texts: l.texts, Errors: l.errs}
	})
	return l.result
}

// send is the sender of one recipient: message seq goes out on a tick once
// message seq-1 is done.
func (l *Load) send(ctx context.Context, idx int, to string, every time.Duration) {
	// Spread the recipients over the interval instead of sending together.
	first := time.Duration(rand.Int64N(int64(every) + 1))
	select {
	case <-time.After(first):
	case <-ctx.Done():
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	turn := idx // which of o.Webs to ask next
	for seq := 0; ; seq++ {
		text := fmt.Sprintf("%s %s #%d", l.o.Prefix, to, seq)
		reqID := fmt.Sprintf("%s-%s-%d-%s", l.o.Prefix, to, seq, randText(8))
		for attempt := 0; ; attempt++ {
			web := l.o.Webs[turn%len(l.o.Webs)]
			turn++
			ok, retry := l.once(to, seq, text, reqID, web)
			if ok || !retry || !l.o.Retry {
				break
			}
			select {
			case <-time.After(min(50*time.Millisecond<<min(attempt, 4), time.Second)):
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// once sends one request. It reports whether the message was accepted, and
// whether a failure is worth a retry.
func (l *Load) once(to string, seq int, text, reqID string, web int) (ok, retry bool) {
	auth := l.o.Auth
	auth.Header = map[string]string{"X-Request-Id": reqID}
	for k, v := range l.o.Auth.Header {
		auth.Header[k] = v
	}
	// Not the load's context: a request in flight when the load stops is
	// finished, so that its outcome is known.
	r, err := request(context.Background(), l.s.Client, l.s.Webs[web].URL, "POST", "/v1/messages", auth,
		map[string]any{"to": to, "type": "text", "text": map[string]any{"body": text}})
	id := ""
	if err == nil && r.Status == 201 {
		if msgs, _ := r.Body["messages"].([]any); len(msgs) == 1 {
			m, _ := msgs[0].(map[string]any)
			id, _ = m["id"].(string)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if id != "" {
		l.accepted[to] = append(l.accepted[to], id)
		l.texts[id] = text
		return true, false
	}
	e := LoadError{To: to, Seq: seq, Text: text, RequestID: reqID, Web: web, Status: r.Status, Code: r.ErrorCode(), At: time.Now()}
	if err != nil {
		e.Err = err.Error()
	} else {
		e.Err = string(r.Raw)
	}
	l.errs = append(l.errs, e)
	return false, r.Status == 0 || r.Status >= 500 || r.Status == 429
}

func randText(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rand.IntN(len(letters))]
	}
	return string(b)
}
