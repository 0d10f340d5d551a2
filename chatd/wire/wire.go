// Package wire is the chatd framing and handshake: a 4-byte connection header,
// then frames of a 3-byte big-endian length and a body of at most MaxFrame
// bytes.
//
// The first three frames are the messages of a standard Noise XX handshake
// (Noise_XX_25519_AESGCM_SHA256, the header as prologue; see handshake.go):
// the server proves its static key with a Certificate signed by the network's
// root key, which the client pins, and the client sends its Login inside the
// third message, so the server learns the account and the static key that
// proves it together. After the handshake every frame body is one AES-GCM
// ciphertext of one serialized chatdv1.Stanza; a frame that fails to open
// (tampered, replayed, reordered) or announces more than MaxFrame bytes is
// fatal for the connection.
//
// A Conn has one reader and one writer: ReadStanza must be called from one
// goroutine and WriteStanza/Flush from one (possibly other) goroutine.
package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"google.golang.org/protobuf/proto"

	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// MaxFrame is the largest frame body (the Noise message limit).
const MaxFrame = 65535

// tagSize is the AES-GCM tag every sealed frame carries.
const tagSize = 16

// Header opens every connection: magic "CD", protocol major 1, minor 0. It is
// also the Noise prologue, so a tampered header fails the handshake.
var Header = [4]byte{'C', 'D', 1, 0}

// HandshakeTimeout bounds the whole handshake.
const HandshakeTimeout = 20 * time.Second

// Errors.
var (
	ErrFrameTooLarge = errors.New("frame exceeds the maximum size")
	ErrBadHeader     = errors.New("bad connection header")
	// ErrDecrypt is a transport frame that failed authentication: it was
	// tampered with, replayed, reordered or not sealed for this connection.
	ErrDecrypt = errors.New("frame failed authentication (tampered, replayed or out of order)")
)

// ReadFrame reads one frame body into buf (grown as needed) and returns it.
func ReadFrame(br *bufio.Reader, buf []byte) ([]byte, error) {
	var hdr [3]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, err
	}
	n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	if n > MaxFrame {
		return nil, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, n, MaxFrame)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(br, buf)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return buf, err
}

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, body []byte) error {
	if len(body) > MaxFrame {
		return fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, len(body), MaxFrame)
	}
	var hdr [3]byte
	hdr[0], hdr[1], hdr[2] = byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// Cipher seals and opens frame bodies: a noise.CipherState, whose nonce
// advances with every frame, so a frame can be opened only once and only in
// order.
type Cipher interface {
	Encrypt(out, ad, plaintext []byte) ([]byte, error)
	Decrypt(out, ad, ciphertext []byte) ([]byte, error)
}

// Conn is an established, encrypted stanza connection.
type Conn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	rbuf   []byte
	wbuf   []byte
	sbuf   []byte
	sealer Cipher
	opener Cipher
	// PeerStatic is the peer's static public key as proven by the handshake
	// (the client's key on the server side, the server's on the client side).
	PeerStatic []byte
}

func newConn(nc net.Conn, br *bufio.Reader, bw *bufio.Writer, sealer, opener Cipher, peer []byte) *Conn {
	return &Conn{nc: nc, br: br, bw: bw, sealer: sealer, opener: opener, PeerStatic: peer}
}

// NetConn returns the underlying connection (for deadlines and Close).
func (c *Conn) NetConn() net.Conn { return c.nc }

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// ReadStanza reads, opens and decodes the next stanza. Any error is fatal for
// the connection: an oversized frame (ErrFrameTooLarge), a frame that fails
// to open (ErrDecrypt), or garbage; the caller must close it.
func (c *Conn) ReadStanza() (*chatdv1.Stanza, error) {
	body, err := ReadFrame(c.br, c.rbuf)
	if err != nil {
		return nil, err
	}
	c.rbuf = body[:0]
	// Opened in place: the plaintext reuses the ciphertext's buffer.
	body, err = c.opener.Decrypt(body[:0], nil, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	st := new(chatdv1.Stanza)
	if err := proto.Unmarshal(body, st); err != nil {
		return nil, fmt.Errorf("decode stanza: %w", err)
	}
	if st.Body == nil {
		return nil, errors.New("decode stanza: empty stanza")
	}
	return st, nil
}

// WriteStanza encodes and seals st into the write buffer; Flush sends it. A
// stanza whose sealed frame would exceed MaxFrame is refused with
// ErrFrameTooLarge before anything is written or the nonce advances.
func (c *Conn) WriteStanza(st *chatdv1.Stanza) error {
	b, err := proto.MarshalOptions{}.MarshalAppend(c.wbuf[:0], st)
	if err != nil {
		return err
	}
	c.wbuf = b[:0]
	if len(b)+tagSize > MaxFrame {
		return fmt.Errorf("%w: stanza of %d bytes sealed to %d", ErrFrameTooLarge, len(b), len(b)+tagSize)
	}
	sealed, err := c.sealer.Encrypt(c.sbuf[:0], nil, b)
	if err != nil {
		return err
	}
	c.sbuf = sealed[:0]
	return WriteFrame(c.bw, sealed)
}

// Flush sends buffered stanzas.
func (c *Conn) Flush() error { return c.bw.Flush() }
