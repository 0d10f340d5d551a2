// Package clusterkeys keeps deployment-wide secrets in the cluster_secrets
// table: whichever process needs one first creates it, and every later process
// (another webapp, another coreapp) reads the same value. This is how every
// webapp serves the same TLS certificate and how webapps trust coreapps.
//
// Values are sealed at rest by the deployment keystore (WA_KEYSTORE_SECRET,
// package keystore), each bound to its name, like the Signal keys: a dump of
// the table alone reveals no private key and no call token. A value written
// in plaintext by an older version is sealed in place the first time it is
// read.
package clusterkeys

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/keystore"
)

// Names of the stored secrets.
const (
	WebCert   = "web_tls"    // the webapp's self-signed certificate and key (PEM)
	CoreCert  = "core_tls"   // the coreapp gRPC certificate and key (PEM)
	CoreToken = "core_token" // the bearer secret webapps present to coreapps
	// MediaURLKey signs the Cloud API's short-lived media URLs, so that a
	// URL one webapp made works on every webapp.
	MediaURLKey = "media_url_key"
	// WebExternalCert is the certificate, chain and key the operator
	// uploaded for the webapps' HTTPS (POST /v1/certificates/external):
	// served instead of WebCert while it is set.
	WebExternalCert = "web_tls_external"
	// WebhookCA is the PEM bundle of CAs the webhook client trusts besides
	// the system's (/v1/certificates/webhooks/ca).
	WebhookCA = "webhook_ca"
)

// ErrNotFound is returned by Get for a secret nobody created yet.
var ErrNotFound = errors.New("secret not found")

// sealContext binds a sealed value to its row.
func sealContext(name string) string { return "cluster_secret/" + name }

// Get returns the secret called name.
func Get(ctx context.Context, d *sql.DB, ks *keystore.Keystore, name string) ([]byte, error) {
	var v []byte
	err := d.QueryRowContext(ctx, "SELECT value FROM cluster_secrets WHERE name = ?", name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	plain, err := ks.Open(v, sealContext(name))
	if err == nil {
		return plain, nil
	}
	if !legacyPlaintext(v) {
		return nil, fmt.Errorf("cluster secret %s: %w", name, err)
	}
	// Written before values were sealed: seal it now (only if nobody else
	// changed it meanwhile).
	if _, err := d.ExecContext(ctx, "UPDATE cluster_secrets SET value = ? WHERE name = ? AND value = ?",
		ks.Seal(v, sealContext(name)), name, v); err != nil {
		return nil, fmt.Errorf("seal cluster secret %s: %w", name, err)
	}
	return v, nil
}

// legacyPlaintext reports whether v is a value of the formats this package
// stored before sealing: PEM, or a token of printable ASCII. A sealed value
// starts with the keystore's version byte, which is neither.
func legacyPlaintext(v []byte) bool {
	if bytes.HasPrefix(v, []byte("-----BEGIN ")) {
		return true
	}
	if len(v) == 0 {
		return false
	}
	for _, b := range v {
		if b < 0x21 || b > 0x7e {
			return false
		}
	}
	return true
}

// GetOrCreate returns the secret called name, creating it with gen if absent.
// When two processes race, both end up with the first one's value.
func GetOrCreate(ctx context.Context, d *sql.DB, ks *keystore.Keystore, name string, gen func() ([]byte, error)) ([]byte, error) {
	if v, err := Get(ctx, d, ks, name); !errors.Is(err, ErrNotFound) {
		return v, err
	}
	v, err := gen()
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	_, err = d.ExecContext(ctx, "INSERT INTO cluster_secrets (name, value, created_at) VALUES (?, ?, ?)", name, ks.Seal(v, sealContext(name)), db.NowMillis())
	if err != nil && !db.IsDuplicate(err) {
		return nil, fmt.Errorf("store %s: %w", name, err)
	}
	return Get(ctx, d, ks, name)
}

// Put stores value as the secret called name, replacing any.
func Put(ctx context.Context, d *sql.DB, ks *keystore.Keystore, name string, value []byte) error {
	return db.Tx(ctx, d, func(tx *sql.Tx) error {
		sealed := ks.Seal(value, sealContext(name))
		res, err := tx.ExecContext(ctx, "UPDATE cluster_secrets SET value = ?, created_at = ? WHERE name = ?", sealed, db.NowMillis(), name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO cluster_secrets (name, value, created_at) VALUES (?, ?, ?)", name, sealed, db.NowMillis())
		return err
	})
}

// Delete removes the secret called name (none: no error).
func Delete(ctx context.Context, d *sql.DB, name string) error {
	_, err := d.ExecContext(ctx, "DELETE FROM cluster_secrets WHERE name = ?", name)
	return err
}

// MaxCABundle is the longest CA bundle CABundle reads.
const MaxCABundle = 512 << 10

// CABundle parses a PEM bundle of CA certificates (at least one, nothing
// but certificates) into a pool of them.
func CABundle(pemBytes []byte) (*x509.CertPool, []*x509.Certificate, error) {
	if len(pemBytes) > MaxCABundle {
		return nil, nil, fmt.Errorf("the bundle is larger than %d bytes", MaxCABundle)
	}
	pool := x509.NewCertPool()
	var certs []*x509.Certificate
	for rest := pemBytes; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return nil, nil, errors.New("the bundle holds something that is not PEM")
			}
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("the bundle holds a %s; it must hold certificates only", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("certificate %d: %v", len(certs)+1, err)
		}
		pool.AddCert(c)
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, nil, errors.New("the bundle holds no certificate")
	}
	return pool, certs, nil
}

