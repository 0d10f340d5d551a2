package server

// Test harness: a real chatd on loopback listeners over a fresh MariaDB
// database, and clients built on chatd/session. Everything a helper starts is
// stopped by t.Cleanup, clients before the server.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// wait bounds every wait on the network in these tests.
const wait = 15 * time.Second

type testNet struct {
	db      *sql.DB
	addrs   []string // the chat port and the fallback port
	admin   string
	media   string // the media server's base URL
	srv     *Server
	rootKey ed25519.PublicKey // what clients pin
	keys    *Keys
	logs    *logBuffer // everything the server logged, from Info up
	stop    func()
}

// logBuffer collects log output; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitLog waits until the server logged a line containing every one of
// parts, and returns it.
func (n *testNet) waitLog(t *testing.T, parts ...string) string {
	t.Helper()
	var found string
	waitFor(t, fmt.Sprintf("a log line with %q", parts), func() bool {
		for _, line := range strings.Split(n.logs.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				found = line
				return true
			}
		}
		return false
	})
	return found
}

// startNet runs a Server configured by cfg (DB, Listeners, Admin and Log are
// filled in; Keys too, from the database, unless set) until the test ends.
func startNet(t *testing.T, cfg Config) *testNet {
	t.Helper()
	if cfg.DB == nil {
		cfg.DB = dbtest.New(t, db.Chatd)
	}
	logs := &logBuffer{}
	cfg.Log = slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}),
		slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if cfg.Keys == nil {
		k, err := LoadKeys(t.Context(), cfg.DB, cfg.Log)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Keys = k
	}
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	cfg.Listeners = []net.Listener{listen(), listen()}
	cfg.Admin = listen()
	cfg.Media = listen()
	if cfg.MediaDir == "" {
		cfg.MediaDir = t.TempDir()
	}
	n := &testNet{
		db:      cfg.DB,
		addrs:   []string{cfg.Listeners[0].Addr().String(), cfg.Listeners[1].Addr().String()},
		admin:   cfg.Admin.Addr().String(),
		media:   "https://" + cfg.Media.Addr().String(),
		srv:     New(cfg),
		rootKey: cfg.Keys.RootPublic(),
		keys:    cfg.Keys,
		logs:    logs,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.srv.Serve(ctx) }()
	stopped := false
	n.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve = %v", err)
			}
		case <-time.After(wait):
			t.Errorf("Serve did not return within %v of cancel", wait)
		}
	}
	t.Cleanup(n.stop)
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wait, what)
		}
		<-tick.C
	}
}

func count(t *testing.T, d *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := d.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// adminGet fetches path from the admin API (no keep-alive: nothing lingers).
func (n *testNet) adminGet(t *testing.T, path string) (int, map[string]string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: wait}
	resp, err := c.Get("http://" + n.admin + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	if json.Unmarshal(b, &body) != nil {
		body = map[string]string{"raw": string(b)}
	}
	return resp.StatusCode, body
}

type iqFunc = func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)

// registration runs fn on a registration connection for number with key.
func (n *testNet) registration(t *testing.T, number string, key wire.KeyPair, fn func(iq iqFunc) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	login := &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_REGISTER, Account: number, ClientVersion: "test/1"}
	return session.Once(ctx, session.Config{Addrs: n.addrs, Static: key, RootKey: n.rootKey}, login, fn)
}

func registerIQ(number string, kind chatdv1.AccountKind) *chatdv1.IQ {
	return &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Register{Register: &chatdv1.RegisterRequest{
		Number: number, Kind: kind, Method: "sms", Name: "name of " + number}}}
}

func verifyIQ(number, code string) *chatdv1.IQ {
	return &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Verify{Verify: &chatdv1.VerifyRequest{Number: number, Code: code}}}
}

