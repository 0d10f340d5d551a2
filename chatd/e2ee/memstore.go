package e2ee

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync"

	grecord "go.mau.fi/libsignal/groups/state/record"
	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/state/record"
)

// MemStore keeps one device's keys and sessions in memory; Snapshot and
// LoadMemStore persist it (waphone writes the snapshot to its home
// directory). It is safe for concurrent use.
type MemStore struct {
	mu       sync.Mutex // guards the fields below
	id       *Identity
	prekeys  map[uint32][]byte // raw private keys
	signed   map[uint32]signedPreKey
	sessions map[string][]byte // address → serialized record
	// idle holds the record last stored for an address, decoded, while no
	// one has it: LoadSession hands it out (and forgets it) instead of
	// decoding sessions[address] again, which was a tenth of a phone's CPU
	// per message (libsignal encodes records as JSON). A record loaded and
	// not stored back (a failed decryption may have changed it) is gone:
	// the next load decodes the last stored bytes.
	idle       map[string]*record.Session
	identities map[string][]byte // address → serialized public identity key
	nextPreKey uint32
	preKeyGen  uint64 // bumped on every change of the one-time pre-keys

	// What changed since the last Changes (or load): the addresses of
	// sessions and identities written or deleted, and the signed pre-keys.
	dirtySessions   map[string]bool
	dirtyIdentities map[string]bool
	dirtySigned     bool
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty store for a new identity.
func NewMemStore(id *Identity) *MemStore {
	return &MemStore{id: id, prekeys: map[uint32][]byte{}, signed: map[uint32]signedPreKey{},
		sessions: map[string][]byte{}, idle: map[string]*record.Session{}, identities: map[string][]byte{}, nextPreKey: 1,
		dirtySessions: map[string]bool{}, dirtyIdentities: map[string]bool{}}
}

// Changes is what changed in a store since the previous Changes: written
// sessions and identity keys (a nil value: deleted), the signed pre-keys
// when they changed, and the next one-time pre-key id. The one-time
// pre-keys themselves are SnapshotParts' (they change rarely).
type Changes struct {
	Sessions   map[string][]byte       `json:"sessions,omitempty"`
	Identities map[string][]byte       `json:"identities,omitempty"`
	Signed     map[uint32]signedPreKey `json:"signed_prekeys,omitempty"`
	NextPreKey uint32                  `json:"next_prekey"`
}

// Changes returns what changed since the previous call (or the load) and
// forgets it: a caller that persists the store appends it to a journal
// instead of writing the whole store (ApplyChanges replays it).
func (m *MemStore) Changes() Changes {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := Changes{NextPreKey: m.nextPreKey}
	if len(m.dirtySessions) > 0 {
		c.Sessions = make(map[string][]byte, len(m.dirtySessions))
		for a := range m.dirtySessions {
			c.Sessions[a] = m.sessions[a] // nil when deleted
		}
		clear(m.dirtySessions)
	}
	if len(m.dirtyIdentities) > 0 {
		c.Identities = make(map[string][]byte, len(m.dirtyIdentities))
		for a := range m.dirtyIdentities {
			c.Identities[a] = m.identities[a]
		}
		clear(m.dirtyIdentities)
	}
	if m.dirtySigned {
		c.Signed = maps.Clone(m.signed)
		if c.Signed == nil {
			c.Signed = map[uint32]signedPreKey{}
		}
		m.dirtySigned = false
	}
	return c
}

// ApplyChanges replays Changes onto a loaded store.
func (m *MemStore) ApplyChanges(c Changes) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for a, b := range c.Sessions {
		delete(m.idle, a)
		if b == nil {
			delete(m.sessions, a)
		} else {
			m.sessions[a] = b
		}
	}
	for a, b := range c.Identities {
		if b == nil {
			delete(m.identities, a)
		} else {
			m.identities[a] = b
		}
	}
	if c.Signed != nil {
		m.signed = maps.Clone(c.Signed)
	}
	m.nextPreKey = max(m.nextPreKey, c.NextPreKey, 1)
}

// Forget drops what Changes would report (the whole store was just
// written).
func (m *MemStore) Forget() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.dirtySessions)
	clear(m.dirtyIdentities)
	m.dirtySigned = false
}

type signedPreKey struct {
	Private   []byte `json:"private"`
	Signature []byte `json:"signature"`
	Timestamp int64  `json:"timestamp"`
}

type snapshot struct {
	RegistrationID uint32                  `json:"registration_id"`
	IdentityKey    []byte                  `json:"identity_private"`
	PreKeys        map[uint32][]byte       `json:"prekeys"`
	Signed         map[uint32]signedPreKey `json:"signed_prekeys"`
	Sessions       map[string][]byte       `json:"sessions"`
	Identities     map[string][]byte       `json:"identities"`
	NextPreKey     uint32                  `json:"next_prekey"`
}

