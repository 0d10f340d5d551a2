package server

// Tests of the encrypted transport over real loopback connections: the Noise
// handshake and its certificate, the client key as credential, refused frames
// (replayed, tampered, oversized, early), the TLS mode, the fallback port and
// the HTTP CONNECT proxy.

import (
	"bufio"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/wire"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// encMessage is a message with an (opaque, to chatd) encrypted payload.
func encMessage(id, to string) *chatdv1.Stanza {
	return &chatdv1.Stanza{Body: &chatdv1.Stanza_Message{Message: &chatdv1.Message{Id: id, To: to, Kind: "text",
		Enc: &chatdv1.Enc{Type: chatdv1.EncType_ENC_TYPE_MSG, V: 2, Ciphertext: []byte("opaque ciphertext of " + id)}}}}
}

// stored returns how many rows the tables a connection can write to hold.
func stored(t *testing.T, n *testNet) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"accounts", "registrations", "slots", "queue", "stanza_ids"} {
		out[table] = count(t, n.db, "SELECT COUNT(*) FROM "+table)
	}
	return out
}

// expectStoredNothing fails unless the tables still hold what before said.
func expectStoredNothing(t *testing.T, n *testNet, before map[string]int) {
	t.Helper()
	for table, want := range before {
		if got := count(t, n.db, "SELECT COUNT(*) FROM "+table); got != want {
			t.Errorf("%s holds %d rows, want %d: a refused connection stored something", table, got, want)
		}
	}
}

// wireClient logs in with the wire package directly over nc and returns the
// connection after the server's Success.
func wireClient(t *testing.T, nc net.Conn, root ed25519.PublicKey, number string, key wire.KeyPair) *wire.Conn {
	t.Helper()
	t.Cleanup(func() { nc.Close() })
	login := &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_SESSION, Account: number, ClientVersion: "test/1", Passive: true}
	c, err := wire.ClientHandshake(t.Context(), nc, wire.ClientConfig{Static: key, RootKey: root, Login: login})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	nc.SetReadDeadline(time.Now().Add(wait))
	if st, err := c.ReadStanza(); err != nil || st.GetSuccess() == nil {
		t.Fatalf("first stanza = %v, %v; want Success", st, err)
	}
	return c
}

// expectEOF waits for the server to close c.
func expectEOF(t *testing.T, c *wire.Conn) {
	t.Helper()
	c.NetConn().SetReadDeadline(time.Now().Add(wait))
	for {
		st, err := c.ReadStanza()
		if err == nil {
			t.Logf("before closing, chatd sent %v", st)
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", wait)
		}
		return
	}
}

// TestHandshakeLogin: a session completes the handshake and the server gets
// its Login and its static key.
func TestHandshakeLogin(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const number = "15550005001"
	key := n.register(t, number, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	n.dial(t, number, key, clientOpts{epoch: 7}).connected(t)
	c := n.srv.online(number, 0)
	if c == nil {
		t.Fatal("no live connection for the account")
	}
	want := &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_SESSION, Account: number, Epoch: 7, ClientVersion: "test/1", Passive: true}
	if !proto.Equal(want, c.login) {
		t.Errorf("server's login = %v, want %v", c.login, want)
	}
	if string(c.wc.PeerStatic) != string(key.Public) {
		t.Errorf("server's PeerStatic = %x, want the client's key %x", c.wc.PeerStatic, key.Public)
	}
	if got := count(t, n.db, "SELECT epoch FROM slots WHERE number = ?", number); got != 7 {
		t.Errorf("slot epoch = %d, want 7", got)
	}
}

