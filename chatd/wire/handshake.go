package wire

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/flynn/noise"
	"google.golang.org/protobuf/proto"

	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// The handshake (initiator = client), each message one frame after the
// 4-byte header, which is the Noise prologue:
//
//	→ e                                     (32 bytes)
//	← e, ee, s, es, ServerHello{cert, t}    (the server's static key and its certificate)
//	→ s, se, Login                          (the client's static key and its claim)
//
// The client refuses the server (ErrUntrustedServer) unless the certificate
// is signed by the pinned root key, is valid now, and names the static key the
// server proved in message 2. The server learns the client's static key from
// message 3 and authorises the Login against it.

var cipherSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256)

// msg1Size is the size of the first handshake message: one ephemeral key, no
// payload.
const msg1Size = 32

// ClientConfig is the client side of a handshake.
type ClientConfig struct {
	// Static is the client's Noise static key: its credential.
	Static KeyPair
	// RootKey is the network's root public key, pinned by configuration.
	RootKey ed25519.PublicKey
	Login   *chatdv1.Login
}

// ServerConfig is the server side of a handshake.
type ServerConfig struct {
	// Static is the server's Noise static key.
	Static KeyPair
	// Cert is Static's certificate from the network's root key.
	Cert *chatdv1.Certificate

	// Tests fix these to replay a recorded transcript.
	random io.Reader        // the ephemeral key's source; nil: crypto/rand
	now    func() time.Time // the ServerHello time; nil: time.Now
}

func deadline(ctx context.Context) time.Time {
	d := time.Now().Add(HandshakeTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
		return dl
	}
	return d
}

// bound applies ctx's deadline (at most HandshakeTimeout) to nc and
// interrupts blocked I/O when ctx ends. The returned function undoes both.
func bound(ctx context.Context, nc net.Conn) func() {
	nc.SetDeadline(deadline(ctx))
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	return func() {
		stop()
		nc.SetDeadline(time.Time{})
	}
}

