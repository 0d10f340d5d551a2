package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/db/clusterkeys"
)

// ALPN is the TLS application protocol of chatd's TLS mode.
const ALPN = "chatd/1"

// tlsRecordHandshake is the first byte of a TLS connection (a handshake
// record); a raw chatd connection starts with 'C'.
const tlsRecordHandshake = 0x16

// tlsConfig serves the current keys' TLS certificate. The certificate is
// self-signed: clients authenticate chatd by its Noise certificate, inside.
func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: clusterkeys.ServerCipherSuites,
		NextProtos:   []string{ALPN},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &s.keys.Load().TLS, nil
		},
	}
}

// peekedConn reads through the reader that peeked at the connection.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// unwrap tells a TLS connection from a raw one by its first byte and returns
// the connection the chat protocol runs on, with a reader over it. Both
// modes serve the same protocol on every listener.
func (s *Server) unwrap(ctx context.Context, nc net.Conn) (net.Conn, *bufio.Reader, bool, error) {
	nc.SetDeadline(time.Now().Add(wire.HandshakeTimeout))
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer func() {
		stop()
		nc.SetDeadline(time.Time{})
	}()
	br := bufio.NewReaderSize(nc, 32<<10)
	first, err := br.Peek(1)
	if err != nil {
		return nil, nil, false, fmt.Errorf("read the first byte: %w", err)
	}
	if first[0] != tlsRecordHandshake {
		return nc, br, false, nil
	}
	tc := tls.Server(&peekedConn{Conn: nc, r: br}, s.tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, nil, true, fmt.Errorf("TLS handshake: %w", err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != ALPN {
		return nil, nil, true, fmt.Errorf("TLS handshake: application protocol %q, want %q", p, ALPN)
	}
	return tc, bufio.NewReaderSize(tc, 32<<10), true, nil
}