// Snapshot serializes the whole store.
func (m *MemStore) Snapshot() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return json.Marshal(snapshot{m.id.RegistrationID, m.id.PrivateKey(), m.prekeys, m.signed, m.sessions, m.identities, m.nextPreKey})
}

// SnapshotParts serializes the store in two parts: everything but the
// one-time pre-keys (which change with every message), and the pre-keys
// (which change rarely), with a generation number that changes whenever
// they do, so a caller writes them only then.
func (m *MemStore) SnapshotParts() (main, prekeys []byte, gen uint64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if main, err = json.Marshal(snapshot{m.id.RegistrationID, m.id.PrivateKey(), nil, m.signed, m.sessions, m.identities, m.nextPreKey}); err != nil {
		return nil, nil, 0, err
	}
	prekeys, err = json.Marshal(m.prekeys)
	return main, prekeys, m.preKeyGen, err
}

// LoadMemStoreParts restores SnapshotParts.
func LoadMemStoreParts(main, prekeys []byte) (*MemStore, error) {
	m, err := LoadMemStore(main)
	if err != nil || len(prekeys) == 0 {
		return m, err
	}
	var pks map[uint32][]byte
	if err := json.Unmarshal(prekeys, &pks); err != nil {
		return nil, err
	}
	maps.Copy(m.prekeys, pks)
	return m, nil
}

// LoadMemStore restores a Snapshot.
func LoadMemStore(b []byte) (*MemStore, error) {
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	id, err := IdentityFromPrivate(s.RegistrationID, s.IdentityKey)
	if err != nil {
		return nil, err
	}
	m := NewMemStore(id)
	maps.Copy(m.prekeys, s.PreKeys)
	maps.Copy(m.signed, s.Signed)
	maps.Copy(m.sessions, s.Sessions)
	maps.Copy(m.identities, s.Identities)
	m.nextPreKey = max(s.NextPreKey, 1)
	return m, nil
}

// Identity returns the device identity.
func (m *MemStore) Identity() *Identity { return m.id }

// GeneratePreKeys creates and stores n one-time pre-keys.
func (m *MemStore) GeneratePreKeys(n int) ([]*record.PreKey, error) {
	m.mu.Lock()
	start := m.nextPreKey
	m.nextPreKey += uint32(n)
	m.mu.Unlock()
	pks, err := NewPreKeys(start, n)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, pk := range pks {
		m.prekeys[pk.ID().Value] = PreKeyPrivate(pk)
	}
	m.preKeyGen++
	return pks, nil
}

// SignedPreKey returns the newest signed pre-key, creating one if none.
func (m *MemStore) SignedPreKey() (*record.SignedPreKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.signed) > 0 {
		id := slices.Max(slices.Collect(maps.Keys(m.signed)))
		s := m.signed[id]
		return SignedPreKeyFromParts(id, s.Private, s.Signature, s.Timestamp), nil
	}
	spk, err := NewSignedPreKey(m.id, 1)
	if err != nil {
		return nil, err
	}
	m.putSigned(spk)
	return spk, nil
}

// GetIdentityKeyPair implements store.IdentityKey.
func (m *MemStore) GetIdentityKeyPair() *identity.KeyPair { return m.id.KeyPair }

// GetLocalRegistrationID implements store.IdentityKey.
func (m *MemStore) GetLocalRegistrationID() uint32 { return m.id.RegistrationID }

// SaveIdentity implements store.IdentityKey.
func (m *MemStore) SaveIdentity(_ context.Context, a *protocol.SignalAddress, k *identity.Key) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.identities[a.String()] = k.Serialize()
	m.dirtyIdentities[a.String()] = true
	return nil
}

// IsTrustedIdentity implements store.IdentityKey: trust on first use.
func (m *MemStore) IsTrustedIdentity(_ context.Context, a *protocol.SignalAddress, k *identity.Key) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.identities[a.String()]
	return !ok || string(cur) == string(k.Serialize()), nil
}

// LoadPreKey implements store.PreKey.
func (m *MemStore) LoadPreKey(_ context.Context, id uint32) (*record.PreKey, error) {
	m.mu.Lock()
	b, ok := m.prekeys[id]
	m.mu.Unlock()
	if !ok {
		return nil, errors.New("no such pre-key")
	}
	return PreKeyFromPrivate(id, b), nil
}

