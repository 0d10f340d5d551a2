package session_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/openwaba/openwaba/chatd/server"
	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

const wait = 15 * time.Second

// chatd is a real server on loopback listeners; stop and start restart it on
// the same addresses and database.
type chatd struct {
	t       *testing.T
	db      *sql.DB
	addrs   []string
	admin   string
	rootKey ed25519.PublicKey
	accept  atomic.Int64 // connections accepted on the chat ports

	cancel context.CancelFunc
	done   chan error
}

func newChatd(t *testing.T) *chatd {
	t.Helper()
	c := &chatd{t: t, db: dbtest.New(t, db.Chatd)}
	keys, err := server.LoadKeys(t.Context(), c.db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.rootKey = keys.RootPublic()
	c.start("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	t.Cleanup(c.stop)
	return c
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return nc, err
}

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
	srv := server.New(server.Config{
		Listeners: []net.Listener{countingListener{ls[0], &c.accept}, countingListener{ls[1], &c.accept}},
		Admin:     ls[2],
		DB:        c.db,
		Log:       slog.New(slog.NewTextHandler(c.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
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

func (c *chatd) restart() {
	c.t.Helper()
	c.stop()
	c.start(c.addrs[0], c.addrs[1], c.admin)
}

// register registers number as a consumer with a new key.
func (c *chatd) register(t *testing.T, number string) wire.KeyPair {
	t.Helper()
	key, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	login := &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_REGISTER, Account: number}
	err = session.Once(ctx, c.config(c.addrs, key), login, func(iq func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)) error {
		if _, err := iq(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Register{Register: &chatdv1.RegisterRequest{
			Number: number, Kind: chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER}}}); err != nil {
			return err
		}
		hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := hc.Get("http://" + c.admin + "/sandbox/codes/" + number)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var body struct{ Code string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return err
		}
		_, err = iq(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Verify{Verify: &chatdv1.VerifyRequest{Number: number, Code: body.Code}}})
		return err
	})
	if err != nil {
		t.Fatalf("register %s: %v", number, err)
	}
	return key
}

// handler records what the session reports.
type handler struct {
	mu    sync.Mutex
	gens  []uint64
	state []session.State
}

func (h *handler) Connected(_ context.Context, gen uint64) {
	h.mu.Lock()
	h.gens = append(h.gens, gen)
	h.mu.Unlock()
}
func (h *handler) Stanza(context.Context, *chatdv1.Stanza) {}
func (h *handler) StateChanged(s session.State) {
	h.mu.Lock()
	h.state = append(h.state, s)
	h.mu.Unlock()
}

func (h *handler) connections() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]uint64(nil), h.gens...)
}

// config is a session configuration for this network with fast timings.
func (c *chatd) config(addrs []string, key wire.KeyPair) session.Config {
	return session.Config{
		Addrs:       addrs,
		Static:      key,
		RootKey:     c.rootKey,
		BackoffBase: 20 * time.Millisecond,
		BackoffMax:  200 * time.Millisecond,
		DialTimeout: time.Second,
	}
}

func (c *chatd) newSession(addrs []string, number string, key wire.KeyPair, h session.Handler) *session.Session {
	cfg := c.config(addrs, key)
	cfg.Login = func() *chatdv1.Login {
		return &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_SESSION, Account: number, Passive: true}
	}
	cfg.Handler = h
	return session.New(cfg)
}

// runner owns one s.Run.
type runner struct {
	cancel context.CancelFunc
	ch     chan error
	once   sync.Once
	err    error
	ended  bool
}

// run starts s.Run; Cleanup stops it.
func run(t *testing.T, s *session.Session) *runner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{cancel: cancel, ch: make(chan error, 1)}
	go func() { r.ch <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop() })
	return r
}

// wait waits up to d for Run to return by itself; ok is false if it did not.
func (r *runner) wait(d time.Duration) (err error, ok bool) {
	if r.ended {
		return r.err, true
	}
	select {
	case r.err = <-r.ch:
		r.ended = true
		return r.err, true
	case <-time.After(d):
		return nil, false
	}
}

