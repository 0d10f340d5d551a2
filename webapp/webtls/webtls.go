// Package webtls keeps the webapp's HTTPS certificate. Every webapp of a
// deployment serves the same one, kept (sealed) in cluster_secrets: the first
// webapp to start generates a self-signed leaf certificate for
// WA_WEB_SERVERNAME and the loopback addresses, valid one year; whichever
// webapp sees it expire within RenewBefore replaces it; and every webapp
// reloads the stored certificate every ReloadEvery, so a renewal reaches all
// of them without a restart.
//
// A Holder is safe for concurrent use; Run owns the only goroutine it needs
// (the caller's).
package webtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openwaba/openwaba/db/clusterkeys"
	"github.com/openwaba/openwaba/db/keystore"
)

// Tunables.
const (
	// RenewBefore is how long before its expiry a certificate is replaced.
	RenewBefore = 30 * 24 * time.Hour
	// ReloadEvery is how often the stored certificate is read again.
	ReloadEvery = time.Minute
	// Validity is the lifetime of a generated certificate.
	Validity = 365 * 24 * time.Hour
)

// Holder serves the deployment's web certificate.
type Holder struct {
	db         *sql.DB
	ks         *keystore.Keystore
	log        *slog.Logger
	serverName string
	now        func() time.Time

	cur atomic.Pointer[tls.Certificate]
	mu  sync.Mutex // guards pem
	pem []byte
}

// Load returns a Holder with the stored certificate, creating it (or
// renewing it when it expires within RenewBefore) first.
func Load(ctx context.Context, d *sql.DB, ks *keystore.Keystore, serverName string, log *slog.Logger) (*Holder, error) {
	h := &Holder{db: d, ks: ks, log: log, serverName: serverName, now: time.Now}
	if err := h.refresh(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Holder) generate() func() ([]byte, error) {
	return clusterkeys.SelfSigned(clusterkeys.Cert{CommonName: "openwaba", Hosts: []string{h.serverName, "localhost"}, Valid: Validity})
}

// refresh reads the stored certificate, renews it when due, and serves it.
func (h *Holder) refresh(ctx context.Context) error {
	pemBytes, err := clusterkeys.GetOrCreate(ctx, h.db, h.ks, clusterkeys.WebCert, h.generate())
	if err != nil {
		return fmt.Errorf("web certificate: %w", err)
	}
	pair, err := clusterkeys.KeyPair(pemBytes)
	if err != nil {
		return fmt.Errorf("web certificate: %w", err)
	}
	notAfter, err := clusterkeys.NotAfter(pair)
	if err != nil {
		return fmt.Errorf("web certificate: %w", err)
	}
	if notAfter.Sub(h.now()) < RenewBefore {
		next, err := h.generate()()
		if err != nil {
			return fmt.Errorf("renew web certificate: %w", err)
		}
		if pemBytes, err = clusterkeys.Replace(ctx, h.db, h.ks, clusterkeys.WebCert, pemBytes, next); err != nil {
			return err
		}
		if pair, err = clusterkeys.KeyPair(pemBytes); err != nil {
			return fmt.Errorf("web certificate: %w", err)
		}
		h.log.Info("web certificate renewed", "expired_at", notAfter)
	}
	h.mu.Lock()
	changed := !bytes.Equal(h.pem, pemBytes)
	h.pem = pemBytes
	h.mu.Unlock()
	if changed {
		h.cur.Store(&pair)
	}
	return nil
}

// Run reloads (and renews) the certificate every ReloadEvery until ctx ends.
func (h *Holder) Run(ctx context.Context) {
	t := time.NewTicker(ReloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := h.refresh(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("reloading the web certificate failed; serving the previous one", "err", err)
		}
	}
}

// PEM is the certificate and key being served.
func (h *Holder) PEM() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pem
}

// TLSConfig is the listener's TLS: the held certificate, TLS 1.2 or later
// with the project's AEAD suites.
func (h *Holder) TLSConfig() *tls.Config {
	c := clusterkeys.ServerTLS()
	c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return h.cur.Load(), nil }
	return c
}
