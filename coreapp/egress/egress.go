// Package egress is how coreapp reaches URLs chosen by the businesses it
// hosts: the media links they send and the webhook URLs they set. A tenant
// (an API key) must not be able to make coreapp reach what only coreapp can
// reach (loopback, the private network, link-local metadata services), nor
// lead coreapp's credentials anywhere they were not meant to go. So:
//
//   - A guarded client checks every address it connects to after DNS
//     resolution, at every connection and every redirect: only public
//     unicast addresses (Public). A name that resolves, or re-resolves, to a
//     private address is refused, and so is a redirect there.
//   - Redirects are followed at most Policy.MaxRedirects times, only to
//     http and https, and on a redirect to another origin (scheme, host and
//     port) only the standard headers follow: Authorization and every
//     header the caller added (credentials) are dropped.
//   - CheckURL resolves a URL's host at configuration time, so a tenant
//     learns at once that a URL will be refused.
//   - RedactURL and Describe turn URLs and network errors into text that can
//     be logged and shown to a business: no userinfo, no query values, no
//     resolver or internal addresses.
//
// Clients are safe for concurrent use.
package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// ErrNotPublic is the error of a connection refused because its address is
// not public.
var ErrNotPublic = errors.New("address is not public")

// Public reports whether ip is a public unicast address.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// nonPublic are the ranges besides loopback, private, link-local and
// multicast that lead to hosts of the local network, or translate to any
// IPv4 address (including private ones).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and broadcast
	netip.MustParsePrefix("fc00::/7"),      // unique local
	netip.MustParsePrefix("fec0::/10"),     // site-local
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"), // 6to4
	netip.MustParsePrefix("2001::/32"), // Teredo
}

// Policy says how a client may reach URLs.
type Policy struct {
	// AllowPrivate turns the address check off (WA_MEDIA_ALLOW_PRIVATE_LINKS,
	// WA_WEBHOOK_ALLOW_PRIVATE: for installs in a private network).
	AllowPrivate bool
	// Timeout bounds a whole request (0: none).
	Timeout time.Duration
	// MaxRedirects is how many redirects are followed (0: none).
	MaxRedirects int
	// Proxy picks the HTTP proxy of a request (nil: direct). Through a
	// proxy, the target's name is resolved and checked before the request,
	// and the proxy itself (chosen by the operator) may be private.
	Proxy func(*http.Request) (*url.URL, error)
	// KeepAlive keeps idle connections (false: every request opens its own,
	// and nothing outlives it).
	KeepAlive bool
	// RootCAs, when set, are the CAs trusted for https (else the system's).
	RootCAs *x509.CertPool
	// Resolver resolves names for CheckURL and for proxied requests
	// (net.DefaultResolver when nil).
	Resolver *net.Resolver
}

func (p Policy) resolver() *net.Resolver {
	if p.Resolver != nil {
		return p.Resolver
	}
	return net.DefaultResolver
}

// Client returns an HTTP client that applies the policy.
func (p Policy) Client() *http.Client {
	return &http.Client{Timeout: p.Timeout, Transport: p.Transport(), CheckRedirect: p.checkRedirect}
}

// Transport returns the client's transport (for callers that build their own
// http.Client: they must use CheckRedirect too).
func (p Policy) Transport() http.RoundTripper {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	guarded := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !Public(ap.Addr()) {
			return ErrNotPublic
		}
		return nil
	}}
	t := &http.Transport{
		Proxy:                 p.Proxy,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableKeepAlives:     !p.KeepAlive,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if p.AllowPrivate || viaProxy(ctx) {
				return d.DialContext(ctx, network, addr)
			}
			return guarded.DialContext(ctx, network, addr)
		},
	}
	if p.RootCAs != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: p.RootCAs, MinVersion: tls.VersionTLS12}
	}
	if p.AllowPrivate || p.Proxy == nil {
		return t
	}
	return &proxyCheck{p: p, next: t}
}

type proxyKey struct{}

func viaProxy(ctx context.Context) bool { v, _ := ctx.Value(proxyKey{}).(bool); return v }

// proxyCheck resolves and checks the target of a request that goes through
// a proxy (the dial then reaches the proxy, not the target).
type proxyCheck struct {
	p    Policy
	next http.RoundTripper
}