// stop cancels Run and returns its error.
func (r *runner) stop() error {
	r.cancel()
	if err, ok := r.wait(wait); ok {
		return err
	}
	return errors.New("Run did not return after cancel")
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

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestDialOrder: the session takes the first address that answers, in order:
// 5222 when it is up, the fallback port when 5222 is closed.
func TestDialOrder(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	const number = "15550004001"
	key := c.register(t, number)
	tests := []struct {
		name  string
		addrs []string
		want  string
	}{
		{"main port up", []string{c.addrs[0], c.addrs[1]}, c.addrs[0]},
		{"main port closed", []string{closedAddr(t), c.addrs[1]}, c.addrs[1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := c.newSession(tt.addrs, number, key, &handler{})
			r := run(t, s)
			waitFor(t, "connected", func() bool { return s.State() == session.Connected })
			if got := s.Addr(); got != tt.want {
				t.Errorf("connected through %s, want %s", got, tt.want)
			}
			if err := r.stop(); !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		})
	}
}

// TestRefusedIsTerminal: a Failure ends Run with ErrRefused at once, after
// exactly one connection.
func TestRefusedIsTerminal(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	key, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	h := &handler{}
	s := c.newSession(c.addrs, "15550004002", key, h) // not registered
	err, ended := run(t, s).wait(wait)
	if !ended {
		t.Fatal("Run still retrying after a Failure")
	}
	if !errors.Is(err, session.ErrRefused) || !strings.Contains(err.Error(), "NOT_REGISTERED") {
		t.Fatalf("Run = %v, want ErrRefused NOT_REGISTERED", err)
	}
	if got := c.accept.Load(); got != 1 {
		t.Errorf("chatd accepted %d connections, want 1 (no retry after a Failure)", got)
	}
	if got := h.connections(); len(got) != 0 {
		t.Errorf("Connected called for %v on a refused login", got)
	}
	h.mu.Lock()
	states := append([]session.State(nil), h.state...)
	h.mu.Unlock()
	if diff := cmp.Diff([]session.State{session.Connecting, session.Stopped, session.Disconnected}, states); diff != "" {
		t.Errorf("state transitions mismatch (-want +got):\n%s", diff)
	}
}

// TestReconnectAfterServerRestart: when chatd goes away and comes back on the
// same addresses, the session reconnects by itself.
func TestReconnectAfterServerRestart(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	const number = "15550004003"
	key := c.register(t, number)
	h := &handler{}
	s := c.newSession(c.addrs, number, key, h)
	run(t, s)
	waitFor(t, "first connection", func() bool { return s.State() == session.Connected })

	c.stop()
	waitFor(t, "the session to notice", func() bool { return s.State() != session.Connected })
	c.start(c.addrs[0], c.addrs[1], c.admin)
	waitFor(t, "reconnection", func() bool { return len(h.connections()) == 2 && s.State() == session.Connected })
	if diff := cmp.Diff([]uint64{1, 2}, h.connections()); diff != "" {
		t.Errorf("connection generations mismatch (-want +got):\n%s", diff)
	}
	// The new connection works end to end.
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if _, err := s.IQ(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}}); err != nil {
		t.Errorf("ping after reconnecting: %v", err)
	}
}

// TestIQCorrelation: concurrent IQs each get their own response, and IQs
// without a connection fail at once.
func TestIQCorrelation(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	const number = "15550004004"
	key := c.register(t, number)
	s := c.newSession(c.addrs, number, key, &handler{})

	if _, err := s.IQ(t.Context(), &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}}); !errors.Is(err, session.ErrNotConnected) {
		t.Errorf("IQ before Run = %v, want ErrNotConnected", err)
	}
	if err := s.Send(t.Context(), &chatdv1.Stanza{}); !errors.Is(err, session.ErrNotConnected) {
		t.Errorf("Send before Run = %v, want ErrNotConnected", err)
	}
	run(t, s)
	waitFor(t, "connected", func() bool { return s.State() == session.Connected })

	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	const n = 50
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Odd ones ask about the session's own (registered) number.
			want := fmt.Sprintf("1555999%04d", i)
			if i%2 == 1 {
				want = number
			}
			res, err := s.IQ(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_ContactCheck{ContactCheck: &chatdv1.ContactCheck{Numbers: []string{want}}}})
			if err != nil {
				errs <- fmt.Errorf("IQ %d: %w", i, err)
				return
			}
			cs := res.GetContactCheckResult().GetContacts()
			if len(cs) != 1 || cs[0].Number != want || cs[0].Registered != (i%2 == 1) {
				errs <- fmt.Errorf("IQ %d asked about %s, got %v", i, want, cs)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// An IQ error comes back as *IQError.
	_, err := s.IQ(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_Register{Register: &chatdv1.RegisterRequest{Number: "1"}}})
	var ie *session.IQError
	if !errors.As(err, &ie) || ie.Code != 400 {
		t.Errorf("invalid register IQ = %v, want IQError 400", err)
	}
}