// StorePreKey implements store.PreKey.
func (m *MemStore) StorePreKey(_ context.Context, id uint32, r *record.PreKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prekeys[id] = PreKeyPrivate(r)
	m.preKeyGen++
	return nil
}

// ContainsPreKey implements store.PreKey.
func (m *MemStore) ContainsPreKey(_ context.Context, id uint32) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.prekeys[id]
	return ok, nil
}

// RemovePreKey implements store.PreKey.
func (m *MemStore) RemovePreKey(_ context.Context, id uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.prekeys, id)
	m.preKeyGen++
	return nil
}

// LoadSignedPreKey implements store.SignedPreKey.
func (m *MemStore) LoadSignedPreKey(_ context.Context, id uint32) (*record.SignedPreKey, error) {
	m.mu.Lock()
	s, ok := m.signed[id]
	m.mu.Unlock()
	if !ok {
		return nil, errors.New("no such signed pre-key")
	}
	return SignedPreKeyFromParts(id, s.Private, s.Signature, s.Timestamp), nil
}

// putSigned stores a signed pre-key; m.mu must be held.
func (m *MemStore) putSigned(r *record.SignedPreKey) {
	priv, sig, ts := SignedPreKeyParts(r)
	m.signed[r.ID()] = signedPreKey{priv, sig, ts}
	m.dirtySigned = true
}

// LoadSignedPreKeys implements store.SignedPreKey.
func (m *MemStore) LoadSignedPreKeys(ctx context.Context) ([]*record.SignedPreKey, error) {
	m.mu.Lock()
	ids := slices.Sorted(maps.Keys(m.signed))
	m.mu.Unlock()
	var out []*record.SignedPreKey
	for _, id := range ids {
		r, err := m.LoadSignedPreKey(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// StoreSignedPreKey implements store.SignedPreKey.
func (m *MemStore) StoreSignedPreKey(_ context.Context, id uint32, r *record.SignedPreKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.putSigned(r)
	return nil
}

// ContainsSignedPreKey implements store.SignedPreKey.
func (m *MemStore) ContainsSignedPreKey(_ context.Context, id uint32) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.signed[id]
	return ok, nil
}

// RemoveSignedPreKey implements store.SignedPreKey.
func (m *MemStore) RemoveSignedPreKey(_ context.Context, id uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.signed, id)
	m.dirtySigned = true
	return nil
}

// LoadSession implements store.Session; a missing session is a fresh record.
func (m *MemStore) LoadSession(_ context.Context, a *protocol.SignalAddress) (*record.Session, error) {
	m.mu.Lock()
	key := a.String()
	if r, ok := m.idle[key]; ok {
		delete(m.idle, key)
		m.mu.Unlock()
		return r, nil
	}
	b, ok := m.sessions[key]
	m.mu.Unlock()
	if !ok {
		return record.NewSession(Serializer.Session, Serializer.State), nil
	}
	return record.NewSessionFromBytes(b, Serializer.Session, Serializer.State)
}

// GetSubDeviceSessions implements store.Session (one device per account).
func (m *MemStore) GetSubDeviceSessions(context.Context, string) ([]uint32, error) { return nil, nil }

// StoreSession implements store.Session.
func (m *MemStore) StoreSession(_ context.Context, a *protocol.SignalAddress, r *record.Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := a.String()
	m.sessions[key] = r.Serialize()
	m.idle[key] = r // libsignal does not change a record after storing it
	m.dirtySessions[key] = true
	return nil
}

// ContainsSession implements store.Session.
func (m *MemStore) ContainsSession(_ context.Context, a *protocol.SignalAddress) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.sessions[a.String()]
	return ok, nil
}

// DeleteSession implements store.Session.
func (m *MemStore) DeleteSession(_ context.Context, a *protocol.SignalAddress) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, a.String())
	delete(m.idle, a.String())
	m.dirtySessions[a.String()] = true
	return nil
}

// DeleteAllSessions implements store.Session.
func (m *MemStore) DeleteAllSessions(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for a := range m.sessions {
		m.dirtySessions[a] = true
	}
	clear(m.sessions)
	clear(m.idle)
	return nil
}

// StoreSenderKey implements the group store; groups are not supported.
func (m *MemStore) StoreSenderKey(context.Context, *protocol.SenderKeyName, *grecord.SenderKey) error {
	return ErrGroupsUnsupported
}

// LoadSenderKey implements the group store; groups are not supported.
func (m *MemStore) LoadSenderKey(context.Context, *protocol.SenderKeyName) (*grecord.SenderKey, error) {
	return nil, ErrGroupsUnsupported
}

// ErrGroupsUnsupported is returned by the sender-key (group) methods.
var ErrGroupsUnsupported = errors.New("group messaging is not supported")
