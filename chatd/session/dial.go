package session

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/openwaba/openwaba/chatd/wire"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// ALPN is the TLS application protocol of chatd's TLS mode.
const ALPN = "chatd/1"

// tlsPrefix marks an address served inside TLS.
const tlsPrefix = "tls://"

// dial connects to one chatd address, "host:port" (raw) or "tls://host:port"
// (TLS), directly or through the HTTPS proxy the environment names for it,
// all within timeout.
func dial(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	hostport, useTLS := strings.CutPrefix(addr, tlsPrefix)
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("chatd address %q: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	proxy, err := httpproxy.FromEnvironment().ProxyFunc()(&url.URL{Scheme: "https", Host: hostport})
	if err != nil {
		return nil, fmt.Errorf("proxy for %s: %w", addr, err)
	}
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	var nc net.Conn
	if proxy != nil {
		nc, err = dialConnect(ctx, d, proxy, hostport)
	} else {
		nc, err = d.DialContext(ctx, "tcp", hostport)
	}
	if err != nil {
		return nil, err
	}
	if !useTLS {
		return nc, nil
	}
	tc := tls.Client(nc, &tls.Config{
		ServerName: host,
		NextProtos: []string{ALPN},
		MinVersion: tls.VersionTLS12,
		// TLS here only carries chatd through networks that pass nothing
		// else; it does not authenticate chatd. The Noise handshake inside
		// does: chatd must present a certificate signed by the pinned
		// network root key for the very static key it proves, so an
		// impostor is refused whatever TLS certificate it shows. chatd's TLS
		// certificate is self-signed, hence (and only because of that check)
		// no verification of it here.
		InsecureSkipVerify: true,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", hostport, err)
	}
	return tc, nil
}

// dialConnect opens a tunnel to target through an HTTP proxy with CONNECT
// (RFC 9110 §9.3.6), authenticating with the proxy URL's user and password
// when it has them. An https:// proxy is reached over TLS, verified as usual.
func dialConnect(ctx context.Context, d *net.Dialer, proxy *url.URL, target string) (net.Conn, error) {
	port := proxy.Port()
	switch {
	case proxy.Scheme != "http" && proxy.Scheme != "https":
		return nil, fmt.Errorf("proxy %s: unsupported scheme %q (want http or https)", proxy.Redacted(), proxy.Scheme)
	case port == "" && proxy.Scheme == "https":
		port = "443"
	case port == "":
		port = "80"
	}
	paddr := net.JoinHostPort(proxy.Hostname(), port)
	nc, err := d.DialContext(ctx, "tcp", paddr)
	if err != nil {
		return nil, fmt.Errorf("dial proxy %s: %w", proxy.Redacted(), err)
	}
	ok := false
	defer func() {
		if !ok {
			nc.Close()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	if proxy.Scheme == "https" {
		tc := tls.Client(nc, &tls.Config{ServerName: proxy.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS to proxy %s: %w", proxy.Redacted(), err)
		}
		nc = tc
	}

	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: target},
		Host:   target,
		Header: http.Header{},
	}
	if u := proxy.User; u != nil {
		pw, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
	}
	if err := req.Write(nc); err != nil {
		return nil, fmt.Errorf("CONNECT %s via %s: %w", target, proxy.Redacted(), err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
		}
		return nil, fmt.Errorf("CONNECT %s via %s: %w", target, proxy.Redacted(), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("CONNECT %s via %s: proxy answered %s", target, proxy.Redacted(), resp.Status)
	}
	if !stop() {
		return nil, fmt.Errorf("CONNECT %s via %s: %w", target, proxy.Redacted(), ctx.Err())
	}
	nc.SetDeadline(time.Time{})
	ok = true
	if br.Buffered() > 0 {
		// chatd never speaks first, but a tunnel may already carry bytes.
		return &bufferedConn{Conn: nc, r: br}, nil
	}
	return nc, nil
}

// bufferedConn reads what the proxy exchange left buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Probe checks that the chatd at addr can be reached (directly, or through
// the proxy the environment names) and proves to be the network's: it
// dials, and runs the handshake up to the server's certificate, which must
// be signed by rootKey. It logs in as no one (a throwaway key and a
// registration login chatd then refuses), so it needs no account. The
// error says which step failed; errors.Is(err, wire.ErrUntrustedServer)
// for a certificate that does not verify.
func Probe(ctx context.Context, addr string, rootKey ed25519.PublicKey, timeout time.Duration) error {
	key, err := wire.GenerateKeyPair()
	if err != nil {
		return err
	}
	nc, err := dial(ctx, addr, timeout)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	login := &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_REGISTER, Account: "0", ClientVersion: "openwaba-wadebug/1"}
	c, err := wire.ClientHandshake(hctx, nc, wire.ClientConfig{Static: key, RootKey: rootKey, Login: login})
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	c.Close()
	return nil
}
