// Package e2ee is end-to-end encryption with the Signal protocol
// (go.mau.fi/libsignal, GPL-3.0) for the chat network's clients: identity and
// pre-key generation, the pre-key bundles chatd hands out, and sealing and
// opening message payloads with padding. coreapp (sessions in MySQL) and
// waphone (sessions in its home directory) supply the key store; everything
// else about Signal lives here.
//
// Each account has one device (id 1); a peer's address is its number.
package e2ee

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/keys/prekey"
	"go.mau.fi/libsignal/logger"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/serialize"
	"go.mau.fi/libsignal/session"
	"go.mau.fi/libsignal/signalerror"
	"go.mau.fi/libsignal/state/record"
	"go.mau.fi/libsignal/state/store"
	"go.mau.fi/libsignal/util/keyhelper"
	"go.mau.fi/libsignal/util/optional"

	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// DeviceID is the only device of every account.
const DeviceID = 1

// Serializer encodes libsignal records.
var Serializer = serialize.NewProtoBufSerializer()

// Store is the key store a client provides, bound to whatever transaction the
// caller holds. It is libsignal's store interface.
type Store = store.SignalProtocol

// Errors of Seal and Open.
var (
	// ErrNoSession: there is no session with the peer and no bundle was given.
	ErrNoSession = errors.New("no session with the peer")
	// ErrIdentityChanged: the peer's identity key differs from the one
	// trusted so far (the peer reinstalled). Trust the new one with Trust
	// and try again.
	ErrIdentityChanged = errors.New("the peer's identity key changed")
	// ErrDuplicate: the message was already decrypted (an old counter).
	ErrDuplicate = errors.New("message already decrypted")
	// ErrUndecryptable: the payload cannot be decrypted with the keys held.
	ErrUndecryptable = errors.New("undecryptable payload")
)

// libsignal prints to stdout through a package-level logger, which it also
// creates lazily without synchronization (a data race under concurrent
// use). Setting it once while this package initializes, before any
// goroutine can call the library, silences it and removes that race. This
// is the one initialization side effect of the project, on purpose.
var _ = func() bool {
	var l logger.Loggable = silent{}
	logger.Setup(&l)
	return true
}()

type silent struct{}

func (silent) Debug(string, string)   {}
func (silent) Info(string, string)    {}
func (silent) Warning(string, string) {}
func (silent) Error(string, string)   {}
func (silent) Configure(string)       {}

// Identity is a device's long-term identity.
type Identity struct {
	RegistrationID uint32
	KeyPair        *identity.KeyPair
}

// NewIdentity generates an identity with a registration id in 1…16380.
func NewIdentity() (*Identity, error) {
	kp, err := keyhelper.GenerateIdentityKeyPair()
	if err != nil {
		return nil, err
	}
	return &Identity{RegistrationID: keyhelper.GenerateRegistrationID()%16380 + 1, KeyPair: kp}, nil
}

// PrivateKey returns the identity's private key bytes (for storage).
func (id *Identity) PrivateKey() []byte {
	k := id.KeyPair.PrivateKey().Serialize()
	return k[:]
}

// IdentityFromPrivate rebuilds an identity from stored parts.
func IdentityFromPrivate(registrationID uint32, private []byte) (*Identity, error) {
	if len(private) != 32 {
		return nil, fmt.Errorf("identity private key of %d bytes", len(private))
	}
	kp := ecc.CreateKeyPair(private)
	return &Identity{RegistrationID: registrationID, KeyPair: identity.NewKeyPair(identity.NewKey(kp.PublicKey()), kp.PrivateKey())}, nil
}

// Fingerprint is a short hash of an identity key, for the
// user_identity_changed webhook.
func Fingerprint(key *identity.Key) string {
	sum := sha256.Sum256(key.Serialize())
	return base64.StdEncoding.EncodeToString(sum[:16])
}

// NewSignedPreKey signs a new signed pre-key with the identity.
func NewSignedPreKey(id *Identity, keyID uint32) (*record.SignedPreKey, error) {
	return keyhelper.GenerateSignedPreKey(id.KeyPair, keyID, Serializer.SignedPreKeyRecord)
}

// NewPreKeys generates n one-time pre-keys with ids from start on (ids wrap
// below 2^24, as on the wire).
func NewPreKeys(start uint32, n int) ([]*record.PreKey, error) {
	out := make([]*record.PreKey, n)
	for i := range out {
		kp, err := ecc.GenerateKeyPair()
		if err != nil {
			return nil, err
		}
		id := (start+uint32(i))%0xFFFFFF + 1
		out[i] = record.NewPreKey(id, kp, Serializer.PreKeyRecord)
	}
	return out, nil
}