// TestClientRefusesUntrustedServer: a client that pins another root key, or
// meets a certificate that is expired or not from its root, refuses the
// server before it sends its login; the server logs why the handshake ended
// and stores nothing.
func TestClientRefusesUntrustedServer(t *testing.T) {
	t.Parallel()
	good := startNet(t, Config{})
	otherRoot, _, err := wire.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	keysWith := func(n *testNet, issue func(k *Keys) *chatdv1.Certificate) *Keys {
		k, err := LoadKeys(t.Context(), n.db, n.srv.log)
		if err != nil {
			t.Fatal(err)
		}
		k.Cert = issue(k)
		return k
	}
	_, forger, err := wire.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		keys    func(n *testNet) *Keys // nil: the network's own
		pin     func(n *testNet) ed25519.PublicKey
		wantMsg string
	}{
		{"client pins another root key", nil, func(*testNet) ed25519.PublicKey { return otherRoot }, "not signed by the pinned root key"},
		{"expired certificate", func(n *testNet) *Keys {
			return keysWith(n, func(k *Keys) *chatdv1.Certificate {
				c, err := wire.IssueCertificate(k.Root, k.Static.Public, time.Now().Add(-400*24*time.Hour), time.Now().Add(-35*24*time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				return c
			})
		}, func(n *testNet) ed25519.PublicKey { return n.rootKey }, "expired"},
		{"certificate from another root", func(n *testNet) *Keys {
			return keysWith(n, func(k *Keys) *chatdv1.Certificate {
				c, err := wire.IssueCertificate(forger, k.Static.Public, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				return c
			})
		}, func(n *testNet) ed25519.PublicKey { return n.rootKey }, "not signed by the pinned root key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := good
			if tt.keys != nil {
				db := good.db // same root key and static key as the good network
				n = startNet(t, Config{DB: db, Keys: tt.keys(good)})
			}
			before := stored(t, n)
			ctx := t.Context()
			login := &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_REGISTER, Account: "15550005002", ClientVersion: "test/1"}
			err := session.Once(ctx, session.Config{Addrs: n.addrs, Static: newKey(t), RootKey: tt.pin(n)}, login,
				func(iq iqFunc) error {
					_, err := iq(ctx, registerIQ("15550005002", chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER))
					return err
				})
			if !errors.Is(err, wire.ErrUntrustedServer) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Once = %v, want ErrUntrustedServer saying %q", err, tt.wantMsg)
			}
			n.waitLog(t, "connection refused: handshake failed", "pin another root key")
			expectStoredNothing(t, n, before)
		})
	}
}

// TestWrongClientKey: the client's static key is its credential; a login for
// an account with any other key is refused UNAUTHORIZED, logged, and stores
// nothing.
func TestWrongClientKey(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const number = "15550005003"
	n.register(t, number, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	before := stored(t, n)
	intruder := newKey(t)
	err := n.dial(t, number, intruder, clientOpts{epoch: 99}).end(t)
	if !refusal(err, chatdv1.FailureReason_FAILURE_REASON_UNAUTHORIZED) {
		t.Fatalf("login with another key = %v, want ErrRefused UNAUTHORIZED", err)
	}
	n.waitLog(t, "level=WARN", "login refused", "FAILURE_REASON_UNAUTHORIZED", "account="+number)
	expectStoredNothing(t, n, before)
}

// frameProxy relays one client's connection to chatd frame by frame in the
// client → server direction, so a test can capture, tamper with and inject
// frames. Frames 0 and 1 are handshake messages 1 and 3; the rest are
// transport frames.
type frameProxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	// tamper, when set, may change a client frame (by index) before it is
	// forwarded.
	tamper func(i int, body []byte) []byte

	mu       sync.Mutex // guards up (writes), down and frames
	up, down net.Conn
	frames   [][]byte
	gotFrame chan struct{}
	wg       sync.WaitGroup
}

func newFrameProxy(t *testing.T, target string) *frameProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &frameProxy{t: t, ln: ln, target: target, gotFrame: make(chan struct{}, 100)}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range []net.Conn{p.up, p.down} {
			if c != nil {
				c.Close()
			}
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *frameProxy) serve() {
	down, err := p.ln.Accept()
	if err != nil {
		return
	}
	defer down.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.t.Errorf("proxy: %v", err)
		return
	}
	p.mu.Lock()
	p.up, p.down = up, down
	p.mu.Unlock()
	defer up.Close()
	p.wg.Go(func() {
		io.Copy(down, up) // server → client as is
		down.Close()
	})
	br := bufio.NewReader(down)
	hdr := make([]byte, 4)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return
	}
	p.write(hdr)
	for i := 0; ; i++ {
		body, err := wire.ReadFrame(br, nil)
		if err != nil {
			up.Close()
			return
		}
		if p.tamper != nil {
			body = p.tamper(i, body)
		}
		p.mu.Lock()
		p.frames = append(p.frames, append([]byte(nil), body...))
		p.mu.Unlock()
		p.write(frameBytes(body))
		select {
		case p.gotFrame <- struct{}{}:
		default:
		}
	}
}

