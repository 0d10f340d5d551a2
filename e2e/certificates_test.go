package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openwaba/openwaba/e2e/stack"
	"github.com/openwaba/openwaba/webapp/webtls/certtest"
)

// verifiedGet is GET url with TLS verified against roots only (the
// webapps' certificate, not the test client's blind trust).
func verifiedGet(roots *x509.CertPool, url string) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// TestExternalCertificate: an uploaded certificate (key, leaf, chain) is
// checked, served at once by the webapp that took it and, without a
// restart, by the other; its CA is answered; a bad upload changes nothing.
func TestExternalCertificate(t *testing.T) {
	s := stack.New(t, stack.Options{Webapps: 2})
	tok := s.Login()
	ca := certtest.NewCA(t, "Operator CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for i := range s.Webs {
		if err := verifiedGet(roots, s.WebURL(i)+"/v1/health"); err == nil {
			t.Fatalf("webapp %d already serves a certificate of the test's CA", i)
		}
	}
	now := time.Now()
	expired := ca.Issue(t, []string{"localhost", "127.0.0.1"}, now.Add(-48*time.Hour), now.Add(-time.Hour))
	if code, _, body := s.Raw("POST", "/v1/certificates/external", bearer(tok), "text/plain", bytes.Join([][]byte{expired.KeyPEM, expired.CertPEM, ca.PEM}, nil)); code != 400 || !strings.Contains(string(body), "expired") {
		t.Errorf("upload of an expired certificate = %d %s, want 400 about the expiry", code, body)
	}
	leaf := ca.Issue(t, []string{"localhost", "127.0.0.1"}, now.Add(-time.Hour), now.Add(24*time.Hour))
	if code, _, body := s.Raw("POST", "/v1/certificates/external/", bearer(tok), "text/plain", bytes.Join([][]byte{leaf.KeyPEM, leaf.CertPEM, ca.PEM}, nil)); code != 200 {
		t.Fatalf("upload = %d %s", code, body)
	}
	if err := verifiedGet(roots, s.WebURL(0)+"/v1/health"); err != nil {
		t.Errorf("the webapp that took the upload does not serve it: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for err := verifiedGet(roots, s.WebURL(1)+"/v1/health"); err != nil; err = verifiedGet(roots, s.WebURL(1)+"/v1/health") {
		if time.Now().After(deadline) {
			t.Fatalf("the other webapp does not serve the upload after 30 s: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	code, hdr, body := s.Webs[1].Raw("GET", "/v1/certificates/external/ca", bearer(tok), "", nil)
	if code != 200 || !bytes.Equal(body, ca.PEM) || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Errorf("GET external CA = %d %q %s; want the CA as text/plain", code, hdr.Get("Content-Type"), body)
	}
}

// TestWebhookCA: a receiver whose certificate no system CA signed gets no
// webhook (TLS fails, the delivery log says why) until its CA is uploaded;
// then the waiting events arrive, without a restart. GET answers the
// bundle, DELETE removes it.
func TestWebhookCA(t *testing.T) {
	var got atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer srv.Close()
	s := stack.New(t, stack.Options{})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	if code, _, body := s.Raw("GET", "/v1/certificates/webhooks/ca", bearer(tok), "", nil); code != 404 || len(body) != 0 {
		t.Errorf("GET webhook CA before any = %d %q, want 404 empty", code, body)
	}
	if r := s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{
		"webhooks": map[string]any{"url": srv.URL}, "callback_backoff_delay_ms": 500, "max_callback_backoff_delay_ms": 1000,
	}); r.Status != 200 {
		t.Fatalf("PATCH settings = %d %s", r.Status, r.Raw)
	}
	phone := s.NewPhone("15551230006", "Lou")
	in := phone.Text(bizCC+bizPhone, "hello over TLS")
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := s.Do("GET", "/v1/webhooks/deliveries?message_id="+in, bearer(tok), nil)
		if strings.Contains(string(r.Raw), "certificate") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempt naming the certificate: %s", r.Raw)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if got.Load() != 0 {
		t.Fatal("the receiver got a POST over a TLS connection the client should have refused")
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if code, _, body := s.Raw("POST", "/v1/certificates/webhooks/ca", bearer(tok), "text/plain", []byte("not a certificate")); code != 400 {
		t.Errorf("upload of junk = %d %s, want 400", code, body)
	}
	if code, _, body := s.Raw("POST", "/v1/certificates/webhooks/ca", bearer(tok), "text/plain", caPEM); code != 200 {
		t.Fatalf("upload of the CA = %d %s", code, body)
	}
	deadline = time.Now().Add(40 * time.Second)
	for got.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the receiver got nothing 40 s after its CA was uploaded")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, _, body := s.Raw("GET", "/v1/certificates/webhooks/ca", bearer(tok), "", nil); code != 200 || !bytes.Equal(body, caPEM) {
		t.Errorf("GET webhook CA = %d %s", code, body)
	}
	if r := s.Do("DELETE", "/v1/certificates/webhooks/ca", bearer(tok), nil); r.Status != 200 {
		t.Errorf("DELETE webhook CA = %d %s", r.Status, r.Raw)
	}
	if code, _, _ := s.Raw("GET", "/v1/certificates/webhooks/ca", bearer(tok), "", nil); code != 404 {
		t.Errorf("GET webhook CA after DELETE = %d, want 404", code)
	}
}
