package stack

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/chatd/wire"
)

// Phone is a simulated customer phone running in the test process, with
// every event it reported kept for assertions.
type Phone struct {
	*waphone.Phone
	t    testing.TB
	Home string

	mu     sync.Mutex // guards events and at
	events []waphone.Event
	at     []time.Time // when each event arrived
	signal chan struct{}
	stop   func()
}

// Stop takes the phone offline (its home stays; OpenPhone brings it back).
func (p *Phone) Stop() { p.stop() }

// NewPhone registers number on the stack's network and runs the phone until
// the test ends. It returns once the phone is online.
func (s *Stack) NewPhone(number, name string) *Phone {
	s.t.Helper()
	home := filepath.Join(s.t.TempDir(), "phone-"+number)
	return s.OpenPhone(home, number, name, true)
}

// OpenPhone runs a phone in home, registering it first when register is set.
func (s *Stack) OpenPhone(home, number, name string, register bool) *Phone {
	return s.OpenPhoneVia(home, number, name, register, s.ChatAddrs())
}

// OpenPhoneVia is OpenPhone with the chat addresses the phone registers
// with (a registered phone keeps those in its home).
func (s *Stack) OpenPhoneVia(home, number, name string, register bool, network []string) *Phone {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if register {
		root, err := wire.ParseRootKey(s.RootKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := waphone.Register(ctx, waphone.RegisterOptions{Home: home, Network: network, Admin: s.AdminAddr(), Number: number, Name: name, RootKey: root}); err != nil {
			t.Fatalf("register phone %s: %v", number, err)
		}
	}
	logPath := filepath.Join(t.TempDir(), "phone-"+number+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("---- phone %s log ----\n%s", number, tail(string(b), 100))
		}
	})
	wp, err := waphone.Open(home, waphone.Options{Log: slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Session: session.Config{BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	p := &Phone{Phone: wp, t: t, Home: home, signal: make(chan struct{}, 1)}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		wp.Run(runCtx)
	}()
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for e := range wp.Events() {
			p.mu.Lock()
			p.events = append(p.events, e)
			p.at = append(p.at, time.Now())
			p.mu.Unlock()
			select {
			case p.signal <- struct{}{}:
			default:
			}
		}
	}()
	p.stop = sync.OnceFunc(func() { stop(); <-done; <-collected })
	t.Cleanup(p.stop)
	p.WaitFor(30*time.Second, "phone online", func(e waphone.Event) bool { return e.Event == "ready" })
	return p
}

// Events returns a copy of the events so far.
func (p *Phone) Events() []waphone.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]waphone.Event(nil), p.events...)
}

// Arrival is an event and when the phone reported it.
type Arrival struct {
	waphone.Event
	At time.Time
}

// Arrivals returns the events so far with their arrival times.
func (p *Phone) Arrivals() []Arrival {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Arrival, len(p.events))
	for i, e := range p.events {
		out[i] = Arrival{Event: e, At: p.at[i]}
	}
	return out
}

// WaitFor waits until an event matches and returns it.
func (p *Phone) WaitFor(within time.Duration, what string, match func(waphone.Event) bool) waphone.Event {
	p.t.Helper()
	deadline := time.After(within)
	for {
		for _, e := range p.Events() {
			if match(e) {
				return e
			}
		}
		select {
		case <-p.signal:
		case <-deadline:
			p.t.Fatalf("phone %s: no %s within %s; events: %+v", p.Number(), what, within, p.Events())
		}
	}
}

// WaitCount waits until at least n events match.
func (p *Phone) WaitCount(within time.Duration, what string, n int, match func(waphone.Event) bool) []waphone.Event {
	p.t.Helper()
	deadline := time.After(within)
	for {
		var got []waphone.Event
		for _, e := range p.Events() {
			if match(e) {
				got = append(got, e)
			}
		}
		if len(got) >= n {
			return got
		}
		select {
		case <-p.signal:
		case <-deadline:
			p.t.Fatalf("phone %s: %d of %d %s within %s", p.Number(), len(got), n, what, within)
		}
	}
}

// Messages returns the message events by id, failing on a duplicate.
func (p *Phone) Messages() map[string]waphone.Event {
	out := map[string]waphone.Event{}
	for _, e := range p.Events() {
		if e.Event != "message" {
			continue
		}
		if _, dup := out[e.ID]; dup {
			p.t.Errorf("phone %s: message %s shown twice", p.Number(), e.ID)
		}
		out[e.ID] = e
	}
	return out
}

// Text sends a text and returns its id.
func (p *Phone) Text(to, text string) string {
	p.t.Helper()
	id, err := p.SendText(context.Background(), to, text, "", "")
	if err != nil {
		p.t.Fatal(err)
	}
	return id
}

func (p *Phone) String() string { return fmt.Sprintf("phone %s", p.Number()) }

// OpenWindow opens the customer-service window with business as a
// customer does: the phone writes to it, and OpenWindow returns once the
// business's coreapp has stored the message (the phone got its delivered
// receipt), so free-form messages to the phone go through. It returns the
// message's id.
func (p *Phone) OpenWindow(business string) string {
	p.t.Helper()
	id := p.Text(business, "Hi")
	p.WaitFor(30*time.Second, "the business to receive the window-opening message", func(e waphone.Event) bool {
		return e.Event == "receipt" && e.ID == id && e.Status == "delivered"
	})
	return id
}
