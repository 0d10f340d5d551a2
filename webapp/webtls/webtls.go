// Package webtls keeps the webapp's HTTPS certificate. Every webapp of a
// deployment serves the same one, kept (sealed) in cluster_secrets: the first
// webapp to start generates a self-signed leaf certificate for
// WA_WEB_SERVERNAME and the loopback addresses, valid one year; whichever
// webapp sees it expire within RenewBefore replaces it; and every webapp
// reloads the stored certificate every ReloadEvery, so a renewal reaches all
// of them without a restart.
//
// The operator may upload a certificate of their own instead
// (SetExternal, POST /v1/certificates/external): a key, its certificate and
// optionally the chain, checked to match, to be valid now and to name
// WA_WEB_SERVERNAME. While it is stored every webapp serves it (the one that
// took the upload at once, the others at their next reload) and nothing is
// renewed: renewing it is the operator's.
//
// The Holder also keeps the CA bundle the webhook client of the coreapps
// trusts (SetWebhookCA, /v1/certificates/webhooks/ca).
//
// A Holder is safe for concurrent use; Run owns the only goroutine it needs
// (the caller's).
package webtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
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
	// ReloadEvery is how often the stored certificate is read again (one
	// small SELECT).
	ReloadEvery = 10 * time.Second
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
	ext, err := clusterkeys.Get(ctx, h.db, h.ks, clusterkeys.WebExternalCert)
	switch {
	case err == nil:
		pair, perr := ParseExternal(ext, h.serverName, h.now())
		if perr == nil {
			h.serve(ext, pair)
			return nil
		}
		// Expired or no longer naming this host: the generated one serves.
		h.log.Warn("the uploaded web certificate cannot be served; serving the generated one", "err", perr)
	case !errors.Is(err, clusterkeys.ErrNotFound):
		return fmt.Errorf("web certificate: %w", err)
	}
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
	h.serve(pemBytes, pair)
	return nil
}

// serve makes pair (whose PEM is pemBytes) the served certificate.
func (h *Holder) serve(pemBytes []byte, pair tls.Certificate) {
	h.mu.Lock()
	changed := !bytes.Equal(h.pem, pemBytes)
	h.pem = pemBytes
	h.mu.Unlock()
	if changed {
		h.cur.Store(&pair)
	}
}

// MaxExternal is the longest uploaded certificate file.
const MaxExternal = 256 << 10

// ParseExternal checks an uploaded certificate file: PEM blocks holding
// one private key and one or more certificates, the first the key's, valid
// at now and naming serverName, each signed by the next when a chain
// follows. It returns the key pair to serve.
func ParseExternal(pemBytes []byte, serverName string, now time.Time) (tls.Certificate, error) {
	if len(pemBytes) > MaxExternal {
		return tls.Certificate{}, fmt.Errorf("the file is larger than %d bytes", MaxExternal)
	}
	var keyPEM, certPEM []byte
	var certs []*x509.Certificate
	keys := 0
	for rest := pemBytes; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return tls.Certificate{}, errors.New("the file holds something that is not PEM")
			}
			break
		}
		switch b.Type {
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			keys++
			keyPEM = pem.EncodeToMemory(b)
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return tls.Certificate{}, fmt.Errorf("certificate %d: %v", len(certs)+1, err)
			}
			certs = append(certs, c)
			certPEM = append(certPEM, pem.EncodeToMemory(b)...)
		default:
			return tls.Certificate{}, fmt.Errorf("the file holds a %s; it must hold a private key and certificates", b.Type)
		}
	}
	switch {
	case keys != 1:
		return tls.Certificate{}, fmt.Errorf("the file must hold exactly one private key, not %d", keys)
	case len(certs) == 0:
		return tls.Certificate{}, errors.New("the file holds no certificate")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("the first certificate is not the private key's: %v", err)
	}
	leaf := certs[0]
	switch {
	case now.Before(leaf.NotBefore):
		return tls.Certificate{}, fmt.Errorf("the certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	case !now.Before(leaf.NotAfter):
		return tls.Certificate{}, fmt.Errorf("the certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if err := leaf.VerifyHostname(serverName); err != nil {
		return tls.Certificate{}, fmt.Errorf("the certificate does not name %s (WA_WEB_SERVERNAME): %v", serverName, err)
	}
	for i := 0; i+1 < len(certs); i++ {
		if err := certs[i].CheckSignatureFrom(certs[i+1]); err != nil {
			return tls.Certificate{}, fmt.Errorf("certificate %d is not signed by certificate %d after it: put the chain in order, leaf first", i+1, i+2)
		}
	}
	pair.Leaf = leaf
	return pair, nil
}

// SetExternal checks and stores an uploaded certificate file
// (ParseExternal) and serves it at once.
func (h *Holder) SetExternal(ctx context.Context, pemBytes []byte) error {
	pair, err := ParseExternal(pemBytes, h.serverName, h.now())
	if err != nil {
		return &InvalidError{err}
	}
	if err := clusterkeys.Put(ctx, h.db, h.ks, clusterkeys.WebExternalCert, pemBytes); err != nil {
		return fmt.Errorf("store the web certificate: %w", err)
	}
	h.serve(pemBytes, pair)
	h.log.Info("uploaded web certificate stored", "subject", pair.Leaf.Subject.String(), "expires", pair.Leaf.NotAfter)
	return nil
}

// InvalidError is an upload refused for what it holds.
type InvalidError struct{ err error }

func (e *InvalidError) Error() string { return e.err.Error() }

// CA returns the CA of the served certificate as PEM: the last certificate
// of an uploaded chain, or the generated certificate (self-signed: its own
// CA, for clients to pin). ok is false for an uploaded certificate without
// a chain.
func (h *Holder) CA() (pemBytes []byte, ok bool) {
	h.mu.Lock()
	cur := h.pem
	h.mu.Unlock()
	var last []byte
	n := 0
	for rest := cur; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			last, n = pem.EncodeToMemory(b), n+1
		}
	}
	pair := h.cur.Load()
	selfSigned := pair != nil && pair.Leaf != nil && bytes.Equal(pair.Leaf.RawIssuer, pair.Leaf.RawSubject)
	if n > 1 || (n == 1 && selfSigned) {
		return last, true
	}
	return nil, false
}

// WebhookCA returns the stored webhook CA bundle (nil: none).
func (h *Holder) WebhookCA(ctx context.Context) ([]byte, error) {
	b, err := clusterkeys.Get(ctx, h.db, h.ks, clusterkeys.WebhookCA)
	if errors.Is(err, clusterkeys.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// SetWebhookCA checks (clusterkeys.CABundle) and stores the webhook CA
// bundle; coreapps trust it within their reload period.
func (h *Holder) SetWebhookCA(ctx context.Context, pemBytes []byte) error {
	if _, _, err := clusterkeys.CABundle(pemBytes); err != nil {
		return &InvalidError{err}
	}
	return clusterkeys.Put(ctx, h.db, h.ks, clusterkeys.WebhookCA, pemBytes)
}

// DeleteWebhookCA removes the webhook CA bundle.
func (h *Holder) DeleteWebhookCA(ctx context.Context) error {
	return clusterkeys.Delete(ctx, h.db, clusterkeys.WebhookCA)
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
