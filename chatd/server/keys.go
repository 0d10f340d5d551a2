package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/clusterkeys"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// The network's keys live in the server_keys table: the first chatd that
// starts on a database creates them, every other chatd on it reads the same.

// Names of the rows of server_keys.
const (
	keyRoot   = "root_key"      // Ed25519 seed of the network root key
	keyStatic = "server_static" // Noise static key pair, private ‖ public
	keyCert   = "server_cert"   // chatdv1.Certificate of server_static, serialized
	keyTLS    = "tls"           // self-signed certificate and key of the TLS mode, PEM
	keyMedia  = "media_secret"  // HMAC key of the media server's tokens
)

// Certificate lifetime: a server certificate is valid for CertValidity and
// renewed once it expires within CertRenewBefore.
const (
	CertValidity    = 365 * 24 * time.Hour
	CertRenewBefore = 30 * 24 * time.Hour
)

// keysRefresh is how often a running chatd reloads its keys (picking up a
// certificate another chatd renewed, or renewing it itself).
const keysRefresh = 12 * time.Hour

// Keys are the network's keys.
type Keys struct {
	// Root is the network root key; clients pin its public half.
	Root ed25519.PrivateKey
	// Static is the servers' Noise static key and Cert its certificate.
	Static wire.KeyPair
	Cert   *chatdv1.Certificate
	// TLS is the certificate of the TLS mode (self-signed: clients
	// authenticate the server by Cert inside the Noise handshake). The
	// media server serves it too; clients pin its hash (TLSHash), which
	// they learn on the authenticated chat connection.
	TLS tls.Certificate
	// MediaSecret signs the media server's tokens (32 bytes), so any chatd
	// on the database accepts a token another one issued.
	MediaSecret []byte
}

// TLSHash returns the SHA-256 of the TLS leaf certificate (DER): the hash
// media clients pin.
func (k *Keys) TLSHash() []byte {
	if len(k.TLS.Certificate) == 0 {
		return nil
	}
	h := sha256.Sum256(k.TLS.Certificate[0])
	return h[:]
}

// RootPublic returns the root public key, the one clients pin.
func (k *Keys) RootPublic() ed25519.PublicKey { return k.Root.Public().(ed25519.PublicKey) }

// LoadKeys returns the network's keys stored in d, creating what is missing
// (at the first start) and renewing the server certificate when it expires
// within CertRenewBefore. Concurrent chatds end up with the same keys.
func LoadKeys(ctx context.Context, d *sql.DB, log *slog.Logger) (*Keys, error) {
	seed, err := getOrCreateKey(ctx, d, keyRoot, func() ([]byte, error) {
		_, priv, err := wire.GenerateRootKey()
		if err != nil {
			return nil, err
		}
		log.Info("created the network root key")
		return priv.Seed(), nil
	})
	if err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("server_keys %s: %d bytes, want %d", keyRoot, len(seed), ed25519.SeedSize)
	}
	k := &Keys{Root: ed25519.NewKeyFromSeed(seed)}

	static, err := getOrCreateKey(ctx, d, keyStatic, func() ([]byte, error) {
		kp, err := wire.GenerateKeyPair()
		if err != nil {
			return nil, err
		}
		return append(kp.Private, kp.Public...), nil
	})
	if err != nil {
		return nil, err
	}
	if len(static) != 64 {
		return nil, fmt.Errorf("server_keys %s: %d bytes, want 64", keyStatic, len(static))
	}
	k.Static = wire.KeyPair{Private: static[:32], Public: static[32:]}

	if k.Cert, err = serverCert(ctx, d, k, time.Now(), log); err != nil {
		return nil, err
	}

	pemBytes, err := getOrCreateKey(ctx, d, keyTLS, clusterkeys.SelfSigned(clusterkeys.Cert{CommonName: "openwaba-chatd", Hosts: []string{"chatd", "localhost"}, Valid: 10 * 365 * 24 * time.Hour}))
	if err != nil {
		return nil, err
	}
	if k.TLS, err = clusterkeys.KeyPair(pemBytes); err != nil {
		return nil, fmt.Errorf("server_keys %s: %w", keyTLS, err)
	}

	if k.MediaSecret, err = getOrCreateKey(ctx, d, keyMedia, func() ([]byte, error) {
		b := make([]byte, 32)
		rand.Read(b)
		return b, nil
	}); err != nil {
		return nil, err
	}
	if len(k.MediaSecret) != 32 {
		return nil, fmt.Errorf("server_keys %s: %d bytes, want 32", keyMedia, len(k.MediaSecret))
	}
	return k, nil
}

