// Package signalstore keeps an account's Signal state in MySQL: its identity,
// one-time and signed pre-keys, sessions with peers, and peers' identity
// keys (trusted on first use). Private keys and session records are sealed
// by the keystore.
//
// A Store is bound to one transaction and one account and is not safe for
// concurrent use: reads are cached for the transaction, writes are buffered
// and written by Flush, which must run before the transaction commits. A
// batch of messages to one peer therefore loads and writes its session once.
package signalstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	grecord "go.mau.fi/libsignal/groups/state/record"
	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/state/record"

	"github.com/openwaba/openwaba/chatd/e2ee"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/keystore"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// Store is an account's Signal state within one transaction.
type Store struct {
	tx      *sql.Tx
	account int64
	id      *e2ee.Identity
	ks      *keystore.Keystore

	sessions       map[string]*record.Session // loaded or stored; nil: known absent
	dirtySessions  map[string]bool
	identities     map[string][]byte // peers' keys; nil: known absent
	dirtyIdentity  map[string]bool
	deletedSession map[string]bool
}

var _ e2ee.Store = (*Store)(nil)

// New binds the account's state to tx. id is the account's identity (see
// LoadIdentity).
func New(tx *sql.Tx, account int64, id *e2ee.Identity, ks *keystore.Keystore) *Store {
	return &Store{tx: tx, account: account, id: id, ks: ks,
		sessions: map[string]*record.Session{}, dirtySessions: map[string]bool{},
		identities: map[string][]byte{}, dirtyIdentity: map[string]bool{}, deletedSession: map[string]bool{}}
}

func (s *Store) ctxSession(addr string) string { return SessionContext(s.account, addr) }

// Keystore contexts of the sealed columns (keystore.Seal): a record
// sealed for one account and key opens for that one only. Backups
// (coreapp/backup) open them and seal them again for the account's new id.

// SessionContext is the context of the session with addr.
func SessionContext(account int64, addr string) string {
	return "session/" + strconv.FormatInt(account, 10) + "/" + addr
}

// PreKeyContext is the context of one-time pre-key id.
func PreKeyContext(account int64, id uint32) string { return fmt.Sprintf("prekey/%d/%d", account, id) }

// SignedPreKeyContext is the context of signed pre-key id.
func SignedPreKeyContext(account int64, id uint32) string {
	return fmt.Sprintf("spk/%d/%d", account, id)
}

// IdentityContext is the context of the account's identity key.
func IdentityContext(account int64) string { return "identity/" + strconv.FormatInt(account, 10) }

