package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/clusterkeys"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/db/keystore"
)

// logWatch collects the process log and lets a test wait for a line.
type logWatch struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newLogWatch() *logWatch { return &logWatch{changed: make(chan struct{})} }

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.changed)
	w.changed = make(chan struct{})
	return w.buf.Write(p)
}

func (w *logWatch) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for {
		w.mu.Lock()
		found, ch := strings.Contains(w.buf.String(), s), w.changed
		w.mu.Unlock()
		if found {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Fatalf("no log line with %q; log so far:\n%s", s, w.buf.String())
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestRun starts the webapp the way an operator does, plays coreapp's part
// (schema, secrets) while the webapp waits for it, talks HTTPS to it, and
// stops it with its context.
func TestRun(t *testing.T) {
	cfg, name := dbtest.NewName(t)
	port := freePort(t)
	dataDir := t.TempDir()
	for k, v := range dbtest.Env(cfg) {
		t.Setenv(k, v)
	}
	for k, v := range map[string]string{
		"WA_DB_NAME":  name,
		"WA_WEB_ADDR": "127.0.0.1", "WA_WEB_PORT": strconv.Itoa(port), "WA_WEB_SERVERNAME": "waba.test",
		"WA_CORE_ENDPOINT": "127.0.0.1:1", "WA_API_KEY": "monitoring-key-123",
		"WA_LOG_FORMAT": "json", "WA_LOG_LEVEL": "info", "WA_CONFIG_FILE": "",
		"WA_DATA_DIR": dataDir, "WA_KEYSTORE_SECRET": "",
	} {
		t.Setenv(k, v)
	}

	logs := newLogWatch()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, logs, nil) }()

	// Play coreapp: migrate, then publish the certificate and token.
	logs.waitFor(t, "waiting for coreapp to apply the schema")
	d, err := db.Open(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := db.Migrate(t.Context(), d, db.Core); err != nil {
		t.Fatal(err)
	}
	// ... and create the keystore secret in the shared data directory.
	logs.waitFor(t, "waiting for the keystore secret")
	ks, _, err := keystore.Load("", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, "waiting for a coreapp to publish its certificate and token")
	if _, err := clusterkeys.GetOrCreate(t.Context(), d, ks, clusterkeys.CoreCert, clusterkeys.SelfSigned(clusterkeys.Cert{CommonName: "coreapp", Hosts: []string{"localhost"}})); err != nil {
		t.Fatal(err)
	}
	if _, err := clusterkeys.GetOrCreate(t.Context(), d, ks, clusterkeys.CoreToken, clusterkeys.RandomToken); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, `"msg":"webapp listening"`)
	logs.waitFor(t, `"url":"https://127.0.0.1:`+strconv.Itoa(port)+`"`)

	webPEM, err := clusterkeys.Get(t.Context(), d, ks, clusterkeys.WebCert)
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := clusterkeys.PinnedClientConfig(webPEM)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: pinned}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	base := "https://127.0.0.1:" + strconv.Itoa(port)

	// The admin was seeded and must change its password.
	req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/v1/users/login", nil)
	req.SetBasicAuth("admin", "secret")
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 400 || !strings.Contains(string(body), `"code":1024`) {
		t.Errorf("first login: %d %s, want 400 with code 1024", res.StatusCode, body)
	}

	// The monitoring key passes authentication; coreapp is not there.
	req, _ = http.NewRequestWithContext(t.Context(), "GET", base+"/v1/health", nil)
	req.Header.Set("Authorization", "Apikey monitoring-key-123")
	res, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 503 || !strings.Contains(string(body), `"code":1014`) {
		t.Errorf("health: %d %s, want 503 with code 1014", res.StatusCode, body)
	}

	// TLS below 1.2 is refused.
	old := pinned.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), old); err == nil {
		conn.Close()
		t.Errorf("a TLS 1.1 handshake succeeded")
	}

	// TLS 1.2 with a CBC suite is refused; with an AEAD suite it works.
	cbc := pinned.Clone()
	cbc.MaxVersion = tls.VersionTLS12
	cbc.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}
	if conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), cbc); err == nil {
		conn.Close()
		t.Errorf("a TLS 1.2 handshake with only CBC suites succeeded")
	}
	gcm := pinned.Clone()
	gcm.MaxVersion = tls.VersionTLS12
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), gcm)
	if err != nil {
		t.Fatalf("TLS 1.2 handshake: %v", err)
	}
	st := conn.ConnectionState()
	conn.Close()
	// The generated certificate is a leaf for the server name and the
	// loopback addresses, valid one year.
	leaf := st.PeerCertificates[0]
	if leaf.IsCA || leaf.KeyUsage&x509.KeyUsageCertSign != 0 {
		t.Errorf("web certificate is a CA (IsCA %v, usage %v)", leaf.IsCA, leaf.KeyUsage)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 366*24*time.Hour || life < 364*24*time.Hour {
		t.Errorf("web certificate valid for %v, want one year", life)
	}
	if err := leaf.VerifyHostname("waba.test"); err != nil {
		t.Errorf("web certificate: %v", err)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("web certificate: %v", err)
	}
	// At rest, the private key and the core token are sealed.
	token, err := clusterkeys.Get(t.Context(), d, ks, clusterkeys.CoreToken)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := d.QueryContext(t.Context(), "SELECT name, value FROM cluster_secrets")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var v []byte
		if err := rows.Scan(&name, &v); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(v, []byte("PRIVATE KEY")) || bytes.Contains(v, []byte("CERTIFICATE")) || bytes.Contains(v, token) {
			t.Errorf("cluster secret %s is stored in plaintext", name)
		}
	}
	rows.Close()

	tr.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v, want nil after cancel", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	logs.waitFor(t, "webapp stopped")
}
