package db

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/openwaba/openwaba/db/migrations"
)

// Set names one database's migrations.
type Set int

const (
	// Core is the openwaba database: coreapp's business state and the
	// webapp's auth tables.
	Core Set = iota
	// Chatd is the network's database.
	Chatd
)

func (s Set) fs(sqlite bool) (fs.FS, error) {
	switch {
	case s == Core && sqlite:
		return fs.Sub(migrations.SQLite, "sqlite/core")
	case s == Chatd && sqlite:
		return fs.Sub(migrations.SQLite, "sqlite/chatd")
	case s == Core:
		return fs.Sub(migrations.Core, "core")
	case s == Chatd:
		return fs.Sub(migrations.Chatd, "chatd")
	}
	return nil, fmt.Errorf("unknown migration set %d", s)
}

func provider(db *sql.DB, s Set) (*goose.Provider, error) {
	sqlite := IsSQLite(db)
	fsys, err := s.fs(sqlite)
	if err != nil {
		return nil, err
	}
	if sqlite {
		return goose.NewProvider(goose.DialectSQLite3, db, fsys)
	}
	return goose.NewProvider(goose.DialectMySQL, db, fsys)
}

// Migrate applies every pending migration of set s. Processes starting
// together (several coreapps) take turns: a named database lock is held
// while migrating, so one applies the migrations and the others find them
// applied. On SQLite only one process migrates (coreapp holds LockSQLite;
// chatd has its own file), so no lock is taken.
func Migrate(ctx context.Context, db *sql.DB, s Set) error {
	p, err := provider(db, s)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if !IsSQLite(db) {
		unlock, err := lockMigrations(ctx, db, s)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		defer unlock()
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// lockMigrations takes MySQL's named lock for set s on a connection of its
// own and returns the function that releases it.
func lockMigrations(ctx context.Context, db *sql.DB, s Set) (unlock func(), err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("openwaba_migrate_%d", s)
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 300)", name).Scan(&got); err != nil {
		conn.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, fmt.Errorf("another process held the migration lock for 5 minutes")
	}
	// The lock's connection is idle while the pool migrates: ping it within
	// the session's wait_timeout, or the server would drop it and the lock.
	// A failed ping means the server dropped the connection and the lock
	// with it; the migration carries on regardless (stopping half-way
	// would be worse), so the error is not used. Four pings per
	// wait_timeout make that unlikely.
	keepCtx, stopKeep := context.WithCancel(ctx)
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		t := time.NewTicker(serverIdleTimeout / 4)
		defer t.Stop()
		for {
			select {
			case <-keepCtx.Done():
				return
			case <-t.C:
				_ = conn.PingContext(keepCtx)
			}
		}
	}()
	return func() {
		stopKeep()
		<-kept
		conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", name)
		conn.Close()
	}, nil
}

// WaitForSchema blocks until another process (coreapp) has applied every
// migration of set s that this binary knows, or ctx ends.
func WaitForSchema(ctx context.Context, db *sql.DB, s Set, onWait func(current, want int64)) error {
	p, err := provider(db, s)
	if err != nil {
		return err
	}
	srcs := p.ListSources()
	want := srcs[len(srcs)-1].Version
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		cur, err := p.GetDBVersion(ctx)
		if err == nil && cur >= want {
			return nil
		}
		if onWait != nil {
			onWait(cur, want)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for schema version %d (have %d): %w", want, cur, ctx.Err())
		case <-t.C:
		}
	}
}

// SchemaVersion is the newest migration of set s applied to db, and the
// newest this build knows: equal when the schema is current.
func SchemaVersion(ctx context.Context, db *sql.DB, s Set) (applied, known int64, err error) {
	p, err := provider(db, s)
	if err != nil {
		return 0, 0, err
	}
	if applied, err = p.GetDBVersion(ctx); err != nil {
		return 0, 0, err
	}
	srcs := p.ListSources()
	if len(srcs) > 0 {
		known = srcs[len(srcs)-1].Version
	}
	return applied, known, nil
}