func frameBytes(body []byte) []byte {
	return append([]byte{byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

// write sends raw bytes to chatd, between whole frames.
func (p *frameProxy) write(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up.Write(b)
}

// frame returns client frame i, waiting for it.
func (p *frameProxy) frame(i int) []byte {
	p.t.Helper()
	deadline := time.After(wait)
	for {
		p.mu.Lock()
		if i < len(p.frames) {
			f := p.frames[i]
			p.mu.Unlock()
			return f
		}
		p.mu.Unlock()
		select {
		case <-p.gotFrame:
		case <-deadline:
			p.t.Fatalf("proxy: no client frame %d within %v", i, wait)
		}
	}
}

// TestRefusedFrames: after the handshake, a replayed frame (captured by a
// relaying proxy and sent again), a tampered frame (one bit flipped) and an
// oversized frame each close the connection with a log line, and none of
// them stores anything.
func TestRefusedFrames(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const A, B = "15550005004", "15550005005"
	ka := n.register(t, A, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	n.register(t, B, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)

	t.Run("replayed frame", func(t *testing.T) {
		p := newFrameProxy(t, n.addrs[0])
		nc, err := net.Dial("tcp", p.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c := wireClient(t, nc, n.rootKey, A, ka)
		if err := c.WriteStanza(encMessage("replay-1", B)); err != nil {
			t.Fatal(err)
		}
		c.Flush()
		if st, err := c.ReadStanza(); err != nil || st.GetAck().GetId() != "replay-1" || st.GetAck().GetError() != "" {
			t.Fatalf("ack of replay-1 = %v, %v", st, err)
		}
		before := stored(t, n)
		p.write(frameBytes(p.frame(2))) // the message's frame, once more
		expectEOF(t, c)
		n.waitLog(t, "frame refused", "account="+A, "failed authentication")
		expectStoredNothing(t, n, before)
		if got := count(t, n.db, "SELECT COUNT(*) FROM queue WHERE recipient = ? AND stanza_id = ?", B, "replay-1"); got != 1 {
			t.Errorf("replay-1 queued %d times, want 1", got)
		}
	})

	t.Run("tampered frame", func(t *testing.T) {
		p := newFrameProxy(t, n.addrs[0])
		p.tamper = func(i int, body []byte) []byte {
			if i == 2 {
				body[len(body)/2] ^= 0x04
			}
			return body
		}
		nc, err := net.Dial("tcp", p.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c := wireClient(t, nc, n.rootKey, A, ka)
		before := stored(t, n)
		if err := c.WriteStanza(encMessage("tampered-1", B)); err != nil {
			t.Fatal(err)
		}
		c.Flush()
		expectEOF(t, c)
		n.waitLog(t, "frame refused", "account="+A, "failed authentication")
		expectStoredNothing(t, n, before)
	})

	t.Run("oversized frame", func(t *testing.T) {
		p := newFrameProxy(t, n.addrs[0])
		nc, err := net.Dial("tcp", p.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c := wireClient(t, nc, n.rootKey, A, ka)
		before := stored(t, n)
		p.frame(1) // the handshake is through the proxy
		p.write(append([]byte{0x01, 0x00, 0x00}, make([]byte, 1024)...))
		expectEOF(t, c)
		n.waitLog(t, "frame refused", "account="+A, "exceeds the maximum size")
		expectStoredNothing(t, n, before)
	})
}

// TestStanzaBeforeHandshake: a client that sends a stanza instead of
// finishing the handshake (in place of message 1, or of message 3) is cut
// off with a log line, and nothing it sent is used.
func TestStanzaBeforeHandshake(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const A, B = "15550005006", "15550005007"
	n.register(t, A, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	n.register(t, B, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	before := stored(t, n)
	stanza, err := proto.Marshal(encMessage("early-1", B))
	if err != nil {
		t.Fatal(err)
	}
	login, _ := proto.Marshal(&chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_SESSION, Account: A})
	ephemeral := make([]byte, 32)
	ephemeral[0] = 9 // the X25519 base point: a valid public key
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"stanza as message 1", append(wire.Header[:], frameBytes(stanza)...), "handshake message 1"},
		{"login in the clear", append(wire.Header[:], frameBytes(login)...), "handshake message 1"},
		{"stanza as message 3", append(append(wire.Header[:], frameBytes(ephemeral)...), frameBytes(stanza)...), "handshake message 3"},
		{"no header", frameBytes(stanza), "bad connection header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", n.addrs[0])
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.Write(tt.in)
			nc.SetReadDeadline(time.Now().Add(wait))
			io.Copy(io.Discard, nc) // returns when chatd closes (after message 2, if it got that far)
			n.waitLog(t, "connection refused", tt.want, "remote="+nc.LocalAddr().String())
		})
	}
	expectStoredNothing(t, n, before)
}

// TestFallbackAndTLS: every chat port serves both modes: the raw protocol,
// and the protocol inside TLS (ALPN chatd/1), told apart by the first byte.
// A session reaches the fallback when 5222 is closed, and a "tls://"
// address connects over TLS to the port that also serves raw.
func TestFallbackAndTLS(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const number = "15550005008"
	key := n.register(t, number, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	fallback := n.addrs[1]
	tests := []struct {
		name    string
		addrs   []string
		want    string
		wantTLS bool
	}{
		{"5222 closed: raw fallback", []string{closed, fallback, "tls://" + fallback}, fallback, false},
		{"5222 and raw fallback closed: TLS", []string{closed, "tls://" + fallback}, "tls://" + fallback, true},
		{"TLS on the main port", []string{"tls://" + n.addrs[0]}, "tls://" + n.addrs[0], true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := n.dialAddrs(t, tt.addrs, number, key, clientOpts{epoch: uint64(i + 1)}).connected(t)
			if got := c.sess.Addr(); got != tt.want {
				t.Errorf("connected through %s, want %s", got, tt.want)
			}
			if _, err := c.iq(t, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}}); err != nil {
				t.Errorf("ping: %v", err)
			}
			line := n.waitLog(t, "msg=login", "account="+number, fmt.Sprintf("epoch=%d", i+1))
			if got := strings.Contains(line, "tls=true"); got != tt.wantTLS {
				t.Errorf("server's login line %q: TLS %v, want %v", line, got, tt.wantTLS)
			}
			c.stop(t)
		})
	}

	// A TLS client for another protocol is refused during TLS.
	tc, err := tls.Dial("tcp", fallback, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err == nil {
		tc.Close()
		t.Error("TLS with ALPN h2 was accepted")
	}
	n.waitLog(t, "connection refused: no chat protocol", "tls=true")
}

// connectProxy is an HTTP CONNECT proxy that resolves the names it is asked
// for with hosts, and records every request line and credential it saw.
type connectProxy struct {
	ln    net.Listener
	hosts map[string]string // name → loopback address
	wg    sync.WaitGroup

	mu       sync.Mutex
	requests []string // "CONNECT host:port <Proxy-Authorization>"
	conns    []net.Conn
}

func newConnectProxy(t *testing.T, hosts map[string]string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, hosts: hosts}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			p.wg.Go(func() { p.handle(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *connectProxy) handle(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.requests = append(p.requests, req.Method+" "+req.Host+" "+req.Header.Get("Proxy-Authorization"))
	p.mu.Unlock()
	if req.Method != http.MethodConnect || req.Header.Get("Proxy-Authorization") == "" {
		io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
		return
	}
	host, port, _ := net.SplitHostPort(req.Host)
	target, ok := p.hosts[host]
	if !ok {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", net.JoinHostPort(target, port))
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, up)
	p.mu.Unlock()
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{})
	go func() {
		io.Copy(c, up)
		c.Close()
		close(done)
	}()
	io.Copy(up, br)
	up.Close()
	<-done
}

func (p *connectProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

// TestHTTPSProxy: with HTTPS_PROXY set, the session reaches chatd through the
// proxy with CONNECT (sending the proxy credentials of the URL), raw and over
// TLS, and the connection works end to end. Not parallel: it sets the
// environment.
func TestHTTPSProxy(t *testing.T) {
	n := startNet(t, Config{})
	const number = "15550005009"
	key := n.register(t, number, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	// A name only the proxy can resolve: the client must not dial it itself
	// (and loopback addresses never go through a proxy).
	p := newConnectProxy(t, map[string]string{"chatd.test": "127.0.0.1"})
	t.Setenv("HTTPS_PROXY", "http://alice:s3cret@"+p.ln.Addr().String())
	t.Setenv("https_proxy", "")
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	_, port, _ := net.SplitHostPort(n.addrs[1])
	const auth = "Basic YWxpY2U6czNjcmV0" // alice:s3cret

	for i, addr := range []string{"chatd.test:" + port, "tls://chatd.test:" + port} {
		t.Run(addr, func(t *testing.T) {
			c := n.dialAddrs(t, []string{addr}, number, key, clientOpts{epoch: uint64(i + 1)}).connected(t)
			if _, err := c.iq(t, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}}); err != nil {
				t.Errorf("ping through the proxy: %v", err)
			}
			c.stop(t)
			want := "CONNECT chatd.test:" + port + " " + auth
			if got := p.seen(); len(got) != i+1 || got[i] != want {
				t.Errorf("proxy saw %q, want request %d to be %q", got, i, want)
			}
		})
	}

	// A registration (session.Once) goes through it too.
	before := len(p.seen())
	err := session.Once(t.Context(), session.Config{Addrs: []string{"chatd.test:" + port}, Static: key, RootKey: n.rootKey},
		&chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_REGISTER, Account: number},
		func(iq iqFunc) error {
			_, err := iq(t.Context(), &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}})
			return err
		})
	if err != nil {
		t.Errorf("Once through the proxy: %v", err)
	}
	if got := len(p.seen()); got != before+1 {
		t.Errorf("proxy saw %d more requests, want 1", got-before)
	}
}
