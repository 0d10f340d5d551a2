// Package profile stores each number's business profile (the rules are
// package api/profile's): one JSON document per account in
// business_profiles, changed under a row lock so concurrent updates do not
// lose each other's fields.
package profile

import (
	"context"
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