// Replace swaps the secret called name from old to next, unless another
// process replaced it first; either way it returns the value now stored.
func Replace(ctx context.Context, d *sql.DB, ks *keystore.Keystore, name string, old, next []byte) ([]byte, error) {
	err := db.Tx(ctx, d, func(tx *sql.Tx) error {
		var v []byte
		err := tx.QueryRowContext(ctx, "SELECT value FROM cluster_secrets WHERE name = ? FOR UPDATE", name).Scan(&v)
		if err != nil {
			return err
		}
		cur, err := ks.Open(v, sealContext(name))
		if err != nil || !bytes.Equal(cur, old) {
			return err // changed by someone else: keep theirs
		}
		_, err = tx.ExecContext(ctx, "UPDATE cluster_secrets SET value = ?, created_at = ? WHERE name = ?",
			ks.Seal(next, sealContext(name)), db.NowMillis(), name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("replace %s: %w", name, err)
	}
	return Get(ctx, d, ks, name)
}

// RandomToken returns a generator of 32 random bytes, hex encoded.
func RandomToken() ([]byte, error) {
	return []byte(rand.Text() + rand.Text()), nil
}

// Cert describes a self-signed certificate to generate.
type Cert struct {
	CommonName string
	// Hosts are the DNS names the certificate names; the loopback addresses
	// 127.0.0.1 and ::1 are always added as IP addresses.
	Hosts []string
	// Valid is how long the certificate is valid (one year when zero).
	Valid time.Duration
}

// SelfSigned returns a generator of a self-signed ECDSA P-256 leaf
// certificate (not a CA: it can sign nothing but itself) for c's names, as
// PEM (certificate, then key).
func SelfSigned(c Cert) func() ([]byte, error) {
	return func() ([]byte, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			return nil, err
		}
		valid := c.Valid
		if valid <= 0 {
			valid = 365 * 24 * time.Hour
		}
		now := time.Now()
		tmpl := &x509.Certificate{
			SerialNumber:          serial,
			Subject:               pkix.Name{CommonName: c.CommonName, Organization: []string{"openwaba"}},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(valid),
			KeyUsage:              x509.KeyUsageDigitalSignature,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  false,
			DNSNames:              c.Hosts,
			IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, err
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, err
		}
		out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		return append(out, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})...), nil
	}
}

// KeyPair parses a secret made by SelfSigned (certificate chain and key in
// one PEM).
func KeyPair(pemBytes []byte) (tls.Certificate, error) {
	return tls.X509KeyPair(pemBytes, pemBytes)
}

// NotAfter is the expiry of the first certificate of a key pair.
func NotAfter(pair tls.Certificate) (time.Time, error) {
	if len(pair.Certificate) == 0 {
		return time.Time{}, errors.New("no certificate")
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return time.Time{}, err
	}
	return c.NotAfter, nil
}

// PinnedClientConfig returns a TLS client configuration that trusts exactly
// the certificate in pemBytes, whatever host name it was dialled by.
func PinnedClientConfig(pemBytes []byte) (*tls.Config, error) {
	pair, err := KeyPair(pemBytes)
	if err != nil {
		return nil, err
	}
	want := pair.Certificate[0]
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the exact-certificate check below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || string(raw[0]) != string(want) {
				return errors.New("server certificate is not the pinned cluster certificate")
			}
			return nil
		},
	}, nil
}

// ServerCipherSuites are the TLS 1.2 suites every openwaba listener offers:
// ECDHE key exchange with an AEAD (AES-GCM or ChaCha20-Poly1305) only, no
// CBC and no static RSA. TLS 1.3 suites are not configurable and all AEAD.
var ServerCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerTLS returns the TLS settings of an openwaba listener: TLS 1.2 or
// later with ServerCipherSuites.
func ServerTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: ServerCipherSuites}
}
