// Package backup writes and reads on-prem's settings backup
// (POST /v1/settings/backup and /v1/settings/restore): everything a number
// needs to work on another deployment without registering again.
//
// A backup holds the number's registration (number, verified name,
// certificate, shards), its key on the chat network, its Signal state
// (identity, registration id, pre-keys, signed pre-keys, sessions and the
// peers' identity keys: the customers see no identity change), its
// application settings (with the Cloud webhook's app secret), its business
// profile and photo, and its webhook endpoints (with their signing secrets). It does
// not hold messages, webhook events or media (as on-prem), nor media
// provider credentials (enter them again). Templates live on the network
// under the number and need nothing.
//
// Every private key and secret is opened with this deployment's keystore
// and the whole is encrypted under the caller's password: argon2id (time 3,
// 64 MiB, 4 lanes) derives an AES-256-GCM key from the password and a random
// salt; the data is
//
//	base64( "OWBK" | version 1 | salt (16) | nonce (12) | AES-GCM(gzip(JSON)) )
//
// with the first 33 bytes as additional data, so a wrong password and any
// change to the data are the same refusal, and nothing is restored.
// Restore seals every key again with the target deployment's keystore,
// bound to the number's id there, and writes everything in one transaction.
package backup

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/argon2"

	"github.com/openwaba/openwaba/coreapp/account"
	"github.com/openwaba/openwaba/coreapp/signalstore"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/keystore"
)

// Limits.
const (
	MinPassword = 8
	MaxPassword = 1024
	// MaxData is the longest backup (base64): it travels in one JSON body
	// and one gRPC message. A number whose backup would be longer is backed
	// up without its Signal sessions, which the customers' phones and the
	// restored number rebuild on their own (retry receipts, fresh pre-key
	// messages) without an identity change.
	MaxData = 3 << 20
)

// Errors a caller shows as they are.
var (
	// ErrDecrypt is a wrong password or damaged data.
	ErrDecrypt = errors.New("the password is wrong or the backup data is damaged")
	// ErrExists is a restore of a number this deployment already has.
	ErrExists = errors.New("this deployment already has the number; a backup is restored into a deployment without it")
	// ErrNotRegistered is a backup of a number that is not registered.
	ErrNotRegistered = errors.New("the number is not registered; only a registered number can be backed up")
	// ErrTooLarge is a backup over MaxData even without sessions.
	ErrTooLarge = fmt.Errorf("the backup would be larger than %d bytes", MaxData)
)

const (
	magic   = "OWBK"
	version = 1
	saltLen = 16
	header  = len(magic) + 1 + saltLen + 12 // with the nonce
)

// bundle is the plaintext of a backup.
type bundle struct {
	Version     int    `json:"version"`
	WaID        string `json:"wa_id"`
	CC          string `json:"cc"`
	PhoneNumber string `json:"phone_number"`
	VName       string `json:"vname"`
	Cert        string `json:"cert"`
	Shards      int    `json:"shards"`
	ChatPriv    []byte `json:"chat_priv"`
	ChatPub     []byte `json:"chat_pub"`

	RegistrationID uint32         `json:"registration_id"`
	IdentityPriv   []byte         `json:"identity_priv"`
	NextPreKeyID   uint32         `json:"next_prekey_id"`
	PreKeys        []preKey       `json:"prekeys"`
	SignedPreKeys  []signedPreKey `json:"signed_prekeys"`
	Sessions       []session      `json:"sessions"`
	Identities     []identity     `json:"identities"`

	Settings  json.RawMessage `json:"settings,omitempty"` // app_settings.doc, app secret opened
	AppSecret []byte          `json:"app_secret,omitempty"`
	Profile   json.RawMessage `json:"profile,omitempty"`
	PhotoMime string          `json:"photo_mime,omitempty"`
	Photo     []byte          `json:"photo,omitempty"`
	Endpoints []endpoint      `json:"webhook_endpoints"`
}

type preKey struct {
	ID   uint32 `json:"id"`
	Priv []byte `json:"priv"`
}

type signedPreKey struct {
	ID        uint32 `json:"id"`
	Priv      []byte `json:"priv"`
	Signature []byte `json:"signature"`
	TS        int64  `json:"ts"`
}

type session struct {
	Address string `json:"address"`
	Record  []byte `json:"record"`
}

