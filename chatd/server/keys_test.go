package server

import (
	"bytes"
	"crypto/ed25519"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// TestLoadKeysSharedOnce: chatds starting together on one database create
// the keys once and all get the same ones (the media token secret too), with
// a certificate valid for a year; a later start reads them back unchanged.
func TestLoadKeysSharedOnce(t *testing.T) {
	t.Parallel()
	d := dbtest.New(t, db.Chatd)
	log := slog.New(slog.DiscardHandler)
	const n = 6
	keys := make([]*Keys, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadKeys(t.Context(), d, log) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("LoadKeys #%d: %v", i, errs[i])
		}
	}
	later, err := LoadKeys(t.Context(), d, log)
	if err != nil {
		t.Fatal(err)
	}
	first := keys[0]
	for i, k := range append(keys[1:], later) {
		if !first.Root.Equal(k.Root) || !bytes.Equal(first.Static.Private, k.Static.Private) ||
			!proto.Equal(first.Cert, k.Cert) || !bytes.Equal(first.TLS.Certificate[0], k.TLS.Certificate[0]) ||
			!bytes.Equal(first.MediaSecret, k.MediaSecret) {
			t.Errorf("LoadKeys #%d got other keys than #0", i+1)
		}
	}
	if err := wire.VerifyCertificate(first.RootPublic(), first.Cert, time.Now()); err != nil {
		t.Errorf("certificate: %v", err)
	}
	if !bytes.Equal(first.Cert.ServerStatic, first.Static.Public) {
		t.Error("certificate is not for the server's static key")
	}
	if left := time.Until(time.Unix(first.Cert.NotAfter, 0)); left < CertValidity-2*time.Hour || left > CertValidity {
		t.Errorf("certificate valid for another %v, want about %v", left, CertValidity)
	}
	if len(first.MediaSecret) != 32 {
		t.Errorf("media secret of %d bytes, want 32", len(first.MediaSecret))
	}
	if got := count(t, d, "SELECT COUNT(*) FROM server_keys"); got != 5 {
		t.Errorf("server_keys holds %d rows, want 5", got)
	}
}

// TestCertificateRenewal: a stored certificate expiring within
// CertRenewBefore, or one the root key did not sign, is replaced by a fresh
// one (stored for every chatd); one with more time left is kept.
func TestCertificateRenewal(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	_, forger, err := wire.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		notAfter  time.Duration // from now
		signer    func(k *Keys) ed25519.PrivateKey
		wantRenew bool
	}{
		{"expires in 60 days", 60 * 24 * time.Hour, func(k *Keys) ed25519.PrivateKey { return k.Root }, false},
		{"expires in 10 days", 10 * 24 * time.Hour, func(k *Keys) ed25519.PrivateKey { return k.Root }, true},
		{"expired", -time.Hour, func(k *Keys) ed25519.PrivateKey { return k.Root }, true},
		{"signed by another key", 200 * 24 * time.Hour, func(*Keys) ed25519.PrivateKey { return forger }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := dbtest.New(t, db.Chatd)
			k, err := LoadKeys(t.Context(), d, log)
			if err != nil {
				t.Fatal(err)
			}
			old, err := wire.IssueCertificate(tt.signer(k), k.Static.Public, time.Now().Add(-300*24*time.Hour), time.Now().Add(tt.notAfter))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := proto.Marshal(old)
			if _, err := d.Exec("UPDATE server_keys SET value = ? WHERE name = ?", b, keyCert); err != nil {
				t.Fatal(err)
			}
			k2, err := LoadKeys(t.Context(), d, log)
			if err != nil {
				t.Fatal(err)
			}
			if renewed := !proto.Equal(old, k2.Cert); renewed != tt.wantRenew {
				t.Fatalf("renewed = %v, want %v", renewed, tt.wantRenew)
			}
			if !tt.wantRenew {
				return
			}
			if err := wire.VerifyCertificate(k.RootPublic(), k2.Cert, time.Now()); err != nil {
				t.Errorf("renewed certificate: %v", err)
			}
			if left := time.Until(time.Unix(k2.Cert.NotAfter, 0)); left < CertValidity-2*time.Hour {
				t.Errorf("renewed certificate valid for another %v, want about %v", left, CertValidity)
			}
			var raw []byte
			if err := d.QueryRow("SELECT value FROM server_keys WHERE name = ?", keyCert).Scan(&raw); err != nil {
				t.Fatal(err)
			}
			stored := new(chatdv1.Certificate)
			if err := proto.Unmarshal(raw, stored); err != nil || !proto.Equal(stored, k2.Cert) {
				t.Errorf("the renewed certificate is not the stored one (%v)", err)
			}
		})
	}
}
