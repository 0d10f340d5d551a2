package wire_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/chatd/wire"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ (go test fuzz v1 files);
// the f.Add seeds below are the minimal cases. `make fuzz` runs every target
// for FUZZTIME; `go test ./wire -run TestFuzzCorpus -update-corpus` rewrites
// the generated handshake seeds (after a change to the handshake).

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the generated seeds in testdata/fuzz")

// FuzzReadFrame feeds arbitrary bytes to the frame reader: it must not panic,
// must refuse an oversize header, must never hand back (or allocate) more than
// MaxFrame bytes, and a frame it accepts must be exactly what the header said.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 2, 0x0a, 0x00})
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReader(bytes.NewReader(b))
		got, err := wire.ReadFrame(br, nil)
		if len(b) < 3 {
			if err == nil {
				t.Fatalf("ReadFrame(%x) accepted a frame without a full header", b)
			}
			return
		}
		n := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
		switch {
		case n > wire.MaxFrame:
			if !errors.Is(err, wire.ErrFrameTooLarge) {
				t.Fatalf("header %d: err = %v, want ErrFrameTooLarge", n, err)
			}
			if got != nil {
				t.Fatalf("header %d: got %d bytes, want nil", n, len(got))
			}
		case len(b)-3 < n:
			if err == nil {
				t.Fatalf("header %d with %d body bytes: accepted a truncated frame", n, len(b)-3)
			}
		default:
			if err != nil {
				t.Fatalf("header %d with %d body bytes: %v", n, len(b)-3, err)
			}
			if !bytes.Equal(got, b[3:3+n]) {
				t.Fatalf("body = %x, want %x", got, b[3:3+n])
			}
		}
		if cap(got) > wire.MaxFrame {
			t.Fatalf("ReadFrame allocated %d bytes, more than MaxFrame", cap(got))
		}
	})
}

// FuzzServerHandshake feeds arbitrary bytes as everything a client sends
// (header, message 1, message 3) to the Noise responder of a fixed network
// whose ephemeral key and clock are fixed too, so the committed valid transcripts
// (testdata/fuzz/FuzzServerHandshake/valid_*) reach the end of the handshake
// and their mutations explore every step on the way. It must not panic; a
// failure returns neither a connection nor a login; and what it accepts must
// carry a 32-byte key and a login, and must be bound to the server's
// ephemeral key: the same bytes against a fresh ephemeral key are refused (a
// valid message 3 cannot be made without the server's message 2).
func FuzzServerHandshake(f *testing.F) {
	f.Add([]byte("CD\x01\x00\x00\x00\x20" + strings.Repeat("\x09", 32)))
	f.Add([]byte("WA\x06\x03"))
	f.Add([]byte("CD\x01\x00\xff\xff\xff"))
	n := fixedNetwork(f)
	fixed := wire.Replayable(n.server, fixedRandom{}, fixedTime)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, login, err := wire.ServerHandshake(context.Background(), newScriptConn(b), nil, fixed)
		if err != nil {
			if c != nil || login != nil {
				t.Fatalf("ServerHandshake failed (%v) but returned a conn or login", err)
			}
			return
		}
		if len(b) < 4 || !bytes.Equal(b[:3], wire.Header[:3]) {
			t.Fatalf("ServerHandshake accepted header %x", b[:min(len(b), 4)])
		}
		if len(c.PeerStatic) != 32 || login == nil {
			t.Fatalf("ServerHandshake accepted a %d-byte key, login %v", len(c.PeerStatic), login)
		}
		if _, l, err := wire.ServerHandshake(context.Background(), newScriptConn(b), nil, n.server); err == nil {
			t.Fatalf("a transcript was accepted against a random ephemeral key (login %v)", l)
		}
	})
}

// FuzzServerHello feeds arbitrary bytes to the client's parsing of the
// server's message 2 payload (ServerHello and its certificate) against a
// fixed root key: it must not panic, and it may accept only a certificate
// whose signature is the root key's own signature of its fields.
func FuzzServerHello(f *testing.F) {
	n := fixedNetwork(f)
	valid, err := proto.Marshal(&chatdv1.ServerHello{Cert: n.server.Cert, T: 1700000000})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		var hello chatdv1.ServerHello
		if proto.Unmarshal(b, &hello) != nil {
			return
		}
		err := wire.VerifyCertificate(n.rootPub, hello.Cert, now)
		if err != nil {
			if !errors.Is(err, wire.ErrUntrustedServer) {
				t.Fatalf("VerifyCertificate err = %v, want ErrUntrustedServer", err)
			}
			return
		}
		c := hello.Cert
		want, err := wire.IssueCertificate(n.rootPriv, c.ServerStatic, time.Unix(c.NotBefore, 0), time.Unix(c.NotAfter, 0))
		if err != nil || !bytes.Equal(want.Signature, c.Signature) {
			t.Fatalf("accepted a certificate the root key did not sign: %v (%v)", c, err)
		}
	})
}

