package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openwaba/openwaba/db"
)

// PrefixLen is the length of the public prefix by which a key is found.
const PrefixLen = 8

// APIKey is a per-number key for the D360-API-KEY header. Key holds the full
// secret only in CreateAPIKey's result; it is never stored.
type APIKey struct {
	Key       string
	Prefix    string
	WaID      string
	CreatedBy string
	CreatedAt time.Time
}

// CreateAPIKey mints a key for the number wa_id.
func (s *Store) CreateAPIKey(ctx context.Context, waID, createdBy string) (APIKey, error) {
	for attempt := 0; ; attempt++ {
		key := rand.Text() + rand.Text() // 52 base32 characters, 260 random bits
		k := APIKey{Key: key, Prefix: key[:PrefixLen], WaID: waID, CreatedBy: createdBy, CreatedAt: time.UnixMilli(s.now().UnixMilli()).UTC()}
		h := sha256.Sum256([]byte(key))
		_, err := s.db.ExecContext(ctx,
			"INSERT INTO api_keys (prefix, hash, wa_id, created_by, created_at) VALUES (?, ?, ?, ?, ?)",
			k.Prefix, h[:], waID, createdBy, k.CreatedAt.UnixMilli())
		if db.IsDuplicate(err) && attempt < 3 { // a prefix collision: draw again
			continue
		}
		if err != nil {
			return APIKey{}, fmt.Errorf("create API key for %s: %w", waID, err)
		}
		return k, nil
	}
}

// ListAPIKeys returns every key, without secrets, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT prefix, wa_id, created_by, created_at FROM api_keys ORDER BY created_at, prefix")
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	defer rows.Close()
	var keys []APIKey
	for rows.Next() {
		var (
			k  APIKey
			at int64
		)
		if err := rows.Scan(&k.Prefix, &k.WaID, &k.CreatedBy, &at); err != nil {
			return nil, fmt.Errorf("list API keys: %w", err)
		}
		k.CreatedAt = time.UnixMilli(at).UTC()
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey deletes the key with the given prefix; it stops working on
// this process at once, and on the others within CacheTTL.
func (s *Store) RevokeAPIKey(ctx context.Context, prefix string) error {
	res, err := s.db.ExecContext(ctx, "DELETE FROM api_keys WHERE prefix = ?", prefix)
	s.keys.deleteFunc(func(k APIKey) bool { return k.Prefix == prefix }) // after the DELETE: see cache
	if err != nil {
		return fmt.Errorf("revoke API key %s: %w", prefix, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("revoke API key %s: %w", prefix, ErrAPIKeyNotFound)
	}
	return nil
}

// ValidateAPIKey returns the key's record (without the secret), or
// ErrInvalidAPIKey.
func (s *Store) ValidateAPIKey(ctx context.Context, key string) (APIKey, error) {
	if len(key) <= PrefixLen || len(key) > 256 {
		return APIKey{}, ErrInvalidAPIKey
	}
	h := sha256.Sum256([]byte(key))
	now := s.now()
	if k, ok := s.keys.get(h, now); ok {
		return k, nil
	}
	gen := s.keys.generation()
	var (
		k      = APIKey{Prefix: key[:PrefixLen]}
		stored []byte
		at     int64
	)
	err := s.db.QueryRowContext(ctx, "SELECT hash, wa_id, created_by, created_at FROM api_keys WHERE prefix = ?", k.Prefix).
		Scan(&stored, &k.WaID, &k.CreatedBy, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, ErrInvalidAPIKey
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("validate API key: %w", err)
	}
	if subtle.ConstantTimeCompare(stored, h[:]) != 1 {
		return APIKey{}, ErrInvalidAPIKey
	}
	k.CreatedAt = time.UnixMilli(at).UTC()
	s.keys.put(h, k, now.Add(s.opts.CacheTTL), now, gen)
	return k, nil
}
