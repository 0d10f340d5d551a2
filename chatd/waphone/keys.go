package waphone

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/chatd/e2ee"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// keysFile holds the phone's Signal state: identity, pre-keys, sessions,
// and a buffer of recently decrypted messages. It is rewritten atomically
// after every change, before the phone acts on it, so a phone killed at any
// point restarts consistent: a redelivered message found in the buffer is
// shown from there instead of failing to decrypt a second time.
const (
	keysFile    = "signal.json"
	preKeysFile = "prekeys.json" // the one-time pre-keys, rewritten only when they change
)

// bufferSize is how many decrypted messages are kept for redeliveries: the
// phone acks a message right after showing it, so only the few decrypted
// and not yet acked when it dies are ever pushed again.
const bufferSize = 128

// e2e is the phone's end-to-end layer: the seam that keeps the Signal
// implementation (keyring, over chatd/e2ee and go.mau.fi/libsignal)
// replaceable.
type e2e interface {
	// seal encrypts content for peer (b: the peer's bundle when there is no
	// session), persisting the advanced session first.
	seal(ctx context.Context, peer string, c *messagev1.Content, b *chatdv1.PreKeyBundle) (*chatdv1.Enc, error)
	// open decrypts a message from peer (a message decrypted before is
	// returned again from a buffer).
	open(ctx context.Context, peer, id string, enc *chatdv1.Enc) (*messagev1.Content, error)
	// sealDeferred encrypts content for peer over the existing session
	// without storing the state; the caller stores it (store) before it
	// sends what was sealed.
	sealDeferred(ctx context.Context, peer string, c *messagev1.Content) (*chatdv1.Enc, error)
	// store writes the state.
	store() error
	// preopen decrypts messages into the buffer and stores the state once
	// for all of them, before any is acted on: open then finds them there.
	// A message it cannot decrypt is left to open.
	preopen(ctx context.Context, msgs []*chatdv1.Message)
	// hasSession reports whether there is a session with peer.
	hasSession(ctx context.Context, peer string) bool
	// forget drops the session with peer.
	forget(ctx context.Context, peer string) error
	// preKeyUpload creates n one-time pre-keys and returns their upload.
	preKeyUpload(n int) (*chatdv1.PreKeyUpload, error)
	// registrationID is the device's Signal registration id.
	registrationID() uint32
	// takeChanged returns and forgets the peers whose new identity was
	// trusted (their security code changed) since the last call.
	takeChanged() []string
	// close releases what the state holds open (the journal); a store
	// after it writes a snapshot and reopens it.
	close() error
}

var _ e2e = (*keyring)(nil)

// registrationID implements e2e.
func (k *keyring) registrationID() uint32 { return k.st.GetLocalRegistrationID() }

// keyring is the phone's end-to-end state. It is safe for concurrent use.
//
// It is kept as a snapshot (keysFile) and a journal (journalFile): a store
// appends one line with what changed (the sessions and identity keys
// written, the buffer's new and dropped messages), one write instead of
// rewriting the whole state; the journal is folded into a new snapshot
// when it grows past maxJournal, and at every open. Each line and the
// snapshot carry a generation: a line at or below the snapshot's is
// already in it (a crash between writing a snapshot and emptying the
// journal), and a torn last line (a crash while appending) is ignored, so
// the state is the last one fully stored, as before anything was acted
// on.
type keyring struct {
	path, preKeyPath, journalPath string
	savedGen                      uint64 // pre-key generation last written

	mu      sync.Mutex // guards the fields below and serializes Signal operations
	st      *e2ee.MemStore
	buffer  map[string][]byte // "from id" → plaintext
	order   []string          // buffer insertion order
	gen     uint64            // generation of the last store
	journal *os.File          // open for appending; nil: the next store writes a snapshot
	size    int64             // bytes in the journal
	added   []bufferEntry     // buffer changes since the last store
	dropped []string
	unsaved bool // a store failed: open stores again before acting
	// changed lists the peers whose new identity the phone trusted since
	// the last takeChanged.
	changed []string
}

// Journal files.
const (
	journalFile = "signal.journal"
	// maxJournal is the journal size past which a store writes a new
	// snapshot instead.
	maxJournal = 256 << 10
)

type keysState struct {
	Store  json.RawMessage   `json:"store"`
	Buffer map[string][]byte `json:"buffer"`
	Order  []string          `json:"order"`
	Gen    uint64            `json:"gen"`
}

type bufferEntry struct {
	Key   string `json:"k"`
	Plain []byte `json:"p"`
}

// journalEntry is one line of the journal.
type journalEntry struct {
	Gen     uint64        `json:"gen"`
	Store   e2ee.Changes  `json:"store"`
	Added   []bufferEntry `json:"added,omitempty"`
	Dropped []string      `json:"dropped,omitempty"`
}