type identity struct {
	Address string `json:"address"`
	Key     []byte `json:"key"`
}

type endpoint struct {
	IsDefault       bool   `json:"is_default"`
	URL             string `json:"url"`
	Headers         []byte `json:"headers"`
	Format          string `json:"format"`
	Events          []byte `json:"events"`
	ByTenant        bool   `json:"by_tenant"`
	Secret          []byte `json:"secret,omitempty"`
	PrevSecret      []byte `json:"prev_secret,omitempty"`
	PrevSecretUntil int64  `json:"prev_secret_until"`
}

// appSecretField is where settings keep the sealed Cloud app secret.
const appSecretField = "webhook_app_secret"

// Store backs up and restores numbers of one deployment.
type Store struct {
	db *sql.DB
	ks *keystore.Keystore
}

// New returns a Store over the coreapp database d and its keystore.
func New(d *sql.DB, ks *keystore.Keystore) *Store { return &Store{db: d, ks: ks} }

// Backup returns the encrypted backup of account a.
func (s *Store) Backup(ctx context.Context, a account.Account, password string) (string, error) {
	if !a.Verified() {
		return "", ErrNotRegistered
	}
	b, err := s.read(ctx, a)
	if err != nil {
		return "", err
	}
	for {
		plain, err := compress(b)
		if err != nil {
			return "", err
		}
		data, err := seal(plain, password)
		switch {
		case err != nil:
			return "", err
		case len(data) <= MaxData:
			return data, nil
		case len(b.Sessions) > 0:
			b.Sessions = []session{} // see MaxData
		default:
			return "", ErrTooLarge
		}
	}
}