// getOrCreateKey returns the row called name, inserting gen's value first if
// there is none. When two chatds race, both get the first one's value.
func getOrCreateKey(ctx context.Context, d *sql.DB, name string, gen func() ([]byte, error)) ([]byte, error) {
	var v []byte
	err := d.QueryRowContext(ctx, "SELECT value FROM server_keys WHERE name = ?", name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read server key %s: %w", name, err)
	}
	if v, err = gen(); err != nil {
		return nil, fmt.Errorf("create server key %s: %w", name, err)
	}
	now := db.NowMillis()
	_, err = d.ExecContext(ctx, "INSERT INTO server_keys (name, value, created_at, updated_at) VALUES (?, ?, ?, ?)", name, v, now, now)
	if err != nil && !db.IsDuplicate(err) {
		return nil, fmt.Errorf("store server key %s: %w", name, err)
	}
	if err := d.QueryRowContext(ctx, "SELECT value FROM server_keys WHERE name = ?", name).Scan(&v); err != nil {
		return nil, fmt.Errorf("read server key %s: %w", name, err)
	}
	return v, nil
}

// certUsable reports whether c is a certificate from k's root for k's static
// key that stays valid for more than CertRenewBefore after now.
func certUsable(k *Keys, c *chatdv1.Certificate, now time.Time) bool {
	return c != nil && subtle.ConstantTimeCompare(c.ServerStatic, k.Static.Public) == 1 &&
		wire.VerifyCertificate(k.RootPublic(), c, now) == nil &&
		time.Unix(c.NotAfter, 0).Sub(now) > CertRenewBefore
}

// serverCert returns the stored certificate of k.Static, issuing a new one
// (valid CertValidity from an hour ago) when there is none or it is about to
// expire. The row is locked while it is decided, so one chatd renews it.
func serverCert(ctx context.Context, d *sql.DB, k *Keys, now time.Time, log *slog.Logger) (*chatdv1.Certificate, error) {
	issued := false
	issue := func() ([]byte, error) {
		issued = true
		c, err := wire.IssueCertificate(k.Root, k.Static.Public, now.Add(-time.Hour), now.Add(CertValidity))
		if err != nil {
			return nil, err
		}
		return proto.Marshal(c)
	}
	raw, err := getOrCreateKey(ctx, d, keyCert, issue)
	if err != nil {
		return nil, err
	}
	cert := new(chatdv1.Certificate)
	if proto.Unmarshal(raw, cert) == nil && certUsable(k, cert, now) {
		if issued {
			log.Info("issued the server certificate", "not_after", time.Unix(cert.NotAfter, 0).UTC())
		}
		return cert, nil
	}
	err = db.Tx(ctx, d, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "SELECT value FROM server_keys WHERE name = ? FOR UPDATE", keyCert).Scan(&raw); err != nil {
			return err
		}
		cert = new(chatdv1.Certificate)
		if proto.Unmarshal(raw, cert) == nil && certUsable(k, cert, now) {
			return nil // another chatd renewed it meanwhile
		}
		b, err := issue()
		if err != nil {
			return err
		}
		if err := proto.Unmarshal(b, cert); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE server_keys SET value = ?, updated_at = ? WHERE name = ?", b, db.NowMillis(), keyCert)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("renew the server certificate: %w", err)
	}
	if issued {
		log.Info("renewed the server certificate", "not_after", time.Unix(cert.NotAfter, 0).UTC())
	}
	return cert, nil
}

// refreshKeys reloads the keys every keysRefresh until ctx ends, so a
// long-running chatd renews its certificate in time.
func (s *Server) refreshKeys(ctx context.Context) {
	t := time.NewTicker(keysRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k, err := LoadKeys(ctx, s.db, s.log)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("reloading the network keys failed; keeping the current ones", "err", err)
			}
			continue
		}
		s.keys.Store(k)
	}
}
