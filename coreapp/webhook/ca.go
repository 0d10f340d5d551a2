package webhook

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/openwaba/openwaba/db/clusterkeys"
)

// caReloadEvery is how often the webhook CA bundle
// (/v1/certificates/webhooks/ca, kept by the webapps in cluster_secrets)
// is read again: an upload is trusted by every node within it, without a
// restart (on-prem restarts its coreapps).
const caReloadEvery = 10 * time.Second

// extraRoots is the webhook client's egress.Policy.ExtraRoots: the bundle
// last read (nil: none).
func (d *Dispatcher) extraRoots() *x509.CertPool { return d.caPool.Load() }

// loadCA reads the bundle and swaps the pool when it changed.
func (d *Dispatcher) loadCA(ctx context.Context) error {
	if d.ks == nil {
		return nil
	}
	b, err := clusterkeys.Get(ctx, d.db, d.ks, clusterkeys.WebhookCA)
	if errors.Is(err, clusterkeys.ErrNotFound) {
		b, err = nil, nil
	}
	if err != nil {
		return err
	}
	if bytes.Equal(b, d.caPEM) {
		return nil
	}
	d.caPEM = b
	if b == nil {
		d.caPool.Store(nil)
		d.log.Info("webhook CA bundle removed")
		return nil
	}
	pool, certs, err := clusterkeys.CABundle(b)
	if err != nil {
		return err // checked when uploaded: a damaged row
	}
	d.caPool.Store(pool)
	d.log.Info("webhook CA bundle loaded", "certificates", len(certs))
	// Deliveries waiting out a TLS failure may go through now.
	d.Wake()
	return nil
}

// caLoop keeps the bundle current until ctx ends.
func (d *Dispatcher) caLoop(ctx context.Context) {
	for {
		if err := d.loadCA(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("webhook: reading the CA bundle failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(caReloadEvery):
		}
	}
}