// compress is b as gzipped JSON.
func compress(b *bundle) ([]byte, error) {
	var buf bytes.Buffer
	z := gzip.NewWriter(&buf)
	if err := json.NewEncoder(z).Encode(b); err != nil {
		return nil, err
	}
	if err := z.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decompress reads a bundle, at most maxPlain bytes of JSON.
func decompress(plain []byte) (*bundle, error) {
	z, err := gzip.NewReader(bytes.NewReader(plain))
	if err != nil {
		return nil, err
	}
	var b bundle
	if err := json.NewDecoder(io.LimitReader(z, maxPlain)).Decode(&b); err != nil {
		return nil, err
	}
	return &b, nil
}

// maxPlain bounds a backup's JSON once decompressed.
const maxPlain = 64 << 20

// read gathers account a's state in one read transaction.
func (s *Store) read(ctx context.Context, a account.Account) (*bundle, error) {
	b := &bundle{Version: version, WaID: a.WaID, CC: a.CC, PhoneNumber: a.PhoneNumber, VName: a.VName, Shards: a.Shards,
		PreKeys: []preKey{}, SignedPreKeys: []signedPreKey{}, Sessions: []session{}, Identities: []identity{}, Endpoints: []endpoint{}}
	id := a.ID
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		b.PreKeys, b.SignedPreKeys, b.Sessions, b.Identities, b.Endpoints = b.PreKeys[:0], b.SignedPreKeys[:0], b.Sessions[:0], b.Identities[:0], b.Endpoints[:0]
		if err := tx.QueryRowContext(ctx, "SELECT cert FROM accounts WHERE id = ?", id).Scan(&b.Cert); err != nil {
			return fmt.Errorf("account: %w", err)
		}
		var sealed []byte
		if err := tx.QueryRowContext(ctx, "SELECT static_priv, static_pub FROM chat_keys WHERE account_id = ?", id).Scan(&sealed, &b.ChatPub); err != nil {
			return fmt.Errorf("chat key: %w", err)
		}
		var err error
		if b.ChatPriv, err = s.ks.Open(sealed, account.ChatKeyContext(id)); err != nil {
			return fmt.Errorf("chat key: %w", err)
		}
		if err := tx.QueryRowContext(ctx, "SELECT registration_id, identity_priv, next_prekey_id FROM signal_identity WHERE account_id = ?", id).Scan(&b.RegistrationID, &sealed, &b.NextPreKeyID); err != nil {
			return fmt.Errorf("signal identity: %w", err)
		}
		if b.IdentityPriv, err = s.ks.Open(sealed, signalstore.IdentityContext(id)); err != nil {
			return fmt.Errorf("signal identity: %w", err)
		}
		if err := rows(ctx, tx, "SELECT key_id, priv FROM signal_prekeys WHERE account_id = ? ORDER BY key_id", id, func(r *sql.Rows) error {
			var k preKey
			var sealed []byte
			if err := r.Scan(&k.ID, &sealed); err != nil {
				return err
			}
			var err error
			if k.Priv, err = s.ks.Open(sealed, signalstore.PreKeyContext(id, k.ID)); err != nil {
				return fmt.Errorf("pre-key %d: %w", k.ID, err)
			}
			b.PreKeys = append(b.PreKeys, k)
			return nil
		}); err != nil {
			return err
		}
		if err := rows(ctx, tx, "SELECT key_id, priv, signature, ts FROM signal_signed_prekeys WHERE account_id = ? ORDER BY key_id", id, func(r *sql.Rows) error {
			var k signedPreKey
			var sealed []byte
			if err := r.Scan(&k.ID, &sealed, &k.Signature, &k.TS); err != nil {
				return err
			}
			var err error
			if k.Priv, err = s.ks.Open(sealed, signalstore.SignedPreKeyContext(id, k.ID)); err != nil {
				return fmt.Errorf("signed pre-key %d: %w", k.ID, err)
			}
			b.SignedPreKeys = append(b.SignedPreKeys, k)
			return nil
		}); err != nil {
			return err
		}
		if err := rows(ctx, tx, "SELECT address, record FROM signal_sessions WHERE account_id = ? ORDER BY address", id, func(r *sql.Rows) error {
			var x session
			var sealed []byte
			if err := r.Scan(&x.Address, &sealed); err != nil {
				return err
			}
			var err error
			if x.Record, err = s.ks.Open(sealed, signalstore.SessionContext(id, x.Address)); err != nil {
				return fmt.Errorf("session %s: %w", x.Address, err)
			}
			b.Sessions = append(b.Sessions, x)
			return nil
		}); err != nil {
			return err
		}
		if err := rows(ctx, tx, "SELECT address, identity_key FROM signal_identities WHERE account_id = ? ORDER BY address", id, func(r *sql.Rows) error {
			var x identity
			if err := r.Scan(&x.Address, &x.Key); err != nil {
				return err
			}
			b.Identities = append(b.Identities, x)
			return nil
		}); err != nil {
			return err
		}
		b.Settings, b.AppSecret = nil, nil
		var doc string
		switch err := tx.QueryRowContext(ctx, "SELECT doc FROM app_settings WHERE account_id = ?", id).Scan(&doc); {
		case err == nil:
			if b.Settings, b.AppSecret, err = s.openSettings([]byte(doc)); err != nil {
				return err
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("settings: %w", err)
		}
		b.Profile = nil
		var profile []byte
		switch err := tx.QueryRowContext(ctx, "SELECT doc FROM business_profiles WHERE account_id = ?", id).Scan(&profile); {
		case err == nil:
			b.Profile = profile
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("profile: %w", err)
		}
		b.PhotoMime, b.Photo = "", nil
		var photoSHA []byte
		switch err := tx.QueryRowContext(ctx, "SELECT mime, sha256, data FROM business_photos WHERE account_id = ?", id).Scan(&b.PhotoMime, &photoSHA, &b.Photo); {
		case err == nil, errors.Is(err, sql.ErrNoRows):
		default:
			return fmt.Errorf("profile photo: %w", err)
		}
		return rows(ctx, tx, "SELECT is_default, url, headers, format, events, by_tenant, secret, prev_secret, prev_secret_until FROM webhook_endpoints WHERE account_id = ? ORDER BY id", id, func(r *sql.Rows) error {
			var e endpoint
			var def, tenant int
			var secret, prev []byte
			if err := r.Scan(&def, &e.URL, &e.Headers, &e.Format, &e.Events, &tenant, &secret, &prev, &e.PrevSecretUntil); err != nil {
				return err
			}
			e.IsDefault, e.ByTenant = def != 0, tenant != 0
			var err error
			if len(secret) > 0 {
				if e.Secret, err = s.ks.Open(secret, webhook.SecretContext); err != nil {
					return fmt.Errorf("webhook endpoint secret: %w", err)
				}
			}
			if len(prev) > 0 {
				if e.PrevSecret, err = s.ks.Open(prev, webhook.SecretContext); err != nil {
					return fmt.Errorf("webhook endpoint secret: %w", err)
				}
			}
			b.Endpoints = append(b.Endpoints, e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", a.WaID, err)
	}
	return b, nil
}

// openSettings returns the stored settings document without its sealed
// app secret, and the secret opened.
func (s *Store) openSettings(doc []byte) (json.RawMessage, []byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, nil, fmt.Errorf("settings: %w", err)
	}
	var secret []byte
	if raw, ok := m[appSecretField]; ok {
		var sealed []byte
		if err := json.Unmarshal(raw, &sealed); err != nil {
			return nil, nil, fmt.Errorf("settings app secret: %w", err)
		}
		var err error
		if secret, err = s.ks.Open(sealed, webhook.AppSecretContext); err != nil {
			return nil, nil, fmt.Errorf("settings app secret: %w", err)
		}
		delete(m, appSecretField)
	}
	out, err := json.Marshal(m)
	return out, secret, err
}

// Restore decrypts data with password and creates its number on this
// deployment, registered, with everything the backup holds. It returns the
// number. Nothing is written when the password is wrong, the data damaged
// or the number already here (a pending registration of it is replaced).
func (s *Store) Restore(ctx context.Context, data, password string) (string, error) {
	if len(data) > MaxData {
		return "", ErrDecrypt
	}
	plain, err := open(data, password)
	if err != nil {
		return "", err
	}
	b, err := decompress(plain)
	if err != nil || b.Version != version || b.WaID == "" || len(b.ChatPriv) == 0 || len(b.IdentityPriv) == 0 {
		return "", ErrDecrypt
	}
	err = db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		var old int64
		var state string
		switch err := tx.QueryRowContext(ctx, "SELECT id, state FROM accounts WHERE wa_id = ? FOR UPDATE", b.WaID).Scan(&old, &state); {
		case err == nil && state == account.StateVerified:
			return ErrExists
		case err == nil: // a pending registration: the backup replaces it
			for _, t := range []string{"chat_keys", "app_settings", "signal_identity", "signal_prekeys", "signal_signed_prekeys", "signal_sessions", "signal_identities", "business_profiles", "business_photos", "webhook_endpoints"} {
				if _, err := tx.ExecContext(ctx, "DELETE FROM "+t+" WHERE account_id = ?", old); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM accounts WHERE id = ?", old); err != nil {
				return err
			}
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		now := db.NowMillis()
		res, err := tx.ExecContext(ctx, "INSERT INTO accounts (wa_id, cc, phone_number, state, vname, cert, shards, created_at, verified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			b.WaID, b.CC, b.PhoneNumber, account.StateVerified, b.VName, b.Cert, max(b.Shards, 1), now, now)
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO chat_keys (account_id, static_priv, static_pub, created_at) VALUES (?, ?, ?, ?)",
			id, s.ks.Seal(b.ChatPriv, account.ChatKeyContext(id)), b.ChatPub, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO signal_identity (account_id, registration_id, identity_priv, next_prekey_id, created_at) VALUES (?, ?, ?, ?, ?)",
			id, b.RegistrationID, s.ks.Seal(b.IdentityPriv, signalstore.IdentityContext(id)), b.NextPreKeyID, now); err != nil {
			return err
		}
		for _, k := range b.PreKeys {
			if _, err := tx.ExecContext(ctx, "INSERT INTO signal_prekeys (account_id, key_id, priv, created_at) VALUES (?, ?, ?, ?)",
				id, k.ID, s.ks.Seal(k.Priv, signalstore.PreKeyContext(id, k.ID)), now); err != nil {
				return err
			}
		}
		for _, k := range b.SignedPreKeys {
			if _, err := tx.ExecContext(ctx, "INSERT INTO signal_signed_prekeys (account_id, key_id, priv, signature, ts) VALUES (?, ?, ?, ?, ?)",
				id, k.ID, s.ks.Seal(k.Priv, signalstore.SignedPreKeyContext(id, k.ID)), k.Signature, k.TS); err != nil {
				return err
			}
		}
		for _, x := range b.Sessions {
			if _, err := tx.ExecContext(ctx, "INSERT INTO signal_sessions (account_id, address, record, updated_at) VALUES (?, ?, ?, ?)",
				id, x.Address, s.ks.Seal(x.Record, signalstore.SessionContext(id, x.Address)), now); err != nil {
				return err
			}
		}
		for _, x := range b.Identities {
			if _, err := tx.ExecContext(ctx, "INSERT INTO signal_identities (account_id, address, identity_key, updated_at) VALUES (?, ?, ?, ?)",
				id, x.Address, x.Key, now); err != nil {
				return err
			}
		}
		doc, err := s.sealSettings(b.Settings, b.AppSecret)
		if err != nil {
			return err
		}
		if doc != nil {
			if _, err := tx.ExecContext(ctx, "INSERT INTO app_settings (account_id, doc, updated_at) VALUES (?, ?, ?)", id, string(doc), now); err != nil {
				return err
			}
		}
		if len(b.Profile) > 0 {
			if _, err := tx.ExecContext(ctx, "INSERT INTO business_profiles (account_id, doc, updated_at) VALUES (?, ?, ?)", id, []byte(b.Profile), now); err != nil {
				return err
			}
		}
		if len(b.Photo) > 0 {
			sum := sha256.Sum256(b.Photo)
			if _, err := tx.ExecContext(ctx, "INSERT INTO business_photos (account_id, mime, sha256, data, updated_at) VALUES (?, ?, ?, ?, ?)", id, b.PhotoMime, sum[:], b.Photo, now); err != nil {
				return err
			}
		}
		for _, e := range b.Endpoints {
			var secret, prev []byte
			if len(e.Secret) > 0 {
				secret = s.ks.Seal(e.Secret, webhook.SecretContext)
			}
			if len(e.PrevSecret) > 0 {
				prev = s.ks.Seal(e.PrevSecret, webhook.SecretContext)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO webhook_endpoints (account_id, is_default, url, headers, format, events, by_tenant, secret, prev_secret, prev_secret_until, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
				id, e.IsDefault, e.URL, e.Headers, e.Format, e.Events, e.ByTenant, secret, prev, e.PrevSecretUntil, now, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrExists) {
			return "", err
		}
		return "", fmt.Errorf("restore %s: %w", b.WaID, err)
	}
	return b.WaID, nil
}

// sealSettings is openSettings the other way round (nil: no settings).
func (s *Store) sealSettings(doc json.RawMessage, secret []byte) ([]byte, error) {
	if len(doc) == 0 {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	if len(secret) > 0 {
		raw, err := json.Marshal(s.ks.Seal(secret, webhook.AppSecretContext))
		if err != nil {
			return nil, err
		}
		m[appSecretField] = raw
	}
	return json.Marshal(m)
}

func rows(ctx context.Context, tx *sql.Tx, q string, id int64, scan func(*sql.Rows) error) error {
	r, err := tx.QueryContext(ctx, q, id)
	if err != nil {
		return err
	}
	defer r.Close()
	for r.Next() {
		if err := scan(r); err != nil {
			return err
		}
	}
	return r.Err()
}

// kdf derives the backup key from password and salt.
func kdf(password string, salt []byte) []byte {
	return argon2.IDKey([]byte(password), salt, 3, 64*1024, 4, 32)
}

// seal encrypts plain under password (the package doc's format).
func seal(plain []byte, password string) (string, error) {
	buf := make([]byte, header, header+len(plain)+16)
	copy(buf, magic)
	buf[len(magic)] = version
	if _, err := rand.Read(buf[len(magic)+1 : header]); err != nil {
		return "", err
	}
	gcm, err := newGCM(password, buf[len(magic)+1:len(magic)+1+saltLen])
	if err != nil {
		return "", err
	}
	out := gcm.Seal(buf, buf[len(magic)+1+saltLen:header], plain, buf[:header])
	return base64.StdEncoding.EncodeToString(out), nil
}

// open is seal's inverse; every failure is ErrDecrypt.
func open(data, password string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil || len(raw) < header+16 || string(raw[:len(magic)]) != magic || raw[len(magic)] != version {
		return nil, ErrDecrypt
	}
	gcm, err := newGCM(password, raw[len(magic)+1:len(magic)+1+saltLen])
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, raw[len(magic)+1+saltLen:header], raw[header:], raw[:header])
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

func newGCM(password string, salt []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(kdf(password, salt))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
