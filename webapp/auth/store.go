package auth

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/openwaba/openwaba/db"
)

// Role is a user's role. Only the admin user has RoleAdmin.
type Role string

const (
	RoleAdmin Role = "ADMIN"
	RoleUser  Role = "USER"
)

// The seeded administrator.
const (
	AdminUsername        = "admin"
	AdminInitialPassword = "secret"
)

// Errors returned by the Store.
var (
	ErrInvalidCredentials     = errors.New("invalid username or password")
	ErrPasswordChangeRequired = errors.New("password change required")
	ErrUserExists             = errors.New("user already exists")
	ErrUserNotFound           = errors.New("user not found")
	ErrAdminUndeletable       = errors.New("the admin user cannot be deleted")
	ErrInvalidToken           = errors.New("invalid token")
	ErrTokenExpired           = errors.New("token expired")
	ErrInvalidAPIKey          = errors.New("invalid API key")
	ErrAPIKeyNotFound         = errors.New("API key not found")
)

// Options tune a Store. Zero values take the defaults.
type Options struct {
	TokenLifetime time.Duration    // 7 days
	CacheTTL      time.Duration    // 10 s; negative disables the cache
	CacheSize     int              // 10000 entries per cache
	BcryptCost    int              // bcrypt.DefaultCost
	Now           func() time.Time // time.Now
	Throttle      ThrottleOptions
}

// Store reads and writes users, tokens and API keys.
type Store struct {
	db   *sql.DB
	opts Options

	tokens *cache[Session]
	keys   *cache[APIKey]

	hashers chan struct{} // the hashing pool's workers
	waiting atomic.Int64  // requests in the pool or waiting for it

	blockMu sync.Mutex           // guards blocked
	blocked map[string]time.Time // login throttle keys known to be blocked, until when

	dummyHash func() []byte // compared against when a user does not exist
}

// User is an API user.
type User struct {
	Username               string
	Role                   Role
	PasswordChangeRequired bool
	CreatedAt, UpdatedAt   time.Time
}

// New returns a Store on d, whose schema must already be migrated.
func New(d *sql.DB, opts Options) *Store {
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = 7 * 24 * time.Hour
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = 10 * time.Second
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	if opts.CacheTTL < 0 {
		opts.CacheSize = 0
	}
	if opts.BcryptCost == 0 {
		opts.BcryptCost = bcrypt.DefaultCost
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.Throttle.defaults()
	s := &Store{
		db:      d,
		opts:    opts,
		tokens:  newCache[Session](opts.CacheSize),
		keys:    newCache[APIKey](opts.CacheSize),
		hashers: make(chan struct{}, opts.Throttle.PoolSize),
		blocked: map[string]time.Time{},
	}
	s.dummyHash = sync.OnceValue(func() []byte {
		h, _ := bcrypt.GenerateFromPassword([]byte("no such user, no such password"), opts.BcryptCost)
		return h
	})
	return s
}

func (s *Store) now() time.Time { return s.opts.Now() }

// hash hashes pw on the hashing pool.
func (s *Store) hash(ctx context.Context, pw string) (string, error) {
	var h []byte
	var err error
	if perr := s.withHasher(ctx, func() { h, err = bcrypt.GenerateFromPassword([]byte(pw), s.opts.BcryptCost) }); perr != nil {
		return "", perr
	}
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// compare checks pw against a hash on the hashing pool.
func (s *Store) compare(ctx context.Context, hash []byte, pw string) (bool, error) {
	var err error
	if perr := s.withHasher(ctx, func() { err = bcrypt.CompareHashAndPassword(hash, []byte(pw)) }); perr != nil {
		return false, perr
	}
	return err == nil, nil
}

// SeedAdmin creates the admin user with the initial password and a pending
// password change, unless it exists. Several webapps may call it at once.
func (s *Store) SeedAdmin(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM users WHERE username = ?", AdminUsername).Scan(&n); err != nil {
		return fmt.Errorf("seed admin: %w", err)
	}
	if n > 0 {
		return nil
	}
	h, err := s.hash(ctx, AdminInitialPassword)
	if err != nil {
		return err
	}
	now := s.now().UnixMilli()
	_, err = s.db.ExecContext(ctx,
		"INSERT IGNORE INTO users (username, password_hash, role, password_change_required, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)",
		AdminUsername, h, RoleAdmin, now, now)
	if err != nil {
		return fmt.Errorf("seed admin: %w", err)
	}
	return nil
}

// CreateUser adds a user with RoleUser after checking the username and the
// password policy (errors are *InvalidError).
func (s *Store) CreateUser(ctx context.Context, username, password string) error {
	if err := CheckUsername(username); err != nil {
		return err
	}
	if err := checkNewPassword(username, password); err != nil {
		return err
	}
	h, err := s.hash(ctx, password)
	if err != nil {
		return err
	}
	now := s.now().UnixMilli()
	_, err = s.db.ExecContext(ctx,
		"INSERT INTO users (username, password_hash, role, password_change_required, created_at, updated_at) VALUES (?, ?, ?, 0, ?, ?)",
		username, h, RoleUser, now, now)
	if db.IsDuplicate(err) {
		return fmt.Errorf("create user %s: %w", username, ErrUserExists)
	}
	if err != nil {
		return fmt.Errorf("create user %s: %w", username, err)
	}
	return nil
}

// GetUser returns the user called username.
func (s *Store) GetUser(ctx context.Context, username string) (User, error) {
	var (
		u                User
		change           bool
		created, updated int64
	)
	err := s.db.QueryRowContext(ctx,
		"SELECT username, role, password_change_required, created_at, updated_at FROM users WHERE username = ?", username).
		Scan(&u.Username, &u.Role, &change, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("get user %s: %w", username, ErrUserNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %s: %w", username, err)
	}
	u.PasswordChangeRequired = change
	u.CreatedAt, u.UpdatedAt = time.UnixMilli(created), time.UnixMilli(updated)
	return u, nil
}

// SetPassword changes a user's password after checking the policy, clears
// any pending password change, and revokes every token of the user but
// keep (the token of the session that made the change, if it is the user's
// own; "" revokes all): at once on this process, within CacheTTL on the
// others.
func (s *Store) SetPassword(ctx context.Context, username, password, keep string) error {
	if err := checkNewPassword(username, password); err != nil {
		return err
	}
	h, err := s.hash(ctx, password)
	if err != nil {
		return err
	}
	keepHash := sha256.Sum256([]byte(keep))
	err = db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			"UPDATE users SET password_hash = ?, password_change_required = 0, updated_at = ? WHERE username = ?",
			h, s.now().UnixMilli(), username)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return ErrUserNotFound
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM tokens WHERE username = ? AND hash <> ?", username, keepHash[:])
		return err
	})
	if err != nil {
		return fmt.Errorf("set password of %s: %w", username, err)
	}
	// The kept token is read again from the database on its next use.
	s.tokens.deleteFunc(func(v Session) bool { return v.Username == username })
	return nil
}

// DeleteUser deletes a user and all its tokens. The admin user cannot be
// deleted.
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	if username == AdminUsername {
		return ErrAdminUndeletable
	}
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM users WHERE username = ?", username)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrUserNotFound
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM tokens WHERE username = ?", username)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete user %s: %w", username, err)
	}
	s.tokens.deleteFunc(func(v Session) bool { return v.Username == username })
	return nil
}