// libsignal's record deserialization reads the 33-byte serialized public
// key into a 32-byte array, corrupting it; pre-keys are therefore stored as
// their raw private keys and rebuilt with these functions.

// PreKeyPrivate returns a one-time pre-key's private key for storage.
func PreKeyPrivate(pk *record.PreKey) []byte {
	k := pk.KeyPair().PrivateKey().Serialize()
	return k[:]
}

// PreKeyFromPrivate rebuilds a stored one-time pre-key.
func PreKeyFromPrivate(id uint32, private []byte) *record.PreKey {
	return record.NewPreKey(id, ecc.CreateKeyPair(private), Serializer.PreKeyRecord)
}

// SignedPreKeyParts returns what to store of a signed pre-key.
func SignedPreKeyParts(spk *record.SignedPreKey) (private, signature []byte, timestamp int64) {
	k := spk.KeyPair().PrivateKey().Serialize()
	sig := spk.Signature()
	return k[:], sig[:], spk.Timestamp()
}

// SignedPreKeyFromParts rebuilds a stored signed pre-key.
func SignedPreKeyFromParts(id uint32, private, signature []byte, timestamp int64) *record.SignedPreKey {
	var sig [64]byte
	copy(sig[:], signature)
	return record.NewSignedPreKey(id, timestamp, ecc.CreateKeyPair(private), sig, Serializer.SignedPreKeyRecord)
}

// Upload is what a device publishes to chatd.
func Upload(id *Identity, spk *record.SignedPreKey, pks []*record.PreKey) *chatdv1.PreKeyUpload {
	sig := spk.Signature()
	up := &chatdv1.PreKeyUpload{
		RegistrationId: id.RegistrationID,
		IdentityKey:    id.KeyPair.PublicKey().Serialize(),
		SignedPrekey:   &chatdv1.SignedPreKey{Id: spk.ID(), PublicKey: spk.KeyPair().PublicKey().Serialize(), Signature: sig[:]},
	}
	for _, pk := range pks {
		up.Prekeys = append(up.Prekeys, &chatdv1.PreKey{Id: pk.ID().Value, PublicKey: pk.KeyPair().PublicKey().Serialize()})
	}
	return up
}

// Address is a peer's Signal address.
func Address(number string) *protocol.SignalAddress {
	return protocol.NewSignalAddress(number, DeviceID)
}

// bundle converts what chatd handed out.
func bundle(b *chatdv1.PreKeyBundle) (*prekey.Bundle, error) {
	idKey, err := ecc.DecodePoint(b.GetIdentityKey(), 0)
	if err != nil {
		return nil, fmt.Errorf("bundle identity key: %w", err)
	}
	spk := b.GetSignedPrekey()
	spkPub, err := ecc.DecodePoint(spk.GetPublicKey(), 0)
	if err != nil {
		return nil, fmt.Errorf("bundle signed pre-key: %w", err)
	}
	var sig [64]byte
	if len(spk.GetSignature()) != 64 {
		return nil, errors.New("bundle signed pre-key signature is not 64 bytes")
	}
	copy(sig[:], spk.GetSignature())
	pkID := optional.NewEmptyUint32()
	var pkPub ecc.ECPublicKeyable
	if pk := b.GetPrekey(); pk != nil {
		if pkPub, err = ecc.DecodePoint(pk.GetPublicKey(), 0); err != nil {
			return nil, fmt.Errorf("bundle pre-key: %w", err)
		}
		pkID = optional.NewOptionalUint32(pk.GetId())
	}
	return prekey.NewBundle(b.GetRegistrationId(), DeviceID, pkID, spk.GetId(), pkPub, spkPub, sig, identity.NewKey(idKey)), nil
}

// HasSession reports whether st holds a session with peer.
func HasSession(ctx context.Context, st Store, peer string) (bool, error) {
	return st.ContainsSession(ctx, Address(peer))
}

// Trust forgets the peer's stored identity and session, so the next bundle
// or pre-key message from it is trusted. The store must make SaveIdentity
// replace the stored key.
func Trust(ctx context.Context, st Store, peer string, key *identity.Key) error {
	addr := Address(peer)
	if err := st.DeleteSession(ctx, addr); err != nil {
		return err
	}
	return st.SaveIdentity(ctx, addr, key)
}

// BundleIdentity returns the identity key carried by a bundle.
func BundleIdentity(b *chatdv1.PreKeyBundle) (*identity.Key, error) {
	k, err := ecc.DecodePoint(b.GetIdentityKey(), 0)
	if err != nil {
		return nil, err
	}
	return identity.NewKey(k), nil
}

