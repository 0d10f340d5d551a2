package waphone_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openwaba/openwaba/chatd/mediaconn"
	"github.com/openwaba/openwaba/chatd/server"
	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
)

const wait = 15 * time.Second

// chatd is a real server on loopback listeners that can be stopped and
// started again on the same addresses and database.
type chatd struct {
	t        *testing.T
	db       *sql.DB
	addrs    []string
	admin    string
	media    string // the media server's address
	mediaDir string // its blob volume
	cancel   context.CancelFunc
	done     chan error
}

func newChatd(t *testing.T) *chatd {
	t.Helper()
	c := &chatd{t: t, db: dbtest.New(t, db.Chatd), mediaDir: t.TempDir()}
	c.start("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	t.Cleanup(c.stop)
	return c
}

// restart starts chatd again on the same addresses and volume.
func (c *chatd) restart() { c.start(c.addrs[0], c.addrs[1], c.admin, c.media) }

// start runs chatd on the chat, fallback, admin and media addresses.
func (c *chatd) start(addrs ...string) {
	c.t.Helper()
	var ls []net.Listener
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			c.t.Fatalf("listen %s: %v", a, err)
		}
		ls = append(ls, l)
	}
	c.addrs = []string{ls[0].Addr().String(), ls[1].Addr().String()}
	c.admin = ls[2].Addr().String()
	c.media = ls[3].Addr().String()
	srv := server.New(server.Config{Listeners: ls[:2], Admin: ls[2], Media: ls[3], MediaDir: c.mediaDir, DB: c.db,
		Log: slog.New(slog.NewTextHandler(c.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan error, 1)
	go func() { c.done <- srv.Serve(ctx) }()
}

func (c *chatd) stop() {
	if c.cancel == nil {
		return
	}
	c.cancel()
	c.cancel = nil
	select {
	case err := <-c.done:
		if err != nil {
			c.t.Errorf("Serve = %v", err)
		}
	case <-time.After(wait):
		c.t.Errorf("Serve did not return within %v", wait)
	}
}

func (c *chatd) queueRows(t *testing.T, recipient string) int {
	t.Helper()
	var n int
	if err := c.db.QueryRow("SELECT COUNT(*) FROM queue WHERE recipient = ?", recipient).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// register registers a phone in a new home directory and returns the home.
func (c *chatd) register(t *testing.T, number, name string) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), number)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := waphone.Register(ctx, waphone.RegisterOptions{Home: home, Network: c.addrs, Admin: c.admin, Number: number, Name: name}); err != nil {
		t.Fatalf("register %s: %v", number, err)
	}
	return home
}

