// Package profile stores each number's business profile (the rules are
// package api/profile's): one JSON document per account in
// business_profiles, changed under a row lock so concurrent updates do not
// lose each other's fields.
package profile

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/openwaba/openwaba/api/profile"
	"github.com/openwaba/openwaba/db"
)

// Store reads and writes profiles. It is safe for concurrent use.
type Store struct{ db *sql.DB }

// NewStore returns a Store on d.
func NewStore(d *sql.DB) *Store { return &Store{db: d} }

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func get(ctx context.Context, q querier, accountID int64, lock bool) (profile.Business, error) {
	var p profile.Business
	query := "SELECT doc FROM business_profiles WHERE account_id = ?"
	if lock {
		query += " FOR UPDATE"
	}
	var doc []byte
	err := q.QueryRowContext(ctx, query, accountID).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("load business profile: %w", err)
	}
	if err := json.Unmarshal(doc, &p); err != nil {
		return p, fmt.Errorf("stored business profile of account %d: %w", accountID, err)
	}
	return p, nil
}

// Get returns the account's profile (empty when never set).
func (s *Store) Get(ctx context.Context, accountID int64) (profile.Business, error) {
	return get(ctx, s.db, accountID, false)
}

// Update applies a Cloud update body (profile.Update) and returns the new
// profile; an *errcode.Error is the body's fault.
func (s *Store) Update(ctx context.Context, accountID int64, update []byte) (profile.Business, error) {
	var next profile.Business
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		cur, err := get(ctx, tx, accountID, true)
		if err != nil {
			return err
		}
		if next, err = profile.Update(cur, update); err != nil {
			return err
		}
		doc, err := json.Marshal(next)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO business_profiles (account_id, doc, updated_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE doc = VALUES(doc), updated_at = VALUES(updated_at)",
			accountID, doc, db.NowMillis())
		return err
	})
	return next, err
}

// Photo is a number's profile photo.
type Photo struct {
	Mime   string // image/jpeg or image/png
	SHA256 []byte
	Data   []byte
}

// Photo returns the account's photo; ok is false when it has none.
func (s *Store) Photo(ctx context.Context, accountID int64) (p Photo, ok bool, err error) {
	err = s.db.QueryRowContext(ctx, "SELECT mime, sha256, data FROM business_photos WHERE account_id = ?", accountID).Scan(&p.Mime, &p.SHA256, &p.Data)
	if errors.Is(err, sql.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("load profile photo: %w", err)
	}
	return p, true, nil
}

// SetPhoto stores the account's photo (checked by the caller:
// api/profile.CheckPhoto).
func (s *Store) SetPhoto(ctx context.Context, accountID int64, mime string, data []byte) error {
	sum := sha256.Sum256(data)
	_, err := s.db.ExecContext(ctx, "INSERT INTO business_photos (account_id, mime, sha256, data, updated_at) VALUES (?, ?, ?, ?, ?) "+
		"ON DUPLICATE KEY UPDATE mime = VALUES(mime), sha256 = VALUES(sha256), data = VALUES(data), updated_at = VALUES(updated_at)",
		accountID, mime, sum[:], data, db.NowMillis())
	return err
}

// DeletePhoto removes the account's photo (none: no error).
func (s *Store) DeletePhoto(ctx context.Context, accountID int64) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM business_photos WHERE account_id = ?", accountID)
	return err
}

// Published is what the network shows of a number besides its name: the
// about text, the business profile (without about: it travels on its own)
// and the photo (Data nil: none).
type Published struct {
	About    string
	Business []byte // the Graph whatsapp_business_profile JSON
	Photo    Photo
}

// Published returns what the account publishes.
func (s *Store) Published(ctx context.Context, accountID int64) (Published, error) {
	b, err := s.Get(ctx, accountID)
	if err != nil {
		return Published{}, err
	}
	out := Published{About: b.About}
	b.About = ""
	if out.Business, err = json.Marshal(b); err != nil {
		return Published{}, err
	}
	if p, ok, err := s.Photo(ctx, accountID); err != nil {
		return Published{}, err
	} else if ok {
		out.Photo = p
	}
	return out, nil
}
