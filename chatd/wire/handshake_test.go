package wire_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flynn/noise"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/openwaba/openwaba/chatd/wire"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// network is a test network: a root key, and a server static key with a
// certificate from it.
type network struct {
	rootPub  ed25519.PublicKey
	rootPriv ed25519.PrivateKey
	server   wire.ServerConfig
}

// newNetwork returns a network with fresh random keys and a certificate
// valid from an hour ago for a day.
func newNetwork(t testing.TB) network {
	t.Helper()
	pub, priv, err := wire.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	static, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := wire.IssueCertificate(priv, static.Public, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return network{rootPub: pub, rootPriv: priv, server: wire.ServerConfig{Static: static, Cert: cert}}
}

// fixedNetwork is a network whose keys never change (the fuzz corpus holds
// transcripts made against it), with a certificate valid 2020–2200.
func fixedNetwork(t testing.TB) network {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	sk, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{2}, 32))
	if err != nil {
		t.Fatal(err)
	}
	static := wire.KeyPair{Private: sk.Bytes(), Public: sk.PublicKey().Bytes()}
	cert, err := wire.IssueCertificate(priv, static.Public, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return network{rootPub: priv.Public().(ed25519.PublicKey), rootPriv: priv, server: wire.ServerConfig{Static: static, Cert: cert}}
}

// fixedTime is the server time of the replayable server.
var fixedTime = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// fixedRandom is an endless stream of one byte: a fixed ephemeral key.
type fixedRandom struct{}

func (fixedRandom) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0x5a
	}
	return len(p), nil
}

// scriptConn is a net.Conn that reads a fixed input and discards writes: a
// client that sends its bytes without waiting for the server's.
type scriptConn struct {
	r *bytes.Reader
}

func newScriptConn(b []byte) *scriptConn { return &scriptConn{r: bytes.NewReader(b)} }

func (c *scriptConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

var testLogin = &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_SESSION, Account: "15551234567", Shard: 3, Epoch: 9, ClientVersion: "test/1", Passive: true}

type handshakeResult struct {
	client, server *wire.Conn
	login          *chatdv1.Login
	clientErr      error
	serverErr      error
}

// handshake runs both sides over a pipe and returns what each got. Failed
// sides' connections are closed.
func handshake(t *testing.T, cc wire.ClientConfig, sc wire.ServerConfig) handshakeResult {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	var r handshakeResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.client, r.clientErr = wire.ClientHandshake(t.Context(), a, cc)
		if r.clientErr != nil {
			a.Close() // what a client does: the server then reads EOF
		}
	}()
	r.server, r.login, r.serverErr = wire.ServerHandshake(t.Context(), b, nil, sc)
	if r.serverErr != nil {
		b.Close()
	}
	<-done
	return r
}

// connPair returns both ends of an established connection.
func connPair(t *testing.T) (client, server *wire.Conn, key wire.KeyPair) {
	t.Helper()
	n := newNetwork(t)
	key, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	r := handshake(t, wire.ClientConfig{Static: key, RootKey: n.rootPub, Login: testLogin}, n.server)
	if r.clientErr != nil || r.serverErr != nil {
		t.Fatalf("handshake: client %v, server %v", r.clientErr, r.serverErr)
	}
	if diff := cmp.Diff(testLogin, r.login, protocmp.Transform()); diff != "" {
		t.Fatalf("login mismatch (-want +got):\n%s", diff)
	}
	return r.client, r.server, key
}