// Seal pads and encrypts plaintext for peer. Without a session with peer,
// b must be the peer's bundle; a session is then built from it (a bundle
// with an identity other than the trusted one returns ErrIdentityChanged).
func Seal(ctx context.Context, st Store, peer string, plaintext []byte, b *chatdv1.PreKeyBundle) (*chatdv1.Enc, error) {
	addr := Address(peer)
	builder := session.NewBuilderFromSignal(st, addr, Serializer)
	has, err := st.ContainsSession(ctx, addr)
	if err != nil {
		return nil, err
	}
	if !has {
		if b == nil {
			return nil, ErrNoSession
		}
		pb, err := bundle(b)
		if err != nil {
			return nil, err
		}
		if err := builder.ProcessBundle(ctx, pb); err != nil {
			if errors.Is(err, signalerror.ErrUntrustedIdentity) {
				return nil, ErrIdentityChanged
			}
			return nil, fmt.Errorf("build session with %s: %w", peer, err)
		}
	}
	ct, err := session.NewCipher(builder, addr).Encrypt(ctx, Pad(plaintext))
	if err != nil {
		if errors.Is(err, signalerror.ErrUntrustedIdentity) {
			return nil, ErrIdentityChanged
		}
		return nil, fmt.Errorf("encrypt for %s: %w", peer, err)
	}
	typ := chatdv1.EncType_ENC_TYPE_MSG
	if ct.Type() == protocol.PREKEY_TYPE {
		typ = chatdv1.EncType_ENC_TYPE_PKMSG
	}
	return &chatdv1.Enc{Type: typ, V: 2, Ciphertext: ct.Serialize()}, nil
}

// Opened is a decrypted payload.
type Opened struct {
	Plaintext []byte
	// Identity is the sender's identity key as carried by a pre-key message
	// (nil for a normal message).
	Identity *identity.Key
}

// Open decrypts a payload from peer and removes the padding. Errors:
// ErrDuplicate, ErrIdentityChanged (a pre-key message under a new identity;
// Opened.Identity holds it), ErrUndecryptable.
func Open(ctx context.Context, st Store, peer string, enc *chatdv1.Enc) (Opened, error) {
	addr := Address(peer)
	builder := session.NewBuilderFromSignal(st, addr, Serializer)
	cipher := session.NewCipher(builder, addr)
	var (
		out Opened
		pt  []byte
		err error
	)
	switch enc.GetType() {
	case chatdv1.EncType_ENC_TYPE_PKMSG:
		msg, perr := protocol.NewPreKeySignalMessageFromBytes(enc.GetCiphertext(), Serializer.PreKeySignalMessage, Serializer.SignalMessage)
		if perr != nil {
			return out, fmt.Errorf("%w: %v", ErrUndecryptable, perr)
		}
		out.Identity = msg.IdentityKey()
		pt, err = cipher.DecryptMessage(ctx, msg)
	case chatdv1.EncType_ENC_TYPE_MSG:
		msg, perr := protocol.NewSignalMessageFromBytes(enc.GetCiphertext(), Serializer.SignalMessage)
		if perr != nil {
			return out, fmt.Errorf("%w: %v", ErrUndecryptable, perr)
		}
		pt, err = cipher.Decrypt(ctx, msg)
	default:
		return out, fmt.Errorf("%w: payload type %s", ErrUndecryptable, enc.GetType())
	}
	switch {
	case err == nil:
	case errors.Is(err, signalerror.ErrOldCounter):
		return out, ErrDuplicate
	case errors.Is(err, signalerror.ErrUntrustedIdentity):
		return out, ErrIdentityChanged
	default:
		return out, fmt.Errorf("%w: %v", ErrUndecryptable, err)
	}
	if out.Plaintext, err = Unpad(pt); err != nil {
		return out, fmt.Errorf("%w: %v", ErrUndecryptable, err)
	}
	return out, nil
}

// Pad appends 1 to 16 bytes, each holding the pad length, so the length of a
// ciphertext does not give away the exact length of the message.
func Pad(b []byte) []byte {
	var r [1]byte
	rand.Read(r[:])
	n := int(r[0]&0x0f) + 1
	out := make([]byte, len(b), len(b)+n)
	copy(out, b)
	for range n {
		out = append(out, byte(n))
	}
	return out
}

// Unpad removes Pad's padding.
func Unpad(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, errors.New("empty plaintext")
	}
	n := int(b[len(b)-1])
	if n < 1 || n > 16 || n > len(b) {
		return nil, errors.New("bad padding")
	}
	for _, c := range b[len(b)-n:] {
		if int(c) != n {
			return nil, errors.New("bad padding")
		}
	}
	return b[:len(b)-n], nil
}
