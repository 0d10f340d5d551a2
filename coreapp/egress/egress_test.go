package egress

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPublicAddresses(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2a00:1450:4001:80b::200e": true, "93.184.216.34": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "0.0.0.0": false, "::1": false, "fe80::1": false, "fd00::1": false, "::ffff:127.0.0.1": false,
		"::ffff:10.0.0.1": false, "224.0.0.1": false, "198.18.0.1": false, "::": false, "64:ff9b::a00:1": false,
	} {
		if got := Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@hooks.example/in?token=s3cret&x=1#frag": "https://hooks.example/in?token=REDACTED&x=REDACTED",
		"https://cdn.example/a.png":                              "https://cdn.example/a.png",
		"http://[::1]:8080/p?sig=abc":                            "http://[::1]:8080/p?sig=REDACTED",
		"%zz":                                                    "(invalid URL)",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDescribe: the descriptions of network failures name neither the
// resolver nor the addresses behind a name, and redact the URL.
func TestDescribe(t *testing.T) {
	c := Policy{Timeout: 2 * time.Second}.Client()
	cases := []struct {
		url, want string
	}{
		{"https://no-such-host.invalid/x?token=s3cret", "does not exist"},
		{"http://127.0.0.1:1/x?token=s3cret", "not public"},
		{"http://10.0.0.1/x", "not public"},
	}
	for _, tc := range cases {
		_, err := c.Get(tc.url)
		if err == nil {
			t.Fatalf("GET %s succeeded", tc.url)
		}
		got := Describe(err)
		if !strings.Contains(got, tc.want) {
			t.Errorf("Describe(GET %s) = %q, want it to say %q", tc.url, got, tc.want)
		}
		if strings.Contains(got, "s3cret") || strings.Contains(got, ":53") || strings.Contains(got, "lookup") {
			t.Errorf("Describe(GET %s) = %q leaks the query, the resolver or the lookup", tc.url, got)
		}
	}
	// A refused connection to an allowed private address.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	_, err := Policy{AllowPrivate: true, Timeout: 2 * time.Second}.Client().Get("http://" + addr + "/")
	if got := Describe(err); !strings.Contains(got, "connection refused") || strings.Contains(got, "dial tcp") {
		t.Errorf("Describe(refused) = %q", got)
	}
}

// TestRedirects: credentials follow a redirect on the same origin only,
// redirects are capped, and a redirect to a private address is refused
// when the guard is on.
func TestRedirects(t *testing.T) {
	type seen struct{ path, auth, secret string }
	got := make(chan seen, 16)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{"other" + r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("X-Secret")}
	}))
	defer other.Close()
	var origin *httptest.Server
	origin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("X-Secret")}
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/landed", http.StatusFound)
		case "/away":
			http.Redirect(w, r, other.URL+"/landed", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		}
	}))
	defer origin.Close()
	p := Policy{AllowPrivate: true, MaxRedirects: 3, Timeout: 5 * time.Second}
	c := p.Client()
	do := func(path string) error {
		req, _ := http.NewRequest("GET", origin.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("X-Secret", "s")
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	drain := func() []seen {
		var out []seen
		for {
			select {
			case s := <-got:
				out = append(out, s)
			default:
				return out
			}
		}
	}
	if err := do("/same"); err != nil {
		t.Fatal(err)
	}
	if s := drain(); len(s) != 2 || s[1].auth != "Bearer tok" || s[1].secret != "s" {
		t.Errorf("same-origin redirect: %+v, want the credentials kept", s)
	}
	if err := do("/away"); err != nil {
		t.Fatal(err)
	}
	if s := drain(); len(s) != 2 || s[1].path != "other/landed" || s[1].auth != "" || s[1].secret != "" {
		t.Errorf("cross-origin redirect: %+v, want no credentials at the other origin", s)
	}
	if err := do("/loop"); err == nil || !strings.Contains(Describe(err), "more than 3 redirects") {
		t.Errorf("redirect loop: %v", err)
	}
	if n := len(drain()); n != 4 {
		t.Errorf("redirect loop made %d requests, want 4 (the first and 3 redirects)", n)
	}

	// Guarded: a public-looking start cannot be tested offline, but a
	// redirect is dialled like any request: the private target is refused.
	guarded := Policy{MaxRedirects: 3, Timeout: 5 * time.Second}.Client()
	_, err := guarded.Get(origin.URL + "/away")
	if !errors.Is(err, ErrNotPublic) {
		t.Errorf("guarded GET of a loopback URL = %v, want ErrNotPublic", err)
	}
	if s := drain(); len(s) != 0 {
		t.Errorf("guarded client reached %+v", s)
	}
}

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	p := Policy{}
	for _, u := range []string{"http://127.0.0.1/x", "https://localhost/x", "https://[::1]/", "https://10.1.1.1/", "https://169.254.169.254/latest", "ftp://example.com/", "https://no-such-host.invalid/"} {
		if err := p.CheckURL(ctx, u); err == nil {
			t.Errorf("CheckURL(%s) = nil, want a refusal", u)
		}
	}
	if err := p.CheckURL(ctx, "https://93.184.216.34/hook"); err != nil {
		t.Errorf("CheckURL(public IP) = %v", err)
	}
	if err := (Policy{AllowPrivate: true}).CheckURL(ctx, "http://127.0.0.1:8000/hook"); err != nil {
		t.Errorf("CheckURL with AllowPrivate = %v", err)
	}
}

// ExtraRoots are trusted besides the system's, as they are at each
// handshake, and the host name is still checked.
func TestExtraRoots(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	var extra atomic.Pointer[x509.CertPool]
	c := Policy{AllowPrivate: true, Timeout: 5 * time.Second, ExtraRoots: extra.Load}.Client()
	get := func(url string) error {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(srv.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a certificate no root signed = %v, want a certificate error", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	extra.Store(pool)
	if err := get(srv.URL); err != nil {
		t.Fatalf("with its CA among the extra roots: %v", err)
	}
	// The name is checked: the certificate names 127.0.0.1 and example.com.
	if err := get(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)); err == nil {
		t.Error("a host the certificate does not name was accepted")
	}
	extra.Store(nil)
	c.CloseIdleConnections()
	if err := get(srv.URL); err == nil {
		t.Error("the roots were removed but the certificate is still trusted")
	}
}
