package clusterkeys_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/clusterkeys"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/db/keystore"
)

func newKeystore(t *testing.T) *keystore.Keystore {
	t.Helper()
	ks, err := keystore.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestSealedAtRest(t *testing.T) {
	d := dbtest.New(t, db.Core)
	ks := newKeystore(t)
	ctx := t.Context()
	tok, err := clusterkeys.GetOrCreate(ctx, d, ks, clusterkeys.CoreToken, clusterkeys.RandomToken)
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := d.QueryRowContext(ctx, "SELECT value FROM cluster_secrets WHERE name = ?", clusterkeys.CoreToken).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, tok) {
		t.Fatal("the token is stored in plaintext")
	}
	again, err := clusterkeys.GetOrCreate(ctx, d, ks, clusterkeys.CoreToken, clusterkeys.RandomToken)
	if err != nil || !bytes.Equal(again, tok) {
		t.Fatalf("second GetOrCreate = %q, %v; want the first value", again, err)
	}
	// Another deployment secret does not open it.
	other, _ := keystore.New(bytes.Repeat([]byte{8}, 32))
	if _, err := clusterkeys.Get(ctx, d, other, clusterkeys.CoreToken); err == nil {
		t.Fatal("a value opened with another keystore secret")
	}
}

func TestLegacyPlaintextIsSealedOnRead(t *testing.T) {
	d := dbtest.New(t, db.Core)
	ks := newKeystore(t)
	ctx := t.Context()
	pemBytes, err := clusterkeys.SelfSigned(clusterkeys.Cert{CommonName: "x", Hosts: []string{"localhost"}})()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExecContext(ctx, "INSERT INTO cluster_secrets (name, value, created_at) VALUES (?, ?, 0)", clusterkeys.WebCert, pemBytes); err != nil {
		t.Fatal(err)
	}
	got, err := clusterkeys.Get(ctx, d, ks, clusterkeys.WebCert)
	if err != nil || !bytes.Equal(got, pemBytes) {
		t.Fatalf("Get of a legacy value = %v", err)
	}
	var raw []byte
	if err := d.QueryRowContext(ctx, "SELECT value FROM cluster_secrets WHERE name = ?", clusterkeys.WebCert).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatal("the legacy value was not sealed in place")
	}
	if got, err := clusterkeys.Get(ctx, d, ks, clusterkeys.WebCert); err != nil || !bytes.Equal(got, pemBytes) {
		t.Fatalf("Get after sealing = %v", err)
	}
}

func TestReplaceKeepsTheWinner(t *testing.T) {
	d := dbtest.New(t, db.Core)
	ks := newKeystore(t)
	ctx := t.Context()
	first, err := clusterkeys.GetOrCreate(ctx, d, ks, clusterkeys.CoreToken, clusterkeys.RandomToken)
	if err != nil {
		t.Fatal(err)
	}
	got, err := clusterkeys.Replace(ctx, d, ks, clusterkeys.CoreToken, first, []byte("second"))
	if err != nil || string(got) != "second" {
		t.Fatalf("Replace = %q, %v", got, err)
	}
	// A replacement based on the old value loses to the one made since.
	got, err = clusterkeys.Replace(ctx, d, ks, clusterkeys.CoreToken, first, []byte("third"))
	if err != nil || string(got) != "second" {
		t.Fatalf("stale Replace = %q, %v; want second", got, err)
	}
}

func TestSelfSignedIsALeaf(t *testing.T) {
	pemBytes, err := clusterkeys.SelfSigned(clusterkeys.Cert{CommonName: "openwaba", Hosts: []string{"waba.example"}})()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(pemBytes)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if c.IsCA || c.KeyUsage&x509.KeyUsageCertSign != 0 {
		t.Errorf("IsCA %v, KeyUsage %v: want a leaf", c.IsCA, c.KeyUsage)
	}
	if life := c.NotAfter.Sub(c.NotBefore); life < 365*24*time.Hour || life > 366*24*time.Hour {
		t.Errorf("valid for %v, want one year", life)
	}
	for _, h := range []string{"waba.example", "127.0.0.1", "::1"} {
		if err := c.VerifyHostname(h); err != nil {
			t.Errorf("VerifyHostname(%s): %v", h, err)
		}
	}
	// A client that trusts exactly this certificate verifies it.
	pool := x509.NewCertPool()
	pool.AddCert(c)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "waba.example"}); err != nil {
		t.Errorf("Verify against itself: %v", err)
	}
}