// register registers number with a new key (or key, when given) and returns
// the key.
func (n *testNet) register(t *testing.T, number string, kind chatdv1.AccountKind, key ...wire.KeyPair) wire.KeyPair {
	t.Helper()
	var k wire.KeyPair
	if len(key) > 0 {
		k = key[0]
	} else {
		k = newKey(t)
	}
	err := n.registration(t, number, k, func(iq iqFunc) error {
		ctx := t.Context()
		if _, err := iq(ctx, registerIQ(number, kind)); err != nil {
			return fmt.Errorf("register: %w", err)
		}
		status, body := n.adminGet(t, "/sandbox/codes/"+number)
		if status != http.StatusOK {
			return fmt.Errorf("sandbox code: %d %v", status, body)
		}
		if _, err := iq(ctx, verifyIQ(number, body["code"])); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("register %s: %v", number, err)
	}
	return k
}

func newKey(t *testing.T) wire.KeyPair {
	t.Helper()
	k, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// client is a session with a recording handler.
type client struct {
	number   string
	sess     *session.Session
	stanzas  chan *chatdv1.Stanza
	autoAck  bool
	onStanza func(*chatdv1.Stanza) // called on the reader goroutine, before recording
	cancel   context.CancelFunc
	done     chan error
	ended    bool
	endErr   error
}

type clientOpts struct {
	shard, epoch uint64
	autoAck      bool
	onStanza     func(*chatdv1.Stanza)
}

// dial starts a session for number and returns at once; see connected.
func (n *testNet) dial(t *testing.T, number string, key wire.KeyPair, o clientOpts) *client {
	t.Helper()
	return n.dialAddrs(t, n.addrs, number, key, o)
}

// dialAddrs is dial with other addresses (e.g. tls://, a proxy's).
func (n *testNet) dialAddrs(t *testing.T, addrs []string, number string, key wire.KeyPair, o clientOpts) *client {
	t.Helper()
	c := &client{number: number, stanzas: make(chan *chatdv1.Stanza, 10000), autoAck: o.autoAck, onStanza: o.onStanza, done: make(chan error, 1)}
	c.sess = session.New(session.Config{
		Addrs:   addrs,
		Static:  key,
		RootKey: n.rootKey,
		Login: func() *chatdv1.Login {
			return &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_SESSION, Account: number, Shard: uint32(o.shard), Epoch: o.epoch, ClientVersion: "test/1", Passive: true}
		},
		Handler:     c,
		BackoffBase: 20 * time.Millisecond,
		BackoffMax:  200 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() { c.done <- c.sess.Run(ctx) }()
	t.Cleanup(func() { c.stop(t) })
	return c
}

func (c *client) Connected(context.Context, uint64) {}
func (c *client) StateChanged(session.State)        {}
func (c *client) Stanza(ctx context.Context, st *chatdv1.Stanza) {
	if c.onStanza != nil {
		c.onStanza(st)
	}
	if c.autoAck {
		if seq, cls := queueSeq(st); seq != 0 {
			c.sess.Send(ctx, ackStanza(seq, cls))
		}
	}
	select {
	case c.stanzas <- st:
	case <-ctx.Done():
	}
}

func queueSeq(st *chatdv1.Stanza) (uint64, chatdv1.AckClass) {
	switch b := st.Body.(type) {
	case *chatdv1.Stanza_Message:
		return b.Message.QueueSeq, chatdv1.AckClass_ACK_CLASS_MESSAGE
	case *chatdv1.Stanza_Receipt:
		return b.Receipt.QueueSeq, chatdv1.AckClass_ACK_CLASS_RECEIPT
	case *chatdv1.Stanza_Notification:
		return b.Notification.QueueSeq, chatdv1.AckClass_ACK_CLASS_NOTIFICATION
	}
	return 0, 0
}

func ackStanza(seq uint64, cls chatdv1.AckClass) *chatdv1.Stanza {
	return &chatdv1.Stanza{Body: &chatdv1.Stanza_Ack{Ack: &chatdv1.Ack{QueueSeq: seq, Class: cls}}}
}

// connected waits until the session is logged in and active.
func (c *client) connected(t *testing.T) *client {
	t.Helper()
	waitFor(t, c.number+" connected", func() bool {
		select {
		case err := <-c.done:
			c.ended, c.endErr = true, err
			t.Fatalf("session of %s ended before it connected: %v", c.number, err)
		default:
		}
		return c.sess.State() == session.Connected
	})
	return c
}

// end waits for Run to return by itself and returns its error.
func (c *client) end(t *testing.T) error {
	t.Helper()
	if c.ended {
		return c.endErr
	}
	select {
	case err := <-c.done:
		c.ended, c.endErr = true, err
		return err
	case <-time.After(wait):
		t.Fatalf("session of %s still running after %v", c.number, wait)
		return nil
	}
}

// stop cancels the session and waits for Run to return.
func (c *client) stop(t *testing.T) {
	c.cancel()
	if c.ended {
		return
	}
	select {
	case err := <-c.done:
		c.ended, c.endErr = true, err
	case <-time.After(wait):
		t.Errorf("session of %s did not stop within %v", c.number, wait)
	}
}

func (c *client) send(t *testing.T, st *chatdv1.Stanza) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := c.sess.Send(ctx, st); err != nil {
		t.Fatalf("%s: send: %v", c.number, err)
	}
}

func (c *client) iq(t *testing.T, iq *chatdv1.IQ) (*chatdv1.IQ, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	return c.sess.IQ(ctx, iq)
}

// recv returns the next stanza the client received.
func (c *client) recv(t *testing.T) *chatdv1.Stanza {
	t.Helper()
	select {
	case st := <-c.stanzas:
		return st
	case <-time.After(wait):
		t.Fatalf("%s received nothing within %v", c.number, wait)
		return nil
	}
}

// await skips received stanzas until one satisfies pred.
func (c *client) await(t *testing.T, what string, pred func(*chatdv1.Stanza) bool) *chatdv1.Stanza {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case st := <-c.stanzas:
			if pred(st) {
				return st
			}
		case <-deadline:
			t.Fatalf("%s: no %s within %v", c.number, what, wait)
			return nil
		}
	}
}

// awaitAck waits for the server's ack (or nack) of the stanza with id.
func (c *client) awaitAck(t *testing.T, id string) *chatdv1.Ack {
	t.Helper()
	return c.await(t, "ack of "+id, func(st *chatdv1.Stanza) bool { return st.GetAck() != nil && st.GetAck().Id == id }).GetAck()
}

func textMessage(id, to, text string) *chatdv1.Stanza {
	return &chatdv1.Stanza{Body: &chatdv1.Stanza_Message{Message: &chatdv1.Message{Id: id, To: to, Kind: "text",
		Enc: &chatdv1.Enc{Type: chatdv1.EncType_ENC_TYPE_MSG, V: 2, Ciphertext: []byte(text)}}}}
}

// refusal reports whether err is a login refusal with reason.
func refusal(err error, reason chatdv1.FailureReason) bool {
	return errors.Is(err, session.ErrRefused) && strings.Contains(err.Error(), reason.String())
}