// openKeyring loads the phone's keys, creating a new identity for a new
// install (a home without them).
func openKeyring(home string) (*keyring, error) {
	k := &keyring{path: filepath.Join(home, keysFile), preKeyPath: filepath.Join(home, preKeysFile),
		journalPath: filepath.Join(home, journalFile), buffer: map[string][]byte{}}
	b, err := os.ReadFile(k.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		id, err := e2ee.NewIdentity()
		if err != nil {
			return nil, err
		}
		k.st = e2ee.NewMemStore(id)
		return k, k.saveLocked()
	case err != nil:
		return nil, err
	}
	var s keysState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", keysFile, err)
	}
	pks, err := os.ReadFile(k.preKeyPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if k.st, err = e2ee.LoadMemStoreParts(s.Store, pks); err != nil {
		return nil, fmt.Errorf("%s: %w", keysFile, err)
	}
	_, _, k.savedGen, _ = k.st.SnapshotParts()
	if s.Buffer != nil {
		k.buffer, k.order = s.Buffer, s.Order
	}
	k.gen = s.Gen
	if err := k.replay(); err != nil {
		return nil, err
	}
	// Fold the journal into a new snapshot now: the next stores append to
	// an empty journal, after whatever a crash left in it.
	return k, k.saveLocked()
}

// replay applies the journal's complete lines above the snapshot's
// generation.
func (k *keyring) replay() error {
	f, err := os.Open(k.journalPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxJournal+(1<<20))
	for sc.Scan() {
		var e journalEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Gen != k.gen+1 {
			if e.Gen <= k.gen && err == nil {
				continue // in the snapshot already
			}
			break // a torn last line, or nothing after it
		}
		k.st.ApplyChanges(e.Store)
		for _, a := range e.Added {
			k.buffer[a.Key] = a.Plain
			k.order = append(k.order, a.Key)
		}
		for _, d := range e.Dropped {
			delete(k.buffer, d)
			k.order = slices.DeleteFunc(k.order, func(o string) bool { return o == d })
		}
		k.gen = e.Gen
	}
	k.st.Forget() // what was replayed is stored
	return nil
}

// saveLocked stores the state; k.mu must be held (or k not shared yet): a
// journal line, or a new snapshot when there is no journal yet, it is
// large, or a store failed. The state goes first: its pre-key counter may
// then run ahead of the pre-key file after a crash (ids are skipped), never
// behind it (ids reused).
func (k *keyring) saveLocked() error {
	if k.journal != nil && k.size < maxJournal {
		e := journalEntry{Gen: k.gen + 1, Store: k.st.Changes(), Added: k.added, Dropped: k.dropped}
		b, err := json.Marshal(e)
		if err == nil {
			b = append(b, '\n')
			_, err = k.journal.Write(b)
		}
		if err != nil {
			// The changes are taken: only a snapshot stores them now.
			k.journal.Close()
			k.journal = nil
			return k.snapshotLocked()
		}
		k.gen, k.size, k.added, k.dropped, k.unsaved = e.Gen, k.size+int64(len(b)), nil, nil, false
		return k.savePreKeys()
	}
	return k.snapshotLocked()
}

// snapshotLocked writes the whole state and starts an empty journal.
func (k *keyring) snapshotLocked() error {
	store, _, _, err := k.st.SnapshotParts()
	if err != nil {
		return err
	}
	gen := k.gen + 1
	b, err := json.Marshal(keysState{Store: store, Buffer: k.buffer, Order: k.order, Gen: gen})
	if err != nil {
		return err
	}
	if err := writeAtomic(k.path, b); err != nil {
		return err
	}
	k.st.Forget()
	k.gen, k.added, k.dropped, k.unsaved = gen, nil, nil, false
	if k.journal != nil {
		k.journal.Close()
		k.journal = nil
	}
	// Lines at or below gen are skipped on load: emptying the journal after
	// the snapshot is safe in any order of crashes.
	j, err := os.OpenFile(k.journalPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err == nil {
		k.journal, k.size = j, 0
	}
	// Otherwise the state is stored all the same (the snapshot above), and
	// without a journal the next store writes a snapshot again: slower, as
	// safe; it tries the journal again then.
	return k.savePreKeys()
}

// savePreKeys writes the one-time pre-keys when they changed.
func (k *keyring) savePreKeys() error {
	_, prekeys, gen, err := k.st.SnapshotParts()
	if err != nil {
		return err
	}
	if gen == k.savedGen && fileExists(k.preKeyPath) {
		return nil
	}
	if err := writeAtomic(k.preKeyPath, prekeys); err != nil {
		return err
	}
	k.savedGen = gen
	return nil
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// preKeyUpload returns an upload for a pool of n new one-time keys (with the
// identity and signed pre-key), stored before it is sent.
func (k *keyring) preKeyUpload(n int) (*chatdv1.PreKeyUpload, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	spk, err := k.st.SignedPreKey()
	if err != nil {
		return nil, err
	}
	pks, err := k.st.GeneratePreKeys(n)
	if err != nil {
		return nil, err
	}
	if err := k.saveLocked(); err != nil {
		return nil, err
	}
	return e2ee.Upload(k.st.Identity(), spk, pks), nil
}

// hasSession reports whether the phone has a session with peer.
func (k *keyring) hasSession(ctx context.Context, peer string) bool {
	ok, _ := e2ee.HasSession(ctx, k.st, peer)
	return ok
}

// forget drops the session with peer (to rebuild it from a new bundle).
func (k *keyring) forget(ctx context.Context, peer string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.st.DeleteSession(ctx, e2ee.Address(peer)); err != nil {
		return err
	}
	return k.saveLocked()
}

// seal encrypts content for peer (b: the peer's bundle when there is no
// session) and stores the advanced session before returning. A peer that
// reinstalled is trusted: phones accept new identities, like WhatsApp.
func (k *keyring) seal(ctx context.Context, peer string, c *messagev1.Content, b *chatdv1.PreKeyBundle) (*chatdv1.Enc, error) {
	plain, err := proto.Marshal(c)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	enc, err := e2ee.Seal(ctx, k.st, peer, plain, b)
	if errors.Is(err, e2ee.ErrIdentityChanged) && b != nil {
		key, kerr := e2ee.BundleIdentity(b)
		if kerr != nil {
			return nil, kerr
		}
		if err := e2ee.Trust(ctx, k.st, peer, key); err != nil {
			return nil, err
		}
		k.trusted(peer)
		enc, err = e2ee.Seal(ctx, k.st, peer, plain, b)
	}
	if err != nil {
		return nil, err
	}
	return enc, k.saveLocked()
}

// sealDeferred implements e2e.
func (k *keyring) sealDeferred(ctx context.Context, peer string, c *messagev1.Content) (*chatdv1.Enc, error) {
	plain, err := proto.Marshal(c)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return e2ee.Seal(ctx, k.st, peer, plain, nil)
}

// close implements e2e.
func (k *keyring) close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.journal == nil {
		return nil
	}
	err := k.journal.Close()
	k.journal = nil
	return err
}

// store implements e2e.
func (k *keyring) store() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.saveLocked()
}

