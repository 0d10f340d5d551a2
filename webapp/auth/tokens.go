package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// tokenLen is the length of a token: 32 random bytes, unpadded base64url.
var tokenLen = base64.RawURLEncoding.EncodedLen(32)

// Token is a bearer token issued by Login.
type Token struct {
	Value     string
	ExpiresAt time.Time
}

// Session is what a valid token stands for.
type Session struct {
	Username  string
	Role      Role
	ExpiresAt time.Time
}

// Login checks a username and password and issues a token. When the user
// must change its password, newPassword must be set (else
// ErrPasswordChangeRequired); a non-empty newPassword is checked against the
// policy and stored before the token is issued (revoking the user's other
// tokens). addr is the client's address, counted with the username by the
// login throttle (see ThrottleOptions): a blocked user or address gets a
// *ThrottledError before any password is checked; a saturated hashing pool
// ErrBusy.
func (s *Store) Login(ctx context.Context, addr, username, password, newPassword string) (Token, error) {
	keys := throttleKeys(username, addr)
	if err := s.checkThrottle(ctx, keys); err != nil {
		return Token{}, err
	}
	var (
		hash   []byte
		change bool
		found  = true
	)
	err := s.db.QueryRowContext(ctx,
		"SELECT password_hash, password_change_required FROM users WHERE username = ?", username).Scan(&hash, &change)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		hash, found = s.dummyHash(), false // same time as a wrong password
	case err != nil:
		return Token{}, fmt.Errorf("login %s: %w", username, err)
	}
	ok, err := s.compare(ctx, hash, password)
	if err != nil {
		return Token{}, err
	}
	if !ok || !found {
		if err := s.recordFailure(ctx, keys); err != nil {
			return Token{}, fmt.Errorf("login %s: %w", username, err)
		}
		return Token{}, ErrInvalidCredentials
	}
	if err := s.clearFailures(ctx, keys); err != nil {
		return Token{}, fmt.Errorf("login %s: %w", username, err)
	}
	if change && newPassword == "" {
		return Token{}, ErrPasswordChangeRequired
	}
	if newPassword != "" {
		if err := s.SetPassword(ctx, username, newPassword, ""); err != nil {
			return Token{}, err
		}
	}
	return s.issueToken(ctx, username)
}

func (s *Store) issueToken(ctx context.Context, username string) (Token, error) {
	var b [32]byte
	rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	h := sha256.Sum256([]byte(tok))
	now := s.now()
	exp := now.Add(s.opts.TokenLifetime)
	if _, err := s.db.ExecContext(ctx,
		"INSERT INTO tokens (hash, username, expires_at, created_at) VALUES (?, ?, ?, ?)",
		h[:], username, exp.UnixMilli(), now.UnixMilli()); err != nil {
		return Token{}, fmt.Errorf("issue token for %s: %w", username, err)
	}
	// Housekeeping: drop this user's expired tokens.
	if _, err := s.db.ExecContext(ctx, "DELETE FROM tokens WHERE username = ? AND expires_at <= ?", username, now.UnixMilli()); err != nil {
		return Token{}, fmt.Errorf("issue token for %s: %w", username, err)
	}
	return Token{Value: tok, ExpiresAt: time.UnixMilli(exp.UnixMilli()).UTC()}, nil
}

// ValidateToken returns the session a token stands for, or ErrInvalidToken
// (unknown, malformed or revoked) or ErrTokenExpired.
func (s *Store) ValidateToken(ctx context.Context, token string) (Session, error) {
	if len(token) != tokenLen {
		return Session{}, ErrInvalidToken
	}
	h := sha256.Sum256([]byte(token))
	now := s.now()
	if v, ok := s.tokens.get(h, now); ok {
		return v, nil
	}
	gen := s.tokens.generation()
	var (
		v   Session
		exp int64
	)
	err := s.db.QueryRowContext(ctx,
		"SELECT t.username, u.role, t.expires_at FROM tokens t JOIN users u ON u.username = t.username WHERE t.hash = ?", h[:]).
		Scan(&v.Username, &v.Role, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrInvalidToken
	}
	if err != nil {
		return Session{}, fmt.Errorf("validate token: %w", err)
	}
	v.ExpiresAt = time.UnixMilli(exp)
	if !now.Before(v.ExpiresAt) {
		return Session{}, ErrTokenExpired
	}
	s.tokens.put(h, v, minTime(now.Add(s.opts.CacheTTL), v.ExpiresAt), now, gen)
	return v, nil
}

// RevokeToken deletes a token: at once on this process, within CacheTTL on
// the others (they may have it cached). Revoking an unknown token is not an
// error.
func (s *Store) RevokeToken(ctx context.Context, token string) error {
	h := sha256.Sum256([]byte(token))
	_, err := s.db.ExecContext(ctx, "DELETE FROM tokens WHERE hash = ?", h[:])
	s.tokens.delete(h) // after the DELETE: see cache
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