// phone is an open phone whose Run the test owns.
type phone struct {
	*waphone.Phone
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

func open(t *testing.T, home string, eventBuffer int) *phone {
	t.Helper()
	p, err := waphone.Open(home, waphone.Options{EventBuffer: eventBuffer,
		Session: session.Config{BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond},
		Media:   mediaconn.Config{RetryBase: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ph := &phone{Phone: p, cancel: cancel, done: make(chan error, 1)}
	go func() { ph.done <- p.Run(ctx) }()
	t.Cleanup(func() { ph.stop(t) })
	return ph
}

// stop cancels Run, waits for it and returns the events left unread.
func (p *phone) stop(t *testing.T) []waphone.Event {
	p.cancel()
	if p.stopped {
		return nil
	}
	p.stopped = true
	select {
	case <-p.done:
	case <-time.After(wait):
		t.Errorf("phone %s did not stop within %v", p.Number(), wait)
		return nil
	}
	var rest []waphone.Event
	for e := range p.Events() { // closed by Run
		rest = append(rest, e)
	}
	return rest
}

// next returns the next event that satisfies pred; the events it skips are
// returned too.
func (p *phone) next(t *testing.T, what string, pred func(waphone.Event) bool) (waphone.Event, []waphone.Event) {
	t.Helper()
	var skipped []waphone.Event
	deadline := time.After(wait)
	for {
		select {
		case e, ok := <-p.Events():
			if !ok {
				t.Fatalf("phone %s stopped while waiting for %s", p.Number(), what)
			}
			if pred(e) {
				return e, skipped
			}
			skipped = append(skipped, e)
		case <-deadline:
			t.Fatalf("phone %s: no %s within %v (saw %v)", p.Number(), what, wait, skipped)
		}
	}
}

func is(event, id, status string) func(waphone.Event) bool {
	return func(e waphone.Event) bool {
		return e.Event == event && (id == "" || e.ID == id) && (status == "" || e.Status == status)
	}
}

// TestTextAndReceipts: a text between two phones, with the sent, delivered
// and read receipts at the sender.
func TestTextAndReceipts(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	alice := open(t, c.register(t, "15550005001", "Alice"), 0)
	bob := open(t, c.register(t, "15550005002", "Bob"), 0)
	alice.next(t, "ready", is("ready", "", ""))
	bob.next(t, "ready", is("ready", "", ""))

	id, err := alice.SendText(t.Context(), bob.Number(), "hi Bob", "", "")
	if err != nil {
		t.Fatal(err)
	}
	sent, _ := alice.next(t, "sent receipt", is("receipt", id, "sent"))
	got, _ := bob.next(t, "message", is("message", id, ""))
	want := waphone.Event{Event: "message", ID: id, From: alice.Number(), Type: "text", Text: "hi Bob", Name: "Alice"}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(waphone.Event{}, "Timestamp", "Object", "Content")); diff != "" {
		t.Errorf("message at Bob mismatch (-want +got):\n%s", diff)
	}
	if got.Timestamp == "" || sent.Timestamp != got.Timestamp {
		t.Errorf("message timestamp %q, sent receipt timestamp %q: want the same server time", got.Timestamp, sent.Timestamp)
	}
	if e, _ := alice.next(t, "delivered receipt", is("receipt", id, "delivered")); e.From != bob.Number() {
		t.Errorf("delivered receipt from %q, want %q", e.From, bob.Number())
	}
	if err := bob.Read(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if e, _ := alice.next(t, "read receipt", is("receipt", id, "read")); e.From != bob.Number() {
		t.Errorf("read receipt from %q, want %q", e.From, bob.Number())
	}

	// A reply quotes the message it answers.
	reply, err := bob.SendText(t.Context(), alice.Number(), "hi Alice", id, "")
	if err != nil {
		t.Fatal(err)
	}
	e, _ := alice.next(t, "reply", is("message", reply, ""))
	if diff := cmp.Diff(&waphone.Context{ID: id, From: alice.Number()}, e.Context); diff != "" {
		t.Errorf("reply context mismatch (-want +got):\n%s", diff)
	}
}

// TestRedeliveryNotShownTwice: Bob's phone records a message as shown and
// then dies before acking it (its event consumer is stuck, and chatd goes
// down). chatd pushes the message again when Bob's phone, restarted from the
// same home, reconnects: the phone acks it but does not show it again.
func TestRedeliveryNotShownTwice(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	aliceHome := c.register(t, "15550005003", "Alice")
	bobHome := c.register(t, "15550005004", "Bob")
	alice := open(t, aliceHome, 0)
	alice.next(t, "ready", is("ready", "", ""))

	// Bob's event buffer holds one event: "ready" fills it, so the phone
	// blocks in the middle of handling the next message, after recording
	// it in seen.log and before acking it.
	bob := open(t, bobHome, 1)
	waitFor(t, "Bob's ready event", func() bool { return len(bob.Events()) == 1 })
	id, err := alice.SendText(t.Context(), bob.Number(), "only once", "", "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Bob's phone to record the message", func() bool {
		b, _ := os.ReadFile(filepath.Join(bobHome, "seen.log"))
		return strings.Contains(string(b), alice.Number()+" "+id+"\n")
	})
	c.stop() // chatd goes away before Bob's phone can ack
	if got := c.queueRows(t, bob.Number()); got != 1 {
		t.Fatalf("queue rows for Bob after the crash = %d, want 1 (unacked)", got)
	}
	rest := bob.stop(t)
	if diff := cmp.Diff([]string{"ready"}, eventNames(rest)); diff != "" {
		t.Fatalf("Bob's first run events mismatch (-want +got):\n%s", diff)
	}

	c.restart()
	bob = open(t, bobHome, 0)
	_, before := bob.next(t, "ready", is("ready", "", ""))
	for _, e := range before {
		if e.Event == "message" {
			t.Errorf("Bob's phone showed %s again after the restart: %+v", e.ID, e)
		}
	}
	// The redelivered message was acked all the same.
	waitFor(t, "Bob's phone to ack the redelivery", func() bool { return c.queueRows(t, bob.Number()) == 0 })
	b, err := os.ReadFile(filepath.Join(bobHome, "seen.log"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(b), " "+id+"\n"); got != 1 {
		t.Errorf("seen.log lists %s %d times, want 1:\n%s", id, got, b)
	}

	// And Bob's phone still shows new messages.
	id2, err := alice.SendText(t.Context(), bob.Number(), "new one", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := bob.next(t, "the new message", is("message", id2, "")); e.Text != "new one" {
		t.Errorf("new message = %+v", e)
	}
}

func eventNames(es []waphone.Event) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Event)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wait, what)
		}
		<-tick.C
	}
}

// TestBurst: a burst of messages is sealed together and the keys stored
// once for the burst, before any is sent: every message arrives, in order,
// and a phone restarted from its home afterwards goes on with the same
// session (its stored state was the one its messages used).
func TestBurst(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	aliceHome := c.register(t, "15550005101", "Alice")
	alice := open(t, aliceHome, 0)
	bob := open(t, c.register(t, "15550005102", "Bob"), 1000)
	alice.next(t, "ready", is("ready", "", ""))
	bob.next(t, "ready", is("ready", "", ""))
	first, err := alice.SendText(t.Context(), bob.Number(), "hello", "", "")
	if err != nil {
		t.Fatal(err)
	}
	bob.next(t, "first message", is("message", first, ""))
	var ids []string
	for i := range 50 {
		id, err := alice.SendText(t.Context(), bob.Number(), fmt.Sprintf("burst %d", i), "", "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for i, id := range ids {
		e, _ := bob.next(t, "burst message", is("message", "", ""))
		if e.ID != id || e.Text != fmt.Sprintf("burst %d", i) {
			t.Fatalf("message %d at Bob = %s %q, want %s in order", i, e.ID, e.Text, id)
		}
	}
	alice.stop(t)
	alice = open(t, aliceHome, 0)
	alice.next(t, "ready again", is("ready", "", ""))
	after, err := alice.SendText(t.Context(), bob.Number(), "after the restart", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := bob.next(t, "the message after the restart", is("message", after, "")); e.Text != "after the restart" {
		t.Errorf("after the restart Bob got %q", e.Text)
	}
}

// TestUnknownRecipient: a message to a number the network does not know
// fails with an error event, and the messages queued behind it still go.
func TestUnknownRecipient(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	alice := open(t, c.register(t, "15550005201", "Alice"), 0)
	bob := open(t, c.register(t, "15550005202", "Bob"), 0)
	alice.next(t, "ready", is("ready", "", ""))
	bob.next(t, "ready", is("ready", "", ""))
	lost, err := alice.SendText(t.Context(), "15550005999", "anyone there?", "", "")
	if err != nil {
		t.Fatal(err)
	}
	id, err := alice.SendText(t.Context(), bob.Number(), "hi Bob", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := alice.next(t, "the error for the unknown number", is("error", lost, "")); e.To != "15550005999" || !strings.Contains(e.Error, "not on the network") {
		t.Errorf("error event %+v", e)
	}
	bob.next(t, "the message queued behind it", is("message", id, ""))
}

// TestRecipientWithoutKeysYet: a number registered whose phone has not yet
// come online (so it published no keys) is not an unknown number: the
// message waits and arrives once that phone connects.
func TestRecipientWithoutKeysYet(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	alice := open(t, c.register(t, "15550005301", "Alice"), 0)
	bobHome := c.register(t, "15550005302", "Bob")
	alice.next(t, "ready", is("ready", "", ""))
	id, err := alice.SendText(t.Context(), "15550005302", "are you there yet?", "", "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // a retry or two while Bob has no keys
	bob := open(t, bobHome, 0)
	if e, skipped := bob.next(t, "the waiting message", is("message", id, "")); e.Text != "are you there yet?" {
		t.Errorf("Bob got %+v (after %v)", e, skipped)
	}
	if _, skipped := alice.next(t, "the sent receipt", is("receipt", id, "sent")); len(skipped) > 0 {
		for _, e := range skipped {
			if e.Event == "error" {
				t.Errorf("Alice: %+v", e)
			}
		}
	}
}