// preopen implements e2e: one store of the keys for a batch of messages,
// instead of one per message.
func (k *keyring) preopen(ctx context.Context, msgs []*chatdv1.Message) {
	k.mu.Lock()
	defer k.mu.Unlock()
	opened := 0
	for _, m := range msgs {
		key := m.From + " " + m.Id
		if _, ok := k.buffer[key]; ok {
			continue
		}
		plain, err := k.decryptLocked(ctx, m.From, m.Enc)
		if err != nil {
			continue
		}
		k.remember(key, plain)
		opened++
	}
	if opened > 0 {
		// A failed store leaves the stored state behind the one in memory:
		// the buffer keeps the plaintexts (the advanced sessions could not
		// decrypt them again), and open stores them before they are shown.
		if err := k.saveLocked(); err != nil {
			k.unsaved = true
		}
	}
}

// trusted notes that peer's new identity was trusted; k.mu is held.
func (k *keyring) trusted(peer string) { k.changed = append(k.changed, peer) }

// takeChanged returns and forgets the peers trusted anew.
func (k *keyring) takeChanged() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := k.changed
	k.changed = nil
	return out
}

// decryptLocked opens enc from peer, trusting a changed identity; k.mu is
// held.
func (k *keyring) decryptLocked(ctx context.Context, peer string, enc *chatdv1.Enc) ([]byte, error) {
	opened, err := e2ee.Open(ctx, k.st, peer, enc)
	if errors.Is(err, e2ee.ErrIdentityChanged) && opened.Identity != nil {
		if err := e2ee.Trust(ctx, k.st, peer, opened.Identity); err != nil {
			return nil, err
		}
		k.trusted(peer)
		opened, err = e2ee.Open(ctx, k.st, peer, enc)
	}
	if err != nil {
		return nil, err
	}
	return opened.Plaintext, nil
}

// remember keeps a decrypted message in the buffer; k.mu is held.
func (k *keyring) remember(key string, plain []byte) {
	k.buffer[key] = plain
	k.order = append(k.order, key)
	k.added = append(k.added, bufferEntry{key, plain})
	for len(k.order) > bufferSize {
		delete(k.buffer, k.order[0])
		k.dropped = append(k.dropped, k.order[0])
		k.order = k.order[1:]
	}
}

// open decrypts a message from peer. A message decrypted before (and kept
// in the buffer) is returned again; a duplicate beyond the buffer returns
// e2ee.ErrDuplicate.
func (k *keyring) open(ctx context.Context, peer, id string, enc *chatdv1.Enc) (*messagev1.Content, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key := peer + " " + id
	plain, ok := k.buffer[key]
	if ok && k.unsaved {
		if err := k.saveLocked(); err != nil {
			return nil, err
		}
	}
	if !ok {
		var err error
		if plain, err = k.decryptLocked(ctx, peer, enc); err != nil {
			return nil, err
		}
		k.remember(key, plain)
		if err := k.saveLocked(); err != nil {
			return nil, err
		}
	}
	c := new(messagev1.Content)
	if err := proto.Unmarshal(plain, c); err != nil {
		return nil, fmt.Errorf("%w: %v", e2ee.ErrUndecryptable, err)
	}
	return c, nil
}