func (c *proxyCheck) RoundTrip(req *http.Request) (*http.Response, error) {
	proxy, err := c.p.Proxy(req)
	if err != nil || proxy == nil {
		return c.next.RoundTrip(req)
	}
	if err := c.p.checkHost(req.Context(), req.URL.Hostname()); err != nil {
		return nil, err
	}
	return c.next.RoundTrip(req.WithContext(context.WithValue(req.Context(), proxyKey{}, true)))
}

// checkRedirect limits redirects to MaxRedirects http(s) hops and drops the
// credentials on a change of origin. The address of every hop is checked
// when it is dialled.
func (p Policy) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > p.MaxRedirects {
		return fmt.Errorf("more than %d redirects", p.MaxRedirects)
	}
	if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
		return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
	}
	if origin(req.URL) != origin(via[0].URL) {
		for h := range req.Header {
			if !crossOriginHeaders[h] {
				req.Header.Del(h)
			}
		}
	}
	return nil
}

// crossOriginHeaders are the only request headers that follow a redirect
// to another origin: credentials (Authorization, a provider's secret, the
// extra headers a business set for its webhook) stay with the origin they
// were meant for.
var crossOriginHeaders = map[string]bool{"Accept": true, "Accept-Encoding": true, "Content-Type": true, "User-Agent": true}

// origin is scheme://host:port with the default port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return u.Scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// CheckURL resolves the host of raw and refuses it when it is not http(s),
// does not resolve, or any of its addresses is not public (unless the
// policy allows private addresses). Its errors are fit for the business.
func (p Policy) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
		return errors.New("not an absolute http or https URL")
	}
	if p.AllowPrivate {
		return nil
	}
	return p.checkHost(ctx, u.Hostname())
}

func (p Policy) checkHost(ctx context.Context, host string) error {
	if ip, err := netip.ParseAddr(host); err == nil {
		if !Public(ip) {
			return fmt.Errorf("%s is a loopback, private or other non-public address", host)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := p.resolver().LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("the host %s could not be resolved", host)
	}
	for _, a := range addrs {
		if !Public(a) {
			return fmt.Errorf("the host %s resolves to a loopback, private or other non-public address", host)
		}
	}
	return nil
}

// RedactURL returns raw without its userinfo and with the values of its
// query replaced by "REDACTED" (the names stay, to help debugging); the
// fragment is dropped. Text that is not a URL is returned as "(invalid URL)".
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return redact(u).String()
}

func redact(u *url.URL) *url.URL {
	c := *u
	c.User = nil
	c.Fragment, c.RawFragment = "", ""
	if c.RawQuery != "" {
		q := c.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		c.RawQuery = q.Encode()
	}
	return &c
}

// Describe says why a request failed in words fit for a log line or for
// the business: URLs redacted, and neither resolver nor internal addresses.
// An error that is neither a URL nor a network error is ours and is
// returned as it is.
func Describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		prefix := ""
		if u, perr := url.Parse(ue.URL); perr == nil {
			prefix = ue.Op + " " + redact(u).String() + ": "
		}
		return prefix + cause(ue.Err)
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.Is(err, ErrNotPublic) || errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		return cause(err)
	}
	return err.Error()
}

func cause(err error) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var unknownCA x509.UnknownAuthorityError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.Is(err, ErrNotPublic):
		return "the address is loopback, private or otherwise not public"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "the host " + dnsErr.Name + " does not exist"
		}
		return "the host " + dnsErr.Name + " could not be resolved"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.As(err, &hostErr):
		return "TLS: the certificate is not valid for this host"
	case errors.As(err, &unknownCA), errors.As(err, &certErr):
		return "TLS: the certificate is not trusted"
	case errors.As(err, &recordErr):
		return "TLS handshake failed (is this an https server?)"
	case errors.As(err, &opErr):
		if opErr.Err != nil && opErr.Err != err {
			return cause(opErr.Err)
		}
		return "network error"
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "tls:"):
		return "TLS handshake failed"
	case strings.Contains(msg, "EOF"):
		return "the server closed the connection"
	case strings.Contains(msg, "dial ") || strings.Contains(msg, "lookup ") || strings.Contains(msg, " tcp ") || strings.Contains(msg, " udp "):
		return "network error" // would name addresses
	}
	return msg // ours (redirect limits) or net/http's, without addresses
}
