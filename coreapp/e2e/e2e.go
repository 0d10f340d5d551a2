// Package e2e is coreapp's end-to-end encryption seam. The sender seals a
// message for a customer, and the receiver opens what a customer sent, each
// inside the database transaction that stores the result: the ciphertext (or
// plaintext) and the advanced Signal session commit together, so a crash can
// never leave a session ahead of or behind the messages.
//
// Signal is the implementation (the Signal protocol through chatd/e2ee, state
// in MySQL through signalstore). A customer's new identity key (a reinstall)
// is trusted, as WhatsApp does, and reported so the business can be told.
package e2e

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"github.com/openwaba/openwaba/chatd/e2ee"
	"github.com/openwaba/openwaba/coreapp/signalstore"
	"github.com/openwaba/openwaba/db/keystore"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// Sealer is an account's end-to-end layer.
type Sealer interface {
	// Begin binds the account's state to tx. Commit writes what changed and
	// must run before tx commits.
	Begin(ctx context.Context, tx *sql.Tx, accountID int64) (Txn, error)
	// Missing returns the peers the account has no session with (their
	// bundles must be given to Seal).
	Missing(ctx context.Context, accountID int64, peers []string) ([]string, error)
	// PreKeys creates n new one-time pre-keys and returns the upload that
	// publishes them with the account's identity.
	PreKeys(ctx context.Context, accountID int64, n int) (*chatdv1.PreKeyUpload, error)
}

// Txn is the account's end-to-end state within one transaction.
type Txn interface {
	// Preload reads the state for these peers at once.
	Preload(ctx context.Context, peers []string) error
	// Seal encrypts plaintext for peer; b is the peer's bundle when there is
	// no session.
	Seal(ctx context.Context, peer string, plaintext []byte, b *chatdv1.PreKeyBundle) (Sealed, error)
	// Open decrypts what peer sent: ErrDuplicate for a message decrypted
	// before, ErrUndecryptable when it cannot be.
	Open(ctx context.Context, peer string, enc *chatdv1.Enc) (Opened, error)
	// Forget drops the session with peer (the next Seal needs a bundle).
	Forget(ctx context.Context, peer string) error
	// Commit writes the changes in the transaction.
	Commit(ctx context.Context) error
}

// Sealed is an encrypted payload.
type Sealed struct {
	Enc *chatdv1.Enc
	// IdentityChanged is the fingerprint of the peer's new identity key when
	// sealing found and trusted one.
	IdentityChanged string
}

// Opened is a decrypted payload.
type Opened struct {
	Plaintext []byte
	// IdentityChanged is the fingerprint of the peer's new identity key when
	// the message came under one (and it was trusted).
	IdentityChanged string
}

// Errors.
var (
	ErrNoSession     = e2ee.ErrNoSession
	ErrDuplicate     = e2ee.ErrDuplicate
	ErrUndecryptable = e2ee.ErrUndecryptable
)

// Signal implements Sealer with the Signal protocol. It is safe for
// concurrent use.
type Signal struct {
	db *sql.DB
	ks *keystore.Keystore

	mu         sync.Mutex // guards identities
	identities map[int64]*e2ee.Identity
}

var _ Sealer = (*Signal)(nil)

// NewSignal returns the Signal layer over d with private keys sealed by ks.
func NewSignal(d *sql.DB, ks *keystore.Keystore) *Signal {
	return &Signal{db: d, ks: ks, identities: map[int64]*e2ee.Identity{}}
}

// identity returns the account's identity, created on first use.
func (s *Signal) identity(ctx context.Context, accountID int64) (*e2ee.Identity, error) {
	s.mu.Lock()
	id := s.identities[accountID]
	s.mu.Unlock()
	if id != nil {
		return id, nil
	}
	id, err := signalstore.LoadIdentity(ctx, s.db, accountID, s.ks)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.identities[accountID] = id
	s.mu.Unlock()
	return id, nil
}

// Begin implements Sealer.
func (s *Signal) Begin(ctx context.Context, tx *sql.Tx, accountID int64) (Txn, error) {
	id, err := s.identity(ctx, accountID)
	if err != nil {
		return nil, err
	}
	return &txn{st: signalstore.New(tx, accountID, id, s.ks)}, nil
}

// Missing implements Sealer.
func (s *Signal) Missing(ctx context.Context, accountID int64, peers []string) ([]string, error) {
	return signalstore.MissingSessions(ctx, s.db, accountID, peers)
}

// PreKeys implements Sealer.
func (s *Signal) PreKeys(ctx context.Context, accountID int64, n int) (*chatdv1.PreKeyUpload, error) {
	id, err := s.identity(ctx, accountID)
	if err != nil {
		return nil, err
	}
	return signalstore.PreKeyUpload(ctx, s.db, accountID, id, s.ks, n)
}

type txn struct {
	st *signalstore.Store
}

func (t *txn) Preload(ctx context.Context, peers []string) error { return t.st.Preload(ctx, peers) }

func (t *txn) Seal(ctx context.Context, peer string, plaintext []byte, b *chatdv1.PreKeyBundle) (Sealed, error) {
	enc, err := e2ee.Seal(ctx, t.st, peer, plaintext, b)
	if errors.Is(err, e2ee.ErrIdentityChanged) && b != nil {
		key, kerr := e2ee.BundleIdentity(b)
		if kerr != nil {
			return Sealed{}, kerr
		}
		if err := e2ee.Trust(ctx, t.st, peer, key); err != nil {
			return Sealed{}, err
		}
		enc, err = e2ee.Seal(ctx, t.st, peer, plaintext, b)
		if err != nil {
			return Sealed{}, err
		}
		return Sealed{Enc: enc, IdentityChanged: e2ee.Fingerprint(key)}, nil
	}
	return Sealed{Enc: enc}, err
}

func (t *txn) Open(ctx context.Context, peer string, enc *chatdv1.Enc) (Opened, error) {
	o, err := e2ee.Open(ctx, t.st, peer, enc)
	if errors.Is(err, e2ee.ErrIdentityChanged) && o.Identity != nil {
		if err := e2ee.Trust(ctx, t.st, peer, o.Identity); err != nil {
			return Opened{}, err
		}
		fp := e2ee.Fingerprint(o.Identity)
		if o, err = e2ee.Open(ctx, t.st, peer, enc); err != nil {
			return Opened{}, err
		}
		return Opened{Plaintext: o.Plaintext, IdentityChanged: fp}, nil
	}
	return Opened{Plaintext: o.Plaintext}, err
}

func (t *txn) Forget(ctx context.Context, peer string) error {
	return t.st.DeleteSession(ctx, e2ee.Address(peer))
}

func (t *txn) Commit(ctx context.Context) error { return t.st.Flush(ctx) }
