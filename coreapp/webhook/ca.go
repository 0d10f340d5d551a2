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
	roots, err := Roots(b)
	if err != nil {
		return err // checked when uploaded: a damaged row
	}
	if b != nil {
		d.log.Info("webhook CA bundle loaded")
	} else {
		d.log.Info("webhook CA bundle removed")
	}
	d.caPEM = b
	// New clients with the new roots (standard verification, host name
	// included); the old ones' idle connections are closed.
	admin, tenant := d.adminPolicy, d.tenantPolicy
	admin.RootCAs, tenant.RootCAs = roots, roots
	old := d.clients.Swap(&clientPair{admin: admin.Client(), tenant: tenant.Client()})
	old.admin.CloseIdleConnections()
	old.tenant.CloseIdleConnections()
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

// Roots is the pool webhooks are verified against: the system's roots and
// the CA bundle b (nil b: the system's alone, as a nil pool).
func Roots(b []byte) (*x509.CertPool, error) {
	if b == nil {
		return nil, nil
	}
	_, certs, err := clusterkeys.CABundle(b)
	if err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	for _, c := range certs {
		roots.AddCert(c)
	}
	return roots, nil
}
