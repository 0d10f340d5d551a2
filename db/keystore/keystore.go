// Package keystore encrypts secrets at rest (coreapp's network credential,
// Signal identity, pre-keys and sessions, media provider credentials, and
// the cluster secrets: TLS private keys and the core call token) with
// AES-256-GCM under a deployment secret: WA_KEYSTORE_SECRET (base64 of 32
// bytes), or, when it is unset, a secret a coreapp generates into the data
// directory at its first start. Every coreapp and webapp of a deployment
// must use the same secret. The secret is never logged.
package keystore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// FileName is the secret's file in the data directory.
const FileName = "keystore.secret"

// version prefixes every sealed value.
const version = 1

// Keystore seals and opens small secrets. It is safe for concurrent use.
type Keystore struct {
	aead cipher.AEAD
}

// ErrCorrupt is returned for a value that does not open with the secret.
var ErrCorrupt = errors.New("keystore: value does not decrypt with this secret (WA_KEYSTORE_SECRET differs from the one it was written with?)")

// New returns a Keystore for a 32-byte secret.
func New(secret []byte) (*Keystore, error) {
	if len(secret) != 32 {
		return nil, fmt.Errorf("keystore secret must be 32 bytes, got %d", len(secret))
	}
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Keystore{aead: aead}, nil
}

// Load returns the keystore for the configured secret (base64), or for the
// secret in dataDir, creating it (mode 0600) when absent. created reports a
// new secret, so the caller can say where it is.
func Load(configured, dataDir string) (ks *Keystore, created bool, err error) {
	if configured != "" {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(configured))
		if err != nil {
			return nil, false, fmt.Errorf("WA_KEYSTORE_SECRET is not base64: %w", err)
		}
		ks, err := New(b)
		return ks, false, err
	}
	path := filepath.Join(dataDir, FileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, false, err
		}
		secret := make([]byte, 32)
		rand.Read(secret)
		enc := base64.StdEncoding.EncodeToString(secret) + "\n"
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) { // another process won the race
			return Load("", dataDir)
		}
		if err != nil {
			return nil, false, err
		}
		if _, err := f.WriteString(enc); err != nil {
			f.Close()
			return nil, false, err
		}
		if err := f.Close(); err != nil {
			return nil, false, err
		}
		ks, err := New(secret)
		return ks, true, err
	}
	if err != nil {
		return nil, false, err
	}
	ks, _, err = Load(string(b), "")
	return ks, false, err
}

// ErrNoSecret is returned by Open when no secret is configured and none is
// in the data directory yet.
var ErrNoSecret = errors.New("keystore: no WA_KEYSTORE_SECRET and no " + FileName + " in the data directory yet")

// Open is Load for a process that never creates the secret (the webapp):
// the configured secret, else the one in dataDir, else ErrNoSecret (a
// coreapp creates it at its first start).
func Open(configured, dataDir string) (*Keystore, error) {
	if configured != "" {
		ks, _, err := Load(configured, "")
		return ks, err
	}
	b, err := os.ReadFile(filepath.Join(dataDir, FileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoSecret
	}
	if err != nil {
		return nil, err
	}
	ks, _, err := Load(string(b), "")
	return ks, err
}

// Seal encrypts plain; context binds the value to where it is stored (a
// value copied to another row does not open).
func (k *Keystore) Seal(plain []byte, context string) []byte {
	out := make([]byte, 1+k.aead.NonceSize(), 1+k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	out[0] = version
	rand.Read(out[1:])
	return k.aead.Seal(out, out[1:], plain, []byte(context))
}

// Open decrypts a value made by Seal with the same context.
func (k *Keystore) Open(sealed []byte, context string) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < 1+n+k.aead.Overhead() || sealed[0] != version {
		return nil, ErrCorrupt
	}
	plain, err := k.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(context))
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}
