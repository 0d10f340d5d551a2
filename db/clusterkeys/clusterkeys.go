// Package clusterkeys keeps deployment-wide secrets in the cluster_secrets
// table: whichever process needs one first creates it, and every later process
// (another webapp, another coreapp) reads the same value. This is how every
// webapp serves the same TLS certificate and how webapps trust coreapps.
package clusterkeys

import (
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
	"time"

	"github.com/openwaba/openwaba/db"
)

// Names of the stored secrets.
const (
	WebCert   = "web_tls"    // the webapp's self-signed certificate and key (PEM)
	CoreCert  = "core_tls"   // the coreapp gRPC certificate and key (PEM)
	CoreToken = "core_token" // the bearer secret webapps present to coreapps
)

// ErrNotFound is returned by Get for a secret nobody created yet.
var ErrNotFound = errors.New("secret not found")

// Get returns the secret called name.
func Get(ctx context.Context, d *sql.DB, name string) ([]byte, error) {
	var v []byte
	err := d.QueryRowContext(ctx, "SELECT value FROM cluster_secrets WHERE name = ?", name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	return v, err
}

// GetOrCreate returns the secret called name, creating it with gen if absent.
// When two processes race, both end up with the first one's value.
func GetOrCreate(ctx context.Context, d *sql.DB, name string, gen func() ([]byte, error)) ([]byte, error) {
	if v, err := Get(ctx, d, name); !errors.Is(err, ErrNotFound) {
		return v, err
	}
	v, err := gen()
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	_, err = d.ExecContext(ctx, "INSERT INTO cluster_secrets (name, value, created_at) VALUES (?, ?, ?)", name, v, db.NowMillis())
	if err != nil && !db.IsDuplicate(err) {
		return nil, fmt.Errorf("store %s: %w", name, err)
	}
	return Get(ctx, d, name)
}

// RandomToken returns a generator of 32 random bytes, hex encoded.
func RandomToken() ([]byte, error) {
	return []byte(rand.Text() + rand.Text()), nil
}

// SelfSigned returns a generator of a self-signed ECDSA P-256 certificate for
// the given host names, valid for ten years, as PEM (certificate, then key).
func SelfSigned(commonName string, hosts ...string) func() ([]byte, error) {
	return func() ([]byte, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial,
			Subject:               pkix.Name{CommonName: commonName, Organization: []string{"openwaba"}},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().AddDate(10, 0, 0),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			DNSNames:              hosts,
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

// KeyPair parses a secret made by SelfSigned.
func KeyPair(pemBytes []byte) (tls.Certificate, error) {
	return tls.X509KeyPair(pemBytes, pemBytes)
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
