package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/openwaba/openwaba/db"
)

// Login throttling. Failures are counted per user and per client address
// in the login_failures table, so every webapp of a deployment shares them:
// after FreeFailures failures of a key, each further failure blocks it for
// BlockBase × 2^(extra failures), at most BlockMax; a login attempt while a
// key is blocked is refused with a *ThrottledError before any password is
// checked. A successful login deletes the keys of that user and address.
// Failures older than FailureWindow no longer count.
//
// Password hashing (bcrypt) runs in a small pool of PoolSize workers; a
// request that cannot get a worker within PoolWait, or finds PoolQueue
// requests already waiting, fails with ErrBusy, so a flood of logins cannot
// take the CPU every other route needs.

// ThrottleOptions tune login throttling and the hashing pool. Zero values
// take the defaults.
type ThrottleOptions struct {
	FreeFailures  int           // 5
	BlockBase     time.Duration // 1 s
	BlockMax      time.Duration // 15 min
	FailureWindow time.Duration // 1 h
	PoolSize      int           // half the CPUs, at least 1
	PoolQueue     int           // 32
	PoolWait      time.Duration // 3 s
}

func (o *ThrottleOptions) defaults() {
	if o.FreeFailures <= 0 {
		o.FreeFailures = 5
	}
	if o.BlockBase <= 0 {
		o.BlockBase = time.Second
	}
	if o.BlockMax <= 0 {
		o.BlockMax = 15 * time.Minute
	}
	if o.FailureWindow <= 0 {
		o.FailureWindow = time.Hour
	}
	if o.PoolSize <= 0 {
		o.PoolSize = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if o.PoolQueue <= 0 {
		o.PoolQueue = 32
	}
	if o.PoolWait <= 0 {
		o.PoolWait = 3 * time.Second
	}
}

// ThrottledError refuses a login attempt of a blocked user or address.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins: retry in %s", e.RetryAfter.Round(time.Second))
}

// ErrBusy is returned when the password hashing pool is saturated.
var ErrBusy = errors.New("too many password checks in progress")

// throttleKeys are the keys a login attempt counts against.
func throttleKeys(username, addr string) []string {
	keys := []string{"user:" + strings.ToLower(username)}
	if addr != "" {
		keys = append(keys, "addr:"+addr)
	}
	for i, k := range keys {
		if len(k) > 191 {
			keys[i] = k[:191]
		}
	}
	return keys
}

// checkThrottle refuses the attempt while any of its keys is blocked. A
// block this process has seen is answered from memory (a block cannot end
// early: a login while blocked is refused everywhere, so nothing clears it),
// so a flood from a blocked address costs no database round trip.
func (s *Store) checkThrottle(ctx context.Context, keys []string) error {
	now := s.now()
	s.blockMu.Lock()
	var until time.Time
	for _, k := range keys {
		if u, ok := s.blocked[k]; ok {
			if now.Before(u) {
				until = maxTime(until, u)
			} else {
				delete(s.blocked, k)
			}
		}
	}
	s.blockMu.Unlock()
	if !until.IsZero() {
		return &ThrottledError{RetryAfter: until.Sub(now)}
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	rows, err := s.db.QueryContext(ctx, "SELECT throttle_key, blocked_until FROM login_failures WHERE throttle_key IN ("+db.Placeholders(len(keys))+") AND blocked_until > ?",
		append(args, now.UnixMilli())...)
	if err != nil {
		return fmt.Errorf("login throttle: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var ms int64
		if err := rows.Scan(&k, &ms); err != nil {
			return fmt.Errorf("login throttle: %w", err)
		}
		u := time.UnixMilli(ms)
		until = maxTime(until, u)
		s.rememberBlock(k, u)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("login throttle: %w", err)
	}
	if !until.IsZero() {
		return &ThrottledError{RetryAfter: until.Sub(now)}
	}
	return nil
}

// maxBlocked bounds the in-memory copy of blocks.
const maxBlocked = 10000

func (s *Store) rememberBlock(k string, until time.Time) {
	s.blockMu.Lock()
	defer s.blockMu.Unlock()
	if len(s.blocked) >= maxBlocked {
		now := s.now()
		for key, u := range s.blocked {
			if !now.Before(u) || len(s.blocked) >= maxBlocked {
				delete(s.blocked, key)
			}
		}
	}
	s.blocked[k] = until
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// recordFailure counts a failed attempt against every key.
func (s *Store) recordFailure(ctx context.Context, keys []string) error {
	o := s.opts.Throttle
	now := s.now()
	return db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		for _, k := range keys {
			var failures int
			var updated int64
			err := tx.QueryRowContext(ctx, "SELECT failures, updated_at FROM login_failures WHERE throttle_key = ? FOR UPDATE", k).Scan(&failures, &updated)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if now.Sub(time.UnixMilli(updated)) > o.FailureWindow {
				failures = 0
			}
			failures++
			var blocked int64
			if extra := failures - o.FreeFailures; extra > 0 {
				d := o.BlockMax
				if extra < 31 {
					d = min(o.BlockBase<<(extra-1), o.BlockMax)
				}
				blocked = now.Add(d).UnixMilli()
				s.rememberBlock(k, time.UnixMilli(blocked))
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO login_failures (throttle_key, failures, blocked_until, updated_at) VALUES (?, ?, ?, ?)
				ON DUPLICATE KEY UPDATE failures = VALUES(failures), blocked_until = VALUES(blocked_until), updated_at = VALUES(updated_at)`,
				k, failures, blocked, now.UnixMilli()); err != nil {
				return err
			}
		}
		return nil
	})
}

// clearFailures forgets the failures of every key.
func (s *Store) clearFailures(ctx context.Context, keys []string) error {
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	_, err := s.db.ExecContext(ctx, "DELETE FROM login_failures WHERE throttle_key IN ("+db.Placeholders(len(keys))+")", args...)
	return err
}

// withHasher runs f (bcrypt) on a worker of the hashing pool.
func (s *Store) withHasher(ctx context.Context, f func()) error {
	if s.waiting.Add(1) > int64(s.opts.Throttle.PoolQueue+s.opts.Throttle.PoolSize) {
		s.waiting.Add(-1)
		return ErrBusy
	}
	defer s.waiting.Add(-1)
	t := time.NewTimer(s.opts.Throttle.PoolWait)
	defer t.Stop()
	select {
	case s.hashers <- struct{}{}:
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.hashers }()
	f()
	return nil
}
