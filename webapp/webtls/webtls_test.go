package webtls

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/clusterkeys"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/db/keystore"
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