func TestHandshakeAndStanzaRoundTrip(t *testing.T) {
	n := newNetwork(t)
	key, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	r := handshake(t, wire.ClientConfig{Static: key, RootKey: n.rootPub, Login: testLogin}, n.server)
	if r.clientErr != nil || r.serverErr != nil {
		t.Fatalf("handshake: client %v, server %v", r.clientErr, r.serverErr)
	}
	if diff := cmp.Diff(testLogin, r.login, protocmp.Transform()); diff != "" {
		t.Errorf("login mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(key.Public, r.server.PeerStatic); diff != "" {
		t.Errorf("server's PeerStatic mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(n.server.Static.Public, r.client.PeerStatic); diff != "" {
		t.Errorf("client's PeerStatic mismatch (-want +got):\n%s", diff)
	}

	want := []*chatdv1.Stanza{
		{Body: &chatdv1.Stanza_Message{Message: &chatdv1.Message{Id: "m1", To: "15550001111", Kind: "text",
			Enc: &chatdv1.Enc{Type: chatdv1.EncType_ENC_TYPE_PLAIN, V: 1, Ciphertext: []byte("hi")}}}},
		{Body: &chatdv1.Stanza_Iq{Iq: &chatdv1.IQ{Id: "p1", Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}}}},
		{Body: &chatdv1.Stanza_Ack{Ack: &chatdv1.Ack{QueueSeq: 42, Class: chatdv1.AckClass_ACK_CLASS_MESSAGE}}},
	}
	// Both directions, each with its own keys and nonces.
	for _, dir := range []struct {
		name     string
		from, to *wire.Conn
	}{{"client to server", r.client, r.server}, {"server to client", r.server, r.client}} {
		t.Run(dir.name, func(t *testing.T) {
			errc := make(chan error, 1)
			go func() {
				for _, st := range want {
					if err := dir.from.WriteStanza(st); err != nil {
						errc <- err
						return
					}
				}
				errc <- dir.from.Flush()
			}()
			var got []*chatdv1.Stanza
			for range want {
				st, err := dir.to.ReadStanza()
				if err != nil {
					t.Fatalf("ReadStanza: %v", err)
				}
				got = append(got, st)
			}
			if err := <-errc; err != nil {
				t.Fatalf("write: %v", err)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("stanzas mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHandshakeIsEncrypted: neither the login nor a stanza crosses the wire
// in the clear.
func TestHandshakeIsEncrypted(t *testing.T) {
	n := newNetwork(t)
	key, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var wireBytes bytes.Buffer
	rec := &recordingConn{Conn: b, w: &wireBytes}
	done := make(chan error, 1)
	go func() {
		c, err := wire.ClientHandshake(t.Context(), a, wire.ClientConfig{Static: key, RootKey: n.rootPub, Login: testLogin})
		if err == nil {
			err = c.WriteStanza(&chatdv1.Stanza{Body: &chatdv1.Stanza_Message{Message: &chatdv1.Message{Id: "secret-id", To: "15550009999",
				Enc: &chatdv1.Enc{Ciphertext: []byte("a secret text")}}}})
		}
		if err == nil {
			err = c.Flush()
		}
		done <- err
	}()
	s, _, err := wire.ServerHandshake(t.Context(), rec, nil, n.server)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadStanza(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{testLogin.Account, testLogin.ClientVersion, "secret-id", "15550009999", "a secret text", string(key.Public)} {
		if bytes.Contains(wireBytes.Bytes(), []byte(secret)) {
			t.Errorf("%q crossed the wire in the clear", secret)
		}
	}
}

// recordingConn copies everything read from the connection to w.
type recordingConn struct {
	net.Conn
	w io.Writer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.w.Write(p[:n])
	return n, err
}

// rogueServer answers a client's handshake like chatd, but with any static
// key and any certificate: what an impostor would do.
func rogueServer(t *testing.T, nc net.Conn, static wire.KeyPair, cert *chatdv1.Certificate) {
	t.Helper()
	br := bufio.NewReader(nc)
	hdr := make([]byte, 4)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Errorf("rogue: header: %v", err)
		return
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256),
		Pattern:     noise.HandshakeXX, Prologue: hdr,
		StaticKeypair: noise.DHKey{Private: static.Private, Public: static.Public},
	})
	if err != nil {
		t.Errorf("rogue: %v", err)
		return
	}
	msg1, err := wire.ReadFrame(br, nil)
	if err != nil {
		t.Errorf("rogue: msg1: %v", err)
		return
	}
	if _, _, _, err := hs.ReadMessage(nil, msg1); err != nil {
		t.Errorf("rogue: msg1: %v", err)
		return
	}
	hello, _ := proto.Marshal(&chatdv1.ServerHello{Cert: cert, T: time.Now().Unix()})
	msg2, _, _, err := hs.WriteMessage(nil, hello)
	if err != nil {
		t.Errorf("rogue: msg2: %v", err)
		return
	}
	if err := wire.WriteFrame(nc, msg2); err != nil {
		t.Errorf("rogue: msg2: %v", err)
		return
	}
	// A client that refuses sends no msg3: the next read ends.
	if msg3, err := wire.ReadFrame(br, nil); err == nil {
		t.Errorf("rogue: the client sent message 3 (%d bytes) to an untrusted server", len(msg3))
	}
}

// TestClientRefusesUntrustedServer: the client pins the root key and
// refuses, before sending its login, any server that cannot prove it
// belongs to that network.
func TestClientRefusesUntrustedServer(t *testing.T) {
	n := newNetwork(t)
	other := newNetwork(t) // another network: another root, another server key
	issue := func(root ed25519.PrivateKey, static []byte, nb, na time.Time) *chatdv1.Certificate {
		c, err := wire.IssueCertificate(root, static, nb, na)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	now := time.Now()
	tampered := proto.Clone(n.server.Cert).(*chatdv1.Certificate)
	tampered.NotAfter += 3600 // extends the validity: the signature no longer covers it
	badSig := proto.Clone(n.server.Cert).(*chatdv1.Certificate)
	badSig.Signature[0] ^= 1
	tests := []struct {
		name    string
		rootKey ed25519.PublicKey // pinned by the client
		static  wire.KeyPair      // the server's key
		cert    *chatdv1.Certificate
		wantMsg string
	}{
		{"wrong pinned root key", other.rootPub, n.server.Static, n.server.Cert, "not signed by the pinned root key"},
		{"certificate of another network", n.rootPub, other.server.Static, other.server.Cert, "not signed by the pinned root key"},
		{"expired certificate", n.rootPub, n.server.Static, issue(n.rootPriv, n.server.Static.Public, now.Add(-48*time.Hour), now.Add(-time.Hour)), "expired"},
		{"certificate not yet valid", n.rootPub, n.server.Static, issue(n.rootPriv, n.server.Static.Public, now.Add(time.Hour), now.Add(48*time.Hour)), "not valid before"},
		{"tampered validity", n.rootPub, n.server.Static, tampered, "not signed by the pinned root key"},
		{"bad signature", n.rootPub, n.server.Static, badSig, "not signed by the pinned root key"},
		{"stolen certificate, own key", n.rootPub, other.server.Static, n.server.Cert, "another static key"},
		{"no certificate", n.rootPub, n.server.Static, nil, "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := wire.GenerateKeyPair()
			if err != nil {
				t.Fatal(err)
			}
			a, b := net.Pipe()
			defer a.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				defer b.Close()
				rogueServer(t, b, tt.static, tt.cert)
			}()
			c, err := wire.ClientHandshake(t.Context(), a, wire.ClientConfig{Static: key, RootKey: tt.rootKey, Login: testLogin})
			a.Close()
			<-done
			if err == nil {
				c.Close()
				t.Fatal("ClientHandshake trusted the server")
			}
			if !errors.Is(err, wire.ErrUntrustedServer) {
				t.Errorf("ClientHandshake err = %v, want ErrUntrustedServer", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("ClientHandshake err = %v, want it to say %q", err, tt.wantMsg)
			}
		})
	}

	// Against the real server, the server sees the client go away before
	// message 3 and says so; it never gets a login.
	r := handshake(t, wire.ClientConfig{Static: n.server.Static, RootKey: other.rootPub, Login: testLogin}, n.server)
	if !errors.Is(r.clientErr, wire.ErrUntrustedServer) {
		t.Errorf("client err = %v, want ErrUntrustedServer", r.clientErr)
	}
	if r.serverErr == nil || r.login != nil || !strings.Contains(r.serverErr.Error(), "pin another root key") {
		t.Errorf("server: login %v, err %v; want no login and an error about the client leaving", r.login, r.serverErr)
	}
}

// TestCertificateClockSlack: a certificate a little outside its window (the
// clocks disagree) is still accepted.
func TestCertificateClockSlack(t *testing.T) {
	n := newNetwork(t)
	now := time.Now()
	for _, w := range []struct {
		name   string
		nb, na time.Time
	}{
		{"issued a minute in the future", now.Add(time.Minute), now.Add(time.Hour)},
		{"expired a minute ago", now.Add(-time.Hour), now.Add(-time.Minute)},
	} {
		t.Run(w.name, func(t *testing.T) {
			cert, err := wire.IssueCertificate(n.rootPriv, n.server.Static.Public, w.nb, w.na)
			if err != nil {
				t.Fatal(err)
			}
			sc := n.server
			sc.Cert = cert
			key, _ := wire.GenerateKeyPair()
			r := handshake(t, wire.ClientConfig{Static: key, RootKey: n.rootPub, Login: testLogin}, sc)
			if r.clientErr != nil || r.serverErr != nil {
				t.Fatalf("handshake: client %v, server %v", r.clientErr, r.serverErr)
			}
		})
	}
}

func TestClientHandshakeConfig(t *testing.T) {
	n := newNetwork(t)
	key, _ := wire.GenerateKeyPair()
	tests := []struct {
		name string
		cfg  wire.ClientConfig
	}{
		{"no root key", wire.ClientConfig{Static: key, Login: testLogin}},
		{"short root key", wire.ClientConfig{Static: key, RootKey: n.rootPub[:31], Login: testLogin}},
		{"no static key", wire.ClientConfig{RootKey: n.rootPub, Login: testLogin}},
		{"no login", wire.ClientConfig{Static: key, RootKey: n.rootPub}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := newScriptConn(nil)
			if _, err := wire.ClientHandshake(t.Context(), nc, tt.cfg); err == nil {
				t.Fatal("ClientHandshake accepted the configuration")
			}
		})
	}
	// The server needs its key and a certificate for that very key.
	other := newNetwork(t)
	for _, sc := range []wire.ServerConfig{{}, {Static: n.server.Static}, {Static: n.server.Static, Cert: other.server.Cert}} {
		if _, _, err := wire.ServerHandshake(t.Context(), newScriptConn([]byte("CD\x01\x00")), nil, sc); err == nil {
			t.Errorf("ServerHandshake accepted the configuration %+v", sc)
		}
	}
}

// clientMsg1 returns a valid first handshake message (header included).
func clientMsg1(t *testing.T) []byte {
	t.Helper()
	e, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return append(append([]byte{}, wire.Header[:]...), frame(32, e.PublicKey().Bytes())...)
}

// TestServerHandshakeRefuses: whatever the client sends that is not a valid
// handshake ends it with an error, and no login.
func TestServerHandshakeRefuses(t *testing.T) {
	n := newNetwork(t)
	header := wire.Header[:]
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	stanza, _ := proto.Marshal(&chatdv1.Stanza{Body: &chatdv1.Stanza_Message{Message: &chatdv1.Message{Id: "early", To: "15550001111"}}})
	loginBytes, _ := proto.Marshal(testLogin)
	tests := []struct {
		name    string
		in      []byte
		wantErr error  // checked with errors.Is when set
		wantMsg string // substring of the error otherwise
	}{
		{"empty connection", nil, io.EOF, ""},
		{"short header", []byte("CD"), io.ErrUnexpectedEOF, ""},
		{"wrong magic", cat([]byte("WA\x01\x00"), frame(0, nil)), wire.ErrBadHeader, ""},
		{"wrong major version", cat([]byte("CD\x02\x00"), frame(0, nil)), wire.ErrBadHeader, ""},
		{"TLS client hello", []byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01}, wire.ErrBadHeader, ""},
		{"oversize message 1", cat(header, []byte{0xff, 0xff, 0xff}), wire.ErrFrameTooLarge, ""},
		{"truncated message 1", cat(header, frame(32, []byte("abc"))), io.ErrUnexpectedEOF, ""},
		{"stanza before the handshake", cat(header, frame(len(stanza), stanza)), nil, "handshake message 1"},
		{"plaintext login before the handshake", cat(header, frame(len(loginBytes), loginBytes)), nil, "handshake message 1"},
		{"message 1 with a payload", cat(header, frame(33, make([]byte, 33))), nil, "want 32"},
		{"low-order ephemeral key", cat(header, frame(32, make([]byte, 32))), nil, "handshake message 2"},
		{"no message 3", clientMsg1(t), nil, "pin another root key"},
		{"garbage message 3", cat(clientMsg1(t), frame(96, bytes.Repeat([]byte{7}, 96))), nil, "handshake message 3"},
		{"short message 3", cat(clientMsg1(t), frame(10, make([]byte, 10))), nil, "handshake message 3"},
		{"stanza as message 3", cat(clientMsg1(t), frame(len(stanza), stanza)), nil, "handshake message 3"},
		{"oversize message 3", cat(clientMsg1(t), []byte{0x01, 0x00, 0x00}), wire.ErrFrameTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, l, err := wire.ServerHandshake(t.Context(), newScriptConn(tt.in), nil, n.server)
			if err == nil {
				t.Fatalf("ServerHandshake accepted %q: conn %v login %v", tt.in, c != nil, l)
			}
			if c != nil || l != nil {
				t.Errorf("ServerHandshake failed but returned a conn (%v) or a login (%v)", c != nil, l)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("ServerHandshake err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("ServerHandshake err = %v, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

// TestServerHandshakeTamperedMessage3: a valid client transcript with any
// single bit of message 3 flipped is refused.
func TestServerHandshakeTamperedMessage3(t *testing.T) {
	n := fixedNetwork(t)
	sc := wire.Replayable(n.server, fixedRandom{}, fixedTime)
	in := transcript(t, n, sc, testLogin)
	if _, _, err := wire.ServerHandshake(t.Context(), newScriptConn(in), nil, sc); err != nil {
		t.Fatalf("the untampered transcript is refused: %v", err)
	}
	msg3 := 4 + 3 + 32 + 3 // header, msg1 frame, msg3 length
	for i := msg3; i < len(in); i++ {
		bad := bytes.Clone(in)
		bad[i] ^= 0x10
		if _, l, err := wire.ServerHandshake(t.Context(), newScriptConn(bad), nil, sc); err == nil {
			t.Fatalf("byte %d of message 3 flipped: accepted, login %v", i-msg3, l)
		}
	}
}

// TestServerHandshakeStopsOnCancel: a client that says nothing cannot hold
// the server past its context.
func TestServerHandshakeStopsOnCancel(t *testing.T) {
	n := newNetwork(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, _, err := wire.ServerHandshake(ctx, b, nil, n.server)
		done <- err
	}()
	a.Write(wire.Header[:])
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("ServerHandshake succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServerHandshake still running 5 s after its context ended")
	}
}

// TestServerHandshakeOversizeDoesNotAllocate: a client announcing a huge
// handshake message costs the server no more than its buffers.
func TestServerHandshakeOversizeDoesNotAllocate(t *testing.T) {
	n := newNetwork(t)
	in := append(append([]byte{}, wire.Header[:]...), 0xff, 0xff, 0xff)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, _, err := wire.ServerHandshake(t.Context(), newScriptConn(in), nil, n.server); !errors.Is(err, wire.ErrFrameTooLarge) {
			t.Fatalf("err = %v, want ErrFrameTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 100*(64<<10) {
		t.Errorf("100 refused handshakes allocated %d bytes; the announced message must not be allocated", got)
	}
}

// transcript runs a real client against sc and returns every byte the client
// sent (header, message 1, message 3).
func transcript(t testing.TB, n network, sc wire.ServerConfig, login *chatdv1.Login) []byte {
	t.Helper()
	key, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var sent bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := wire.ClientHandshake(context.Background(), a, wire.ClientConfig{Static: key, RootKey: n.rootPub, Login: login})
		done <- err
	}()
	if _, _, err := wire.ServerHandshake(context.Background(), &recordingConn{Conn: b, w: &sent}, nil, sc); err != nil {
		t.Fatalf("server: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("client: %v", err)
	}
	return sent.Bytes()
}

func TestReadStanzaRefuses(t *testing.T) {
	unknownOnly := []byte{0xf8, 0x07, 0x01} // field 127, varint 1: valid protobuf, no body
	ping, _ := proto.Marshal(&chatdv1.Stanza{Body: &chatdv1.Stanza_Iq{Iq: &chatdv1.IQ{Id: "p", Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}}}})
	sealed := func(c *wire.Conn, plain []byte) []byte {
		b, err := wire.Seal(c, plain)
		if err != nil {
			t.Fatal(err)
		}
		return frame(len(b), b)
	}
	tests := []struct {
		name    string
		raw     func(c *wire.Conn) []byte // written as is after the handshake
		wantErr error
		wantMsg string
	}{
		{"empty stanza", func(c *wire.Conn) []byte { return sealed(c, nil) }, nil, "empty stanza"},
		{"unknown fields only", func(c *wire.Conn) []byte { return sealed(c, unknownOnly) }, nil, "empty stanza"},
		{"garbage", func(c *wire.Conn) []byte { return sealed(c, []byte{0xff, 0xff, 0xff, 0xff}) }, nil, "decode stanza"},
		{"truncated field", func(c *wire.Conn) []byte { return sealed(c, []byte{0x0a, 0x10}) }, nil, "decode stanza"},
		{"plaintext stanza", func(*wire.Conn) []byte { return frame(len(ping), ping) }, wire.ErrDecrypt, ""},
		{"empty frame", func(*wire.Conn) []byte { return frame(0, nil) }, wire.ErrDecrypt, ""},
		{"tampered frame", func(c *wire.Conn) []byte {
			f := sealed(c, ping)
			f[len(f)/2] ^= 0x01
			return f
		}, wire.ErrDecrypt, ""},
		{"tampered tag", func(c *wire.Conn) []byte {
			f := sealed(c, ping)
			f[len(f)-1] ^= 0x80
			return f
		}, wire.ErrDecrypt, ""},
		{"frame skipped", func(c *wire.Conn) []byte {
			sealed(c, ping) // sealed, never sent: the next nonce is out of order
			return sealed(c, ping)
		}, wire.ErrDecrypt, ""},
		{"oversize frame", func(*wire.Conn) []byte { return []byte{0x01, 0x00, 0x00} }, wire.ErrFrameTooLarge, ""},
		{"truncated frame", func(*wire.Conn) []byte { return frame(50, []byte("short")) }, io.ErrUnexpectedEOF, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server, _ := connPair(t)
			done := make(chan struct{})
			go func() {
				defer close(done)
				client.NetConn().Write(tt.raw(client))
				client.Close() // a truncated frame then ends
			}()
			st, err := server.ReadStanza()
			server.Close()
			<-done
			if err == nil {
				t.Fatalf("ReadStanza = %v, want an error", st)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("ReadStanza err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("ReadStanza err = %v, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

// TestReplayedFrame: a frame that was accepted once is refused when it comes
// again.
func TestReplayedFrame(t *testing.T) {
	ping, _ := proto.Marshal(&chatdv1.Stanza{Body: &chatdv1.Stanza_Iq{Iq: &chatdv1.IQ{Id: "p", Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}}}})
	client, server, _ := connPair(t)
	body, err := wire.Seal(client, ping)
	if err != nil {
		t.Fatal(err)
	}
	f := frame(len(body), body)
	done := make(chan struct{})
	go func() {
		defer close(done)
		client.NetConn().Write(append(bytes.Clone(f), f...))
	}()
	if _, err := server.ReadStanza(); err != nil {
		t.Fatalf("the frame, first time: %v", err)
	}
	if st, err := server.ReadStanza(); !errors.Is(err, wire.ErrDecrypt) {
		t.Errorf("the frame again: stanza %v, err %v; want ErrDecrypt", st, err)
	}
	server.Close()
	<-done
}

// TestWriteStanzaOversize checks the write path's size limit at its exact
// boundary: the largest stanza whose sealed frame fits is sent and read back;
// one byte more is refused before anything is written.
func TestWriteStanzaOversize(t *testing.T) {
	client, server, _ := connPair(t)
	// A Message whose ciphertext is n bytes; find n so the stanza is exactly
	// MaxFrame-16 bytes (the sealed frame is then exactly MaxFrame).
	stanza := func(n int) *chatdv1.Stanza {
		return &chatdv1.Stanza{Body: &chatdv1.Stanza_Message{Message: &chatdv1.Message{Id: "big", Enc: &chatdv1.Enc{Ciphertext: make([]byte, n)}}}}
	}
	n := wire.MaxFrame - 16
	for proto.Size(stanza(n)) > wire.MaxFrame-16 {
		n--
	}
	if proto.Size(stanza(n)) != wire.MaxFrame-16 {
		t.Fatalf("no stanza of exactly %d bytes (got %d)", wire.MaxFrame-16, proto.Size(stanza(n)))
	}
	if err := client.WriteStanza(stanza(n + 1)); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("WriteStanza(%d-byte stanza) err = %v, want ErrFrameTooLarge", proto.Size(stanza(n+1)), err)
	}
	errc := make(chan error, 1)
	go func() {
		// The refused stanza did not use a nonce: this one opens.
		if err := client.WriteStanza(stanza(n)); err != nil {
			errc <- err
			return
		}
		errc <- client.Flush()
	}()
	st, err := server.ReadStanza()
	if err != nil {
		t.Fatalf("ReadStanza of a MaxFrame frame: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("WriteStanza(%d-byte stanza): %v", wire.MaxFrame-16, err)
	}
	if got := len(st.GetMessage().GetEnc().GetCiphertext()); got != n {
		t.Errorf("read back %d bytes, want %d", got, n)
	}
}