// Preload reads the sessions and identity keys of peers in two queries.
// The session rows are locked until the transaction ends, so two
// transactions working on one peer's session (the sender and the receiver,
// or two batches) take turns instead of overwriting each other's ratchet
// state; rows are locked in address order.
func (s *Store) Preload(ctx context.Context, peers []string) error {
	var sorted []string
	seen := map[string]bool{}
	for _, p := range peers {
		a := e2ee.Address(p).String()
		if _, ok := s.sessions[a]; !ok && !seen[a] {
			seen[a] = true
			sorted = append(sorted, a)
		}
	}
	slices.Sort(sorted)
	addrs := make([]any, len(sorted))
	for i, a := range sorted {
		addrs[i] = a
	}
	if len(addrs) == 0 {
		return nil
	}
	args := append([]any{s.account}, addrs...)
	for _, a := range addrs {
		s.sessions[a.(string)] = nil
		if _, ok := s.identities[a.(string)]; !ok {
			s.identities[a.(string)] = nil
		}
	}
	rows, err := s.tx.QueryContext(ctx, "SELECT address, record FROM signal_sessions WHERE account_id = ? AND address IN ("+db.Placeholders(len(addrs))+") ORDER BY address FOR UPDATE", args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var a string
		var sealed []byte
		if err := rows.Scan(&a, &sealed); err != nil {
			rows.Close()
			return err
		}
		rec, err := s.openSession(a, sealed)
		if err != nil {
			rows.Close()
			return err
		}
		s.sessions[a] = rec
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = s.tx.QueryContext(ctx, "SELECT address, identity_key FROM signal_identities WHERE account_id = ? AND address IN ("+db.Placeholders(len(addrs))+")", args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var a string
		var k []byte
		if err := rows.Scan(&a, &k); err != nil {
			return err
		}
		if !s.dirtyIdentity[a] {
			s.identities[a] = k
		}
	}
	return rows.Err()
}

func (s *Store) openSession(addr string, sealed []byte) (*record.Session, error) {
	b, err := s.ks.Open(sealed, s.ctxSession(addr))
	if err != nil {
		return nil, err
	}
	return record.NewSessionFromBytes(b, e2ee.Serializer.Session, e2ee.Serializer.State)
}

// Flush writes the buffered changes in the transaction.
func (s *Store) Flush(ctx context.Context) error {
	if len(s.deletedSession) > 0 {
		addrs := slices.Collect(maps.Keys(s.deletedSession))
		args := []any{s.account}
		for _, a := range addrs {
			args = append(args, a)
		}
		if _, err := s.tx.ExecContext(ctx, "DELETE FROM signal_sessions WHERE account_id = ? AND address IN ("+db.Placeholders(len(addrs))+")", args...); err != nil {
			return err
		}
		clear(s.deletedSession)
	}
	now := db.NowMillis()
	if len(s.dirtySessions) > 0 {
		var args []any
		for a := range s.dirtySessions {
			args = append(args, s.account, a, s.ks.Seal(s.sessions[a].Serialize(), s.ctxSession(a)), now)
		}
		if _, err := s.tx.ExecContext(ctx, "INSERT INTO signal_sessions (account_id, address, record, updated_at) VALUES "+db.Rows("(?,?,?,?)", len(s.dirtySessions))+
			" ON DUPLICATE KEY UPDATE record = VALUES(record), updated_at = VALUES(updated_at)", args...); err != nil {
			return err
		}
		clear(s.dirtySessions)
	}
	if len(s.dirtyIdentity) > 0 {
		var args []any
		for a := range s.dirtyIdentity {
			args = append(args, s.account, a, s.identities[a], now)
		}
		if _, err := s.tx.ExecContext(ctx, "INSERT INTO signal_identities (account_id, address, identity_key, updated_at) VALUES "+db.Rows("(?,?,?,?)", len(s.dirtyIdentity))+
			" ON DUPLICATE KEY UPDATE identity_key = VALUES(identity_key), updated_at = VALUES(updated_at)", args...); err != nil {
			return err
		}
		clear(s.dirtyIdentity)
	}
	return nil
}

// GetIdentityKeyPair implements store.IdentityKey.
func (s *Store) GetIdentityKeyPair() *identity.KeyPair { return s.id.KeyPair }

// GetLocalRegistrationID implements store.IdentityKey.
func (s *Store) GetLocalRegistrationID() uint32 { return s.id.RegistrationID }

func (s *Store) identity(ctx context.Context, addr string) ([]byte, error) {
	if k, ok := s.identities[addr]; ok {
		return k, nil
	}
	var k []byte
	err := s.tx.QueryRowContext(ctx, "SELECT identity_key FROM signal_identities WHERE account_id = ? AND address = ?", s.account, addr).Scan(&k)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	s.identities[addr] = k
	return k, nil
}

// SaveIdentity implements store.IdentityKey.
func (s *Store) SaveIdentity(ctx context.Context, a *protocol.SignalAddress, k *identity.Key) error {
	addr := a.String()
	cur, err := s.identity(ctx, addr)
	if err != nil {
		return err
	}
	if string(cur) != string(k.Serialize()) {
		s.identities[addr] = k.Serialize()
		s.dirtyIdentity[addr] = true
	}
	return nil
}

// IsTrustedIdentity implements store.IdentityKey: trust on first use.
func (s *Store) IsTrustedIdentity(ctx context.Context, a *protocol.SignalAddress, k *identity.Key) (bool, error) {
	cur, err := s.identity(ctx, a.String())
	if err != nil {
		return false, err
	}
	return cur == nil || string(cur) == string(k.Serialize()), nil
}

func (s *Store) ctxPreKey(id uint32) string { return PreKeyContext(s.account, id) }

// LoadPreKey implements store.PreKey.
func (s *Store) LoadPreKey(ctx context.Context, id uint32) (*record.PreKey, error) {
	var sealed []byte
	if err := s.tx.QueryRowContext(ctx, "SELECT priv FROM signal_prekeys WHERE account_id = ? AND key_id = ?", s.account, id).Scan(&sealed); err != nil {
		return nil, fmt.Errorf("pre-key %d: %w", id, err)
	}
	priv, err := s.ks.Open(sealed, s.ctxPreKey(id))
	if err != nil {
		return nil, err
	}
	return e2ee.PreKeyFromPrivate(id, priv), nil
}

// StorePreKey implements store.PreKey.
func (s *Store) StorePreKey(ctx context.Context, id uint32, r *record.PreKey) error {
	_, err := s.tx.ExecContext(ctx, "INSERT INTO signal_prekeys (account_id, key_id, priv, created_at) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE priv = VALUES(priv)",
		s.account, id, s.ks.Seal(e2ee.PreKeyPrivate(r), s.ctxPreKey(id)), db.NowMillis())
	return err
}

// ContainsPreKey implements store.PreKey.
func (s *Store) ContainsPreKey(ctx context.Context, id uint32) (bool, error) {
	var n int
	err := s.tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM signal_prekeys WHERE account_id = ? AND key_id = ?", s.account, id).Scan(&n)
	return n > 0, err
}

// RemovePreKey implements store.PreKey (a used one-time key).
func (s *Store) RemovePreKey(ctx context.Context, id uint32) error {
	_, err := s.tx.ExecContext(ctx, "DELETE FROM signal_prekeys WHERE account_id = ? AND key_id = ?", s.account, id)
	return err
}

func (s *Store) ctxSigned(id uint32) string { return SignedPreKeyContext(s.account, id) }

func (s *Store) scanSigned(id uint32, sealed, sig []byte, ts int64) (*record.SignedPreKey, error) {
	priv, err := s.ks.Open(sealed, s.ctxSigned(id))
	if err != nil {
		return nil, err
	}
	return e2ee.SignedPreKeyFromParts(id, priv, sig, ts), nil
}

// LoadSignedPreKey implements store.SignedPreKey.
func (s *Store) LoadSignedPreKey(ctx context.Context, id uint32) (*record.SignedPreKey, error) {
	var sealed, sig []byte
	var ts int64
	if err := s.tx.QueryRowContext(ctx, "SELECT priv, signature, ts FROM signal_signed_prekeys WHERE account_id = ? AND key_id = ?", s.account, id).Scan(&sealed, &sig, &ts); err != nil {
		return nil, fmt.Errorf("signed pre-key %d: %w", id, err)
	}
	return s.scanSigned(id, sealed, sig, ts)
}

// LoadSignedPreKeys implements store.SignedPreKey.
func (s *Store) LoadSignedPreKeys(ctx context.Context) ([]*record.SignedPreKey, error) {
	rows, err := s.tx.QueryContext(ctx, "SELECT key_id, priv, signature, ts FROM signal_signed_prekeys WHERE account_id = ? ORDER BY key_id", s.account)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*record.SignedPreKey
	for rows.Next() {
		var id uint32
		var sealed, sig []byte
		var ts int64
		if err := rows.Scan(&id, &sealed, &sig, &ts); err != nil {
			return nil, err
		}
		r, err := s.scanSigned(id, sealed, sig, ts)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// StoreSignedPreKey implements store.SignedPreKey.
func (s *Store) StoreSignedPreKey(ctx context.Context, id uint32, r *record.SignedPreKey) error {
	priv, sig, ts := e2ee.SignedPreKeyParts(r)
	_, err := s.tx.ExecContext(ctx, "INSERT INTO signal_signed_prekeys (account_id, key_id, priv, signature, ts) VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE priv = VALUES(priv), signature = VALUES(signature), ts = VALUES(ts)",
		s.account, id, s.ks.Seal(priv, s.ctxSigned(id)), sig, ts)
	return err
}

// ContainsSignedPreKey implements store.SignedPreKey.
func (s *Store) ContainsSignedPreKey(ctx context.Context, id uint32) (bool, error) {
	var n int
	err := s.tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM signal_signed_prekeys WHERE account_id = ? AND key_id = ?", s.account, id).Scan(&n)
	return n > 0, err
}

// RemoveSignedPreKey implements store.SignedPreKey.
func (s *Store) RemoveSignedPreKey(ctx context.Context, id uint32) error {
	_, err := s.tx.ExecContext(ctx, "DELETE FROM signal_signed_prekeys WHERE account_id = ? AND key_id = ?", s.account, id)
	return err
}

// LoadSession implements store.Session; a missing session is a fresh record.
func (s *Store) LoadSession(ctx context.Context, a *protocol.SignalAddress) (*record.Session, error) {
	addr := a.String()
	rec, ok := s.sessions[addr]
	if !ok {
		if err := s.Preload(ctx, []string{a.Name()}); err != nil {
			return nil, err
		}
		rec = s.sessions[addr]
	}
	if rec == nil {
		return record.NewSession(e2ee.Serializer.Session, e2ee.Serializer.State), nil
	}
	return rec, nil
}

// GetSubDeviceSessions implements store.Session (one device per account).
func (s *Store) GetSubDeviceSessions(context.Context, string) ([]uint32, error) { return nil, nil }

// StoreSession implements store.Session.
func (s *Store) StoreSession(_ context.Context, a *protocol.SignalAddress, r *record.Session) error {
	addr := a.String()
	s.sessions[addr] = r
	s.dirtySessions[addr] = true
	delete(s.deletedSession, addr)
	return nil
}

// ContainsSession implements store.Session.
func (s *Store) ContainsSession(ctx context.Context, a *protocol.SignalAddress) (bool, error) {
	addr := a.String()
	if _, ok := s.sessions[addr]; !ok {
		if err := s.Preload(ctx, []string{a.Name()}); err != nil {
			return false, err
		}
	}
	return s.sessions[addr] != nil, nil
}

// DeleteSession implements store.Session.
func (s *Store) DeleteSession(_ context.Context, a *protocol.SignalAddress) error {
	addr := a.String()
	s.sessions[addr] = nil
	delete(s.dirtySessions, addr)
	s.deletedSession[addr] = true
	return nil
}

// DeleteAllSessions implements store.Session.
func (s *Store) DeleteAllSessions(ctx context.Context) error {
	_, err := s.tx.ExecContext(ctx, "DELETE FROM signal_sessions WHERE account_id = ?", s.account)
	clear(s.sessions)
	clear(s.dirtySessions)
	clear(s.deletedSession)
	return err
}

// StoreSenderKey implements the group store; groups are not supported.
func (s *Store) StoreSenderKey(context.Context, *protocol.SenderKeyName, *grecord.SenderKey) error {
	return e2ee.ErrGroupsUnsupported
}

// LoadSenderKey implements the group store; groups are not supported.
func (s *Store) LoadSenderKey(context.Context, *protocol.SenderKeyName) (*grecord.SenderKey, error) {
	return nil, e2ee.ErrGroupsUnsupported
}

// LoadIdentity returns the account's identity, creating it on first use.
func LoadIdentity(ctx context.Context, d *sql.DB, account int64, ks *keystore.Keystore) (*e2ee.Identity, error) {
	ctxKey := IdentityContext(account)
	var reg uint32
	var sealed []byte
	err := d.QueryRowContext(ctx, "SELECT registration_id, identity_priv FROM signal_identity WHERE account_id = ?", account).Scan(&reg, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		id, err := e2ee.NewIdentity()
		if err != nil {
			return nil, err
		}
		if _, err := d.ExecContext(ctx, "INSERT IGNORE INTO signal_identity (account_id, registration_id, identity_priv, next_prekey_id, created_at) VALUES (?, ?, ?, 1, ?)",
			account, id.RegistrationID, ks.Seal(id.PrivateKey(), ctxKey), db.NowMillis()); err != nil {
			return nil, err
		}
		return LoadIdentity(ctx, d, account, ks) // the row that won a race
	}
	if err != nil {
		return nil, err
	}
	priv, err := ks.Open(sealed, ctxKey)
	if err != nil {
		return nil, err
	}
	return e2ee.IdentityFromPrivate(reg, priv)
}

// MissingSessions returns the peers the account has no session with.
func MissingSessions(ctx context.Context, d *sql.DB, account int64, peers []string) ([]string, error) {
	if len(peers) == 0 {
		return nil, nil
	}
	args := []any{account}
	want := map[string]string{}
	for _, p := range peers {
		a := e2ee.Address(p).String()
		if _, dup := want[a]; !dup {
			want[a] = p
			args = append(args, a)
		}
	}
	rows, err := d.QueryContext(ctx, "SELECT address FROM signal_sessions WHERE account_id = ? AND address IN ("+db.Placeholders(len(args)-1)+")", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		delete(want, a)
	}
	return slices.Sorted(maps.Values(want)), rows.Err()
}

// PreKeyUpload creates n new one-time pre-keys (and the signed pre-key on
// first use), stores them, and returns the upload that publishes them with
// the identity.
func PreKeyUpload(ctx context.Context, d *sql.DB, account int64, id *e2ee.Identity, ks *keystore.Keystore, n int) (*chatdv1.PreKeyUpload, error) {
	var up *chatdv1.PreKeyUpload
	err := db.Tx(ctx, d, func(tx *sql.Tx) error {
		st := New(tx, account, id, ks)
		spks, err := st.LoadSignedPreKeys(ctx)
		if err != nil {
			return err
		}
		var spk *record.SignedPreKey
		if len(spks) > 0 {
			spk = spks[len(spks)-1]
		} else {
			if spk, err = e2ee.NewSignedPreKey(id, 1); err != nil {
				return err
			}
			if err := st.StoreSignedPreKey(ctx, 1, spk); err != nil {
				return err
			}
		}
		var next uint32
		if err := tx.QueryRowContext(ctx, "SELECT next_prekey_id FROM signal_identity WHERE account_id = ? FOR UPDATE", account).Scan(&next); err != nil {
			return err
		}
		pks, err := e2ee.NewPreKeys(next, n)
		if err != nil {
			return err
		}
		if n > 0 {
			args := make([]any, 0, 4*n)
			now := db.NowMillis()
			for _, pk := range pks {
				kid := pk.ID().Value
				args = append(args, account, kid, ks.Seal(e2ee.PreKeyPrivate(pk), st.ctxPreKey(kid)), now)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO signal_prekeys (account_id, key_id, priv, created_at) VALUES "+db.Rows("(?,?,?,?)", n)+
				" ON DUPLICATE KEY UPDATE priv = VALUES(priv), created_at = VALUES(created_at)", args...); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE signal_identity SET next_prekey_id = ? WHERE account_id = ?", (next+uint32(n))%0xFFFFFF, account); err != nil {
			return err
		}
		up = e2ee.Upload(id, spk, pks)
		return nil
	})
	return up, err
}
