package webtls

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/clusterkeys"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/db/keystore"
	"github.com/openwaba/openwaba/webapp/webtls/certtest"
)

// TestSharedRenewedCertificate: two webapps serve one certificate; when it
// is within RenewBefore of its expiry, the first to look replaces it and
// the other picks the new one up at its next reload.
func TestSharedRenewedCertificate(t *testing.T) {
	d := dbtest.New(t, db.Core)
	ks, err := keystore.New(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	a, err := Load(ctx, d, ks, "waba.example", log)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(ctx, d, ks, "other.example", log)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.PEM(), b.PEM()) {
		t.Fatal("two webapps serve different certificates")
	}
	first := a.cur.Load()
	c, err := a.TLSConfig().GetCertificate(nil)
	if err != nil || c != first {
		t.Fatalf("GetCertificate = %v, %v", c, err)
	}
	notAfter, _ := clusterkeys.NotAfter(*first)
	if life := time.Until(notAfter); life < 364*24*time.Hour {
		t.Fatalf("certificate valid for %v, want a year", life)
	}
	// 340 days later: within 30 days of the expiry.
	later := func() time.Time { return time.Now().Add(340 * 24 * time.Hour) }
	a.now = later
	if err := a.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.PEM(), b.PEM()) || a.cur.Load() == first {
		t.Fatal("the certificate was not renewed")
	}
	b.now = time.Now // the new certificate is valid a year from now (real time)
	if err := b.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.PEM(), b.PEM()) {
		t.Fatal("the second webapp did not pick up the renewed certificate (or renewed it again)")
	}
	if leaf := b.cur.Load().Leaf; leaf != nil && leaf.VerifyHostname("waba.example") != nil {
		t.Error("the renewed certificate lost the server name")
	}
}

func TestParseExternal(t *testing.T) {
	ca, other := certtest.NewCA(t, "Test CA"), certtest.NewCA(t, "Other CA")
	now := time.Now()
	good := ca.Issue(t, []string{"waba.example"}, now.Add(-time.Hour), now.Add(time.Hour))
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tt := range []struct {
		name string
		file []byte
		want string // "" accepted
	}{
		{"key, certificate, chain", cat(good.KeyPEM, good.CertPEM, ca.PEM), ""},
		{"certificate first, key last", cat(good.CertPEM, ca.PEM, good.KeyPEM), ""},
		{"no chain", cat(good.KeyPEM, good.CertPEM), ""},
		{"no key", cat(good.CertPEM, ca.PEM), "exactly one private key"},
		{"two keys", cat(good.KeyPEM, good.KeyPEM, good.CertPEM), "exactly one private key"},
		{"no certificate", good.KeyPEM, "no certificate"},
		{"another key", cat(ca.Issue(t, []string{"waba.example"}, now.Add(-time.Hour), now.Add(time.Hour)).KeyPEM, good.CertPEM), "not the private key's"},
		{"expired", func() []byte {
			l := ca.Issue(t, []string{"waba.example"}, now.Add(-48*time.Hour), now.Add(-time.Hour))
			return cat(l.KeyPEM, l.CertPEM)
		}(), "expired"},
		{"not yet valid", func() []byte {
			l := ca.Issue(t, []string{"waba.example"}, now.Add(time.Hour), now.Add(2*time.Hour))
			return cat(l.KeyPEM, l.CertPEM)
		}(), "not valid before"},
		{"another host", func() []byte {
			l := ca.Issue(t, []string{"other.example"}, now.Add(-time.Hour), now.Add(time.Hour))
			return cat(l.KeyPEM, l.CertPEM)
		}(), "does not name waba.example"},
		{"a chain of another CA", cat(good.KeyPEM, good.CertPEM, other.PEM), "not signed by certificate 2"},
		{"garbage after the blocks", cat(good.KeyPEM, good.CertPEM, []byte("hello")), "not PEM"},
		{"nothing", nil, "exactly one private key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseExternal(tt.file, "waba.example", now)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one about %q", err, tt.want)
			}
		})
	}
}

// TestUploadedCertificate: an upload is served at once by the webapp that
// took it and at the next reload by another; its CA is the chain's last
// certificate; the webhook CA bundle is kept alongside.
func TestUploadedCertificate(t *testing.T) {
	d := dbtest.New(t, db.Core)
	ks, err := keystore.New(bytes.Repeat([]byte{4}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	a, err := Load(ctx, d, ks, "waba.example", log)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(ctx, d, ks, "waba.example", log)
	if err != nil {
		t.Fatal(err)
	}
	if ca, ok := a.CA(); !ok || !bytes.Contains(a.PEM(), ca) {
		t.Errorf("the generated certificate's CA = %q, %v; want the certificate itself", ca, ok)
	}
	ca := certtest.NewCA(t, "Test CA")
	leaf := ca.Issue(t, []string{"waba.example"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	file := bytes.Join([][]byte{leaf.KeyPEM, leaf.CertPEM, ca.PEM}, nil)
	if err := a.SetExternal(ctx, []byte("junk")); err == nil {
		t.Error("junk was accepted")
	}
	if err := a.SetExternal(ctx, file); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.TLSConfig().GetCertificate(nil); got.Leaf == nil || got.Leaf.Issuer.CommonName != "Test CA" {
		t.Errorf("the webapp that took the upload serves %v", got.Leaf.Subject)
	}
	if err := b.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.TLSConfig().GetCertificate(nil); got.Leaf == nil || got.Leaf.Issuer.CommonName != "Test CA" {
		t.Error("the other webapp does not serve the upload after its reload")
	}
	if got, ok := b.CA(); !ok || !bytes.Equal(got, ca.PEM) {
		t.Errorf("CA = %q, %v; want the chain's CA", got, ok)
	}

	if got, err := a.WebhookCA(ctx); err != nil || got != nil {
		t.Errorf("webhook CA before any = %q, %v", got, err)
	}
	if err := a.SetWebhookCA(ctx, leaf.KeyPEM); err == nil {
		t.Error("a private key was accepted as a CA bundle")
	}
	if err := a.SetWebhookCA(ctx, ca.PEM); err != nil {
		t.Fatal(err)
	}
	if got, err := b.WebhookCA(ctx); err != nil || !bytes.Equal(got, ca.PEM) {
		t.Errorf("webhook CA = %q, %v", got, err)
	}
	if err := b.DeleteWebhookCA(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := a.WebhookCA(ctx); err != nil || got != nil {
		t.Errorf("webhook CA after delete = %q, %v", got, err)
	}
}