// TestRunStopsOnCancel: Run returns promptly when ctx is cancelled, and
// nothing it started is left running. Not parallel: goleak looks at every
// goroutine of the process.
func TestRunStopsOnCancel(t *testing.T) {
	c := newChatd(t)
	const number = "15550004005"
	key := c.register(t, number)
	ignore := goleak.IgnoreCurrent()

	s := c.newSession(c.addrs, number, key, &handler{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "connected", func() bool { return s.State() == session.Connected })

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of cancel")
	}
	if got := s.State(); got != session.Disconnected {
		t.Errorf("state after Run = %v, want disconnected", got)
	}
	// Stop the server and close the database too, so that only goroutines
	// that outlived their owner remain.
	c.stop()
	c.db.Close()
	goleak.VerifyNone(t, ignore)
}

// TestNoRootKey: a session without the network's root key cannot
// authenticate chatd and says so at once, without dialling.
func TestNoRootKey(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	key := c.register(t, "15550004010")
	start := c.accept.Load()
	cfg := c.config(c.addrs, key)
	cfg.RootKey = nil
	cfg.Handler = &handler{}
	cfg.Login = func() *chatdv1.Login {
		return &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_SESSION, Account: "15550004010"}
	}
	if err := session.New(cfg).Run(t.Context()); !errors.Is(err, session.ErrNoRootKey) {
		t.Errorf("Run without a root key = %v, want ErrNoRootKey", err)
	}
	err := session.Once(t.Context(), cfg, &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_REGISTER, Account: "15550004010"},
		func(func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)) error { return nil })
	if !errors.Is(err, session.ErrNoRootKey) {
		t.Errorf("Once without a root key = %v, want ErrNoRootKey", err)
	}
	if got := c.accept.Load() - start; got != 0 {
		t.Errorf("chatd accepted %d connections, want none", got)
	}
}

// TestUntrustedServer: a server that cannot prove it belongs to the pinned
// network makes Once fail at once with ErrUntrustedServer, but Run keeps
// trying (with backoff) until it is stopped: it may be a passing
// misconfiguration.
func TestUntrustedServer(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	const number = "15550004011"
	key := c.register(t, number)
	otherRoot, _, err := wire.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}

	cfg := c.config(c.addrs, key)
	cfg.RootKey = otherRoot
	called := false
	err = session.Once(t.Context(), cfg, &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_REGISTER, Account: number},
		func(func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)) error { called = true; return nil })
	if !errors.Is(err, wire.ErrUntrustedServer) {
		t.Fatalf("Once against an untrusted server = %v, want ErrUntrustedServer", err)
	}
	if called {
		t.Error("Once ran its function on an untrusted server")
	}

	h := &handler{}
	cfg.Handler = h
	cfg.Login = func() *chatdv1.Login {
		return &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_SESSION, Account: number, Passive: true}
	}
	s := session.New(cfg)
	start := c.accept.Load()
	r := run(t, s)
	waitFor(t, "several attempts", func() bool { return c.accept.Load() >= start+4 })
	if err, ended := r.wait(0); ended {
		t.Fatalf("Run gave up on an untrusted server: %v", err)
	}
	if len(h.connections()) != 0 || s.State() == session.Connected {
		t.Error("the session connected to an untrusted server")
	}
	if err := r.stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}