// TestFuzzCorpus checks that the generated seeds are still what they claim
// (the valid transcripts are accepted by FuzzServerHandshake's server), and
// rewrites them with -update-corpus.
func TestFuzzCorpus(t *testing.T) {
	n := fixedNetwork(t)
	sc := wire.Replayable(n.server, fixedRandom{}, fixedTime)
	dir := filepath.Join("testdata", "fuzz", "FuzzServerHandshake")
	valid := map[string]*chatdv1.Login{
		"valid_session":  testLogin,
		"valid_register": {Kind: chatdv1.ConnKind_CONN_KIND_REGISTER, Account: "15557654321", ClientVersion: "waphone/1"},
	}
	if *updateCorpus {
		msg1 := clientMsg1(t)
		stanza, _ := proto.Marshal(&chatdv1.Stanza{Body: &chatdv1.Stanza_Iq{Iq: &chatdv1.IQ{Id: "p", Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}}}})
		seeds := map[string][]byte{
			"wrong_magic":                 []byte("WA\x06\x03\x00\x00\x20" + strings.Repeat("\x09", 32)),
			"wrong_major":                 []byte("CD\x02\x00\x00\x00\x20" + strings.Repeat("\x09", 32)),
			"tls_client_hello":            {0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03},
			"oversize_msg1":               []byte("CD\x01\x00\xff\xff\xff"),
			"truncated_msg1":              []byte("CD\x01\x00\x00\x00\x20abc"),
			"stanza_before_handshake":     append([]byte("CD\x01\x00"), frame(len(stanza), stanza)...),
			"msg1_with_payload":           append([]byte("CD\x01\x00"), frame(40, bytes.Repeat([]byte{9}, 40))...),
			"low_order_key":               append([]byte("CD\x01\x00"), frame(32, make([]byte, 32))...),
			"msg1_only":                   msg1,
			"garbage_msg3":                append(bytes.Clone(msg1), frame(96, bytes.Repeat([]byte{7}, 96))...),
			"oversize_msg3":               append(bytes.Clone(msg1), 0x01, 0x00, 0x00),
			"valid_session_tampered_msg3": nil,
		}
		for name, login := range valid {
			seeds[name] = transcript(t, n, sc, login)
		}
		tampered := bytes.Clone(seeds["valid_session"])
		tampered[len(tampered)-20] ^= 1
		seeds["valid_session_tampered_msg3"] = tampered
		writeSeeds(t, dir, seeds)

		// FuzzServerHello: the fixed network's hello, and broken ones.
		hello := func(c *chatdv1.Certificate) []byte {
			b, err := proto.Marshal(&chatdv1.ServerHello{Cert: c, T: fixedTime.Unix()})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		mutate := func(f func(c *chatdv1.Certificate)) *chatdv1.Certificate {
			c := proto.Clone(n.server.Cert).(*chatdv1.Certificate)
			f(c)
			return c
		}
		writeSeeds(t, filepath.Join("testdata", "fuzz", "FuzzServerHello"), map[string][]byte{
			"valid":         hello(n.server.Cert),
			"no_cert":       hello(nil),
			"bad_signature": hello(mutate(func(c *chatdv1.Certificate) { c.Signature[5] ^= 1 })),
			"extended":      hello(mutate(func(c *chatdv1.Certificate) { c.NotAfter += 1 })),
			"short_key":     hello(mutate(func(c *chatdv1.Certificate) { c.ServerStatic = c.ServerStatic[:16] })),
			"expired":       hello(mutate(func(c *chatdv1.Certificate) { c.NotBefore, c.NotAfter = 1, 2 })),
		})
	}
	for name, want := range valid {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(raw)), "go test fuzz v1\n[]byte(")
		lit, ok2 := strings.CutSuffix(lit, ")")
		b, err := strconv.Unquote(lit)
		if !ok || !ok2 || err != nil {
			t.Fatalf("%s: not a go test fuzz v1 []byte seed (%v)", name, err)
		}
		_, login, err := wire.ServerHandshake(t.Context(), newScriptConn([]byte(b)), nil, sc)
		if err != nil {
			t.Fatalf("%s is no longer accepted (%v): run go test ./wire -run TestFuzzCorpus -update-corpus", name, err)
		}
		if !proto.Equal(want, login) {
			t.Errorf("%s: login %v, want %v", name, login, want)
		}
	}
}

// writeSeeds replaces the seed corpus in dir.
func writeSeeds(t *testing.T, dir string, seeds map[string][]byte) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
