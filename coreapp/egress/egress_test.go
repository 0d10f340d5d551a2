package egress

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
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

// RootCAs replace the system's, with the standard checks: the host name
// is verified, IP addresses included.
func TestRootCAs(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "attacker.example"}, DNSNames: []string{"attacker.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	named := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})) // names 127.0.0.1
	defer named.Close()
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	other.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	other.StartTLS()
	defer other.Close()
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(named.Certificate())
	pool.AddCert(leaf)
	c := Policy{AllowPrivate: true, Timeout: 5 * time.Second, RootCAs: pool}.Client()
	get := func(url string) error {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(named.URL); err != nil {
		t.Errorf("a server its CA signed, at an address it names: %v", err)
	}
	if err := get(other.URL); err == nil {
		t.Error("a trusted certificate for attacker.example was accepted at 127.0.0.1")
	}
	if resp, err := (Policy{AllowPrivate: true, Timeout: 5 * time.Second}.Client()).Get(named.URL); err == nil {
		resp.Body.Close()
		t.Error("without RootCAs a certificate no system CA signed was accepted")
	}
}