// ClientHandshake writes the header and runs the client side of the Noise
// handshake on nc. A server that cannot prove it belongs to the network of
// cfg.RootKey is refused with an error wrapping ErrUntrustedServer, before
// the Login is sent. The caller still waits for the server's Success or
// Failure stanza.
func ClientHandshake(ctx context.Context, nc net.Conn, cfg ClientConfig) (*Conn, error) {
	if len(cfg.RootKey) != ed25519.PublicKeySize {
		return nil, errors.New("handshake: no network root key configured")
	}
	if len(cfg.Static.Private) != cipherSuite.DHLen() || len(cfg.Static.Public) != cipherSuite.DHLen() {
		return nil, errors.New("handshake: the client static key must be 32-byte Curve25519 keys")
	}
	if cfg.Login == nil {
		return nil, errors.New("handshake: no login")
	}
	login, err := proto.Marshal(cfg.Login)
	if err != nil {
		return nil, fmt.Errorf("handshake: encode login: %w", err)
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   cipherSuite,
		Random:        rand.Reader,
		Pattern:       noise.HandshakeXX,
		Initiator:     true,
		Prologue:      Header[:],
		StaticKeypair: noise.DHKey{Private: cfg.Static.Private, Public: cfg.Static.Public},
	})
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	defer bound(ctx, nc)()
	br := bufio.NewReaderSize(nc, 32<<10)
	bw := bufio.NewWriterSize(nc, 32<<10)

	msg1, _, _, err := hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("handshake message 1: %w", err)
	}
	bw.Write(Header[:])
	if err := WriteFrame(bw, msg1); err != nil {
		return nil, fmt.Errorf("handshake message 1: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("handshake message 1: %w", err)
	}

	msg2, err := ReadFrame(br, nil)
	if err != nil {
		return nil, fmt.Errorf("read handshake message 2: %w", err)
	}
	payload, _, _, err := hs.ReadMessage(nil, msg2)
	if err != nil {
		return nil, fmt.Errorf("handshake message 2: %w", err)
	}
	var hello chatdv1.ServerHello
	if err := proto.Unmarshal(payload, &hello); err != nil {
		return nil, fmt.Errorf("%w: undecodable server hello: %v", ErrUntrustedServer, err)
	}
	if err := VerifyCertificate(cfg.RootKey, hello.Cert, time.Now()); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if subtle.ConstantTimeCompare(hello.Cert.ServerStatic, hs.PeerStatic()) != 1 {
		return nil, fmt.Errorf("handshake: %w: the certificate is for another static key than the one the server proved", ErrUntrustedServer)
	}

	msg3, cs1, cs2, err := hs.WriteMessage(nil, login)
	if err != nil {
		return nil, fmt.Errorf("handshake message 3: %w", err)
	}
	if err := WriteFrame(bw, msg3); err != nil {
		return nil, fmt.Errorf("handshake message 3: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("handshake message 3: %w", err)
	}
	// The initiator seals with the first CipherState and opens with the second.
	return newConn(nc, br, bw, cs1, cs2, hs.PeerStatic()), nil
}

// ServerHandshake reads the header and runs the server side of the Noise
// handshake on nc, reading through br (nil: a new reader on nc; the caller
// may have peeked at the first byte with it). It returns the connection, with
// PeerStatic set to the client's proven static key, and the client's Login,
// which the caller must still authorise against that key.
func ServerHandshake(ctx context.Context, nc net.Conn, br *bufio.Reader, cfg ServerConfig) (*Conn, *chatdv1.Login, error) {
	if len(cfg.Static.Private) != cipherSuite.DHLen() || cfg.Cert == nil || subtle.ConstantTimeCompare(cfg.Cert.ServerStatic, cfg.Static.Public) != 1 {
		return nil, nil, errors.New("handshake: the server needs its static key and a certificate for it")
	}
	random := cfg.random
	if random == nil {
		random = rand.Reader
	}
	defer bound(ctx, nc)()
	if br == nil {
		br = bufio.NewReaderSize(nc, 32<<10)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, nil, fmt.Errorf("read header: %w", err)
	}
	if hdr[0] != Header[0] || hdr[1] != Header[1] || hdr[2] != Header[2] {
		return nil, nil, fmt.Errorf("%w %x", ErrBadHeader, hdr)
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   cipherSuite,
		Random:        random,
		Pattern:       noise.HandshakeXX,
		Prologue:      hdr[:], // the client's own header, minor version included
		StaticKeypair: noise.DHKey{Private: cfg.Static.Private, Public: cfg.Static.Public},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("handshake: %w", err)
	}

	msg, err := ReadFrame(br, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("read handshake message 1: %w", err)
	}
	if len(msg) != msg1Size {
		return nil, nil, fmt.Errorf("handshake message 1: %d bytes, want %d (an ephemeral key and no payload)", len(msg), msg1Size)
	}
	if _, _, _, err := hs.ReadMessage(nil, msg); err != nil {
		return nil, nil, fmt.Errorf("handshake message 1: %w", err)
	}

	now := time.Now
	if cfg.now != nil {
		now = cfg.now
	}
	hello, err := proto.Marshal(&chatdv1.ServerHello{Cert: cfg.Cert, T: now().Unix()})
	if err != nil {
		return nil, nil, fmt.Errorf("handshake: encode server hello: %w", err)
	}
	msg2, _, _, err := hs.WriteMessage(nil, hello)
	if err != nil {
		return nil, nil, fmt.Errorf("handshake message 2: %w", err)
	}
	bw := bufio.NewWriterSize(nc, 32<<10)
	if err := WriteFrame(bw, msg2); err != nil {
		return nil, nil, fmt.Errorf("handshake message 2: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, nil, fmt.Errorf("handshake message 2: %w", err)
	}

	msg, err = ReadFrame(br, msg)
	if errors.Is(err, io.EOF) {
		// What a client that does not trust this server's certificate does.
		return nil, nil, fmt.Errorf("read handshake message 3: the client closed the connection after the server's certificate (does it pin another root key?): %w", err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read handshake message 3: %w", err)
	}
	payload, cs1, cs2, err := hs.ReadMessage(nil, msg)
	if err != nil {
		return nil, nil, fmt.Errorf("handshake message 3: %w", err)
	}
	if len(payload) == 0 {
		return nil, nil, errors.New("handshake message 3: no login")
	}
	login := new(chatdv1.Login)
	if err := proto.Unmarshal(payload, login); err != nil {
		return nil, nil, fmt.Errorf("handshake message 3: decode login: %w", err)
	}
	// The responder seals with the second CipherState and opens with the first.
	return newConn(nc, br, bw, cs2, cs1, hs.PeerStatic()), login, nil
}
