package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"modernc.org/sqlite"
)

// SQLite mode: one database file per Set in the data dir, for a single node
// (see docs/architecture.md, "Storage engines").
//
// The code writes its queries once, in MySQL's dialect. On SQLite each
// statement passes through toSQLite, which rewrites the few constructs the
// two engines spell differently:
//
//   - ON DUPLICATE KEY UPDATE c = VALUES(c)  → ON CONFLICT DO UPDATE SET c = excluded.c
//   - ON DUPLICATE KEY UPDATE c = c (the "ignore duplicates" idiom) → ON CONFLICT DO NOTHING
//   - INSERT IGNORE → INSERT OR IGNORE
//   - GREATEST / LEAST → max / min
//   - … FOR UPDATE [SKIP LOCKED], … LOCK IN SHARE MODE → dropped: every
//     transaction takes the database's single write lock at BEGIN (BEGIN
//     IMMEDIATE), which serialises more strictly than any row lock
//   - DELETE … LIMIT n → DELETE … WHERE rowid IN (SELECT rowid … LIMIT n)
//   - NowSQL's UNIX_TIMESTAMP(NOW(3)) → unixepoch('subsec')
//
// and LastInsertId of a multi-row INSERT reports the first new id, as MySQL
// does (SQLite reports the last). Anything else must be SQL both engines
// read alike; the store tests run on both engines to keep it so.
//
// Writers: SQLite has one writer at a time. Within a process, transactions
// and statements outside a transaction queue for a write lock of our own
// (a channel), so they wait in Go instead of in SQLite's busy handler, which
// sleeps; between processes (coreapp and webapp share the core database)
// SQLite's busy timeout (30 s) makes writers wait, and Tx retries
// SQLITE_BUSY like a MySQL deadlock. Readers never wait (WAL mode).

// sqliteBusyTimeout bounds how long a writer waits for another process's
// transaction before SQLite reports SQLITE_BUSY.
const sqliteBusyTimeout = 30 * time.Second

func openSQLite(ctx context.Context, cfg Config) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// Owner-only, like a MySQL data dir; SQLite gives its -wal and -shm
	// files the mode of the database file.
	f, err := os.OpenFile(cfg.Path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	f.Close()
	// synchronous=FULL: a commit survives a power cut, like InnoDB's
	// default; batched commits keep the fsyncs few.
	dsn := "file:" + cfg.Path + fmt.Sprintf("?_pragma=busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()) +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	c := &sqliteConnector{dsn: dsn, writer: make(chan struct{}, 1)}
	d := sql.OpenDB(c)
	max := cfg.MaxOpenConns
	if max <= 0 || max > 16 {
		max = 16 // readers run in parallel; writers take turns anyway
	}
	d.SetMaxOpenConns(max)
	d.SetMaxIdleConns(max)
	if err := d.PingContext(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("open %s: %w", cfg.Path, err)
	}
	return d, nil
}

// IsSQLite reports whether d was opened on the SQLite engine.
func IsSQLite(d *sql.DB) bool {
	_, ok := d.Driver().(sqliteDriver)
	return ok
}

// ErrSQLiteInUse is returned by LockSQLite when another process holds the
// lock.
var ErrSQLiteInUse = errors.New("the SQLite database is in use by another process")

// LockSQLite takes an exclusive lock named role beside the SQLite file of
// cfg, held until the returned file is closed or the process ends. coreapp
// takes it: SQLite mode is a single node, and a second coreapp on the same
// file is refused instead of fighting over the chat connection.
func LockSQLite(cfg Config, role string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(cfg.Path+"."+role+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrSQLiteInUse
		}
		return nil, err
	}
	return f, nil
}

type sqliteDriver struct{}

// Open is unused: the database is opened through its connector.
func (sqliteDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("open the SQLite database with db.Open")
}

type sqliteConnector struct {
	dsn    string
	writer chan struct{} // the in-process write lock: a token while held
}

func (c *sqliteConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := (&sqlite.Driver{}).Open(c.dsn)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(sqliteInner)
	if !ok {
		conn.Close()
		return nil, errors.New("sqlite driver lacks the context interfaces")
	}
	return &sqliteConn{inner: inner, writer: c.writer}, nil
}

func (c *sqliteConnector) Driver() driver.Driver { return sqliteDriver{} }

// sqliteInner is what modernc.org/sqlite's connection provides.
type sqliteInner interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

type sqliteConn struct {
	inner  sqliteInner
	writer chan struct{}
	inTx   bool
}

var (
	_ driver.ConnBeginTx        = (*sqliteConn)(nil)
	_ driver.ConnPrepareContext = (*sqliteConn)(nil)
	_ driver.ExecerContext      = (*sqliteConn)(nil)
	_ driver.QueryerContext     = (*sqliteConn)(nil)
	_ driver.Pinger             = (*sqliteConn)(nil)
	_ driver.SessionResetter    = (*sqliteConn)(nil)
	_ driver.Validator          = (*sqliteConn)(nil)
)

func (c *sqliteConn) Prepare(q string) (driver.Stmt, error) { return c.inner.Prepare(toSQLite(q)) }
func (c *sqliteConn) Close() error                          { return c.inner.Close() }
func (c *sqliteConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}
func (c *sqliteConn) Ping(ctx context.Context) error         { return c.inner.Ping(ctx) }
func (c *sqliteConn) ResetSession(ctx context.Context) error { return c.inner.ResetSession(ctx) }
func (c *sqliteConn) IsValid() bool                          { return c.inner.IsValid() }

func (c *sqliteConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.inner.PrepareContext(ctx, toSQLite(q))
}

func (c *sqliteConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return c.inner.QueryContext(ctx, toSQLite(q), args)
}

// BeginTx takes the write lock for the whole transaction (BEGIN IMMEDIATE).
func (c *sqliteConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	select {
	case c.writer <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	tx, err := c.inner.BeginTx(ctx, opts)
	if err != nil {
		<-c.writer
		return nil, err
	}
	c.inTx = true
	return &sqliteTx{inner: tx, c: c}, nil
}

// writerWaitOutsideTx bounds the wait for the in-process write lock of a
// statement outside a transaction; past it the statement goes on to SQLite's
// own busy wait, so a goroutine that writes outside its open transaction gets
// SQLite's error instead of waiting on itself for ever.
const writerWaitOutsideTx = 5 * time.Second

func (c *sqliteConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	q = toSQLite(q)
	if !c.inTx {
		t := time.NewTimer(writerWaitOutsideTx)
		select {
		case c.writer <- struct{}{}:
			t.Stop()
			defer func() { <-c.writer }()
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	res, err := c.inner.ExecContext(ctx, q, args)
	if err != nil || !strings.HasPrefix(q, "INSERT INTO ") || strings.Contains(q, " ON CONFLICT ") {
		return res, err
	}
	return firstIDResult{res}, nil
}

// firstIDResult makes LastInsertId of a multi-row INSERT the first new id,
// as MySQL reports it. The rows of one statement get consecutive ids: there
// is one writer, and AUTOINCREMENT hands out max+1 for each row.
type firstIDResult struct{ driver.Result }

func (r firstIDResult) LastInsertId() (int64, error) {
	last, err := r.Result.LastInsertId()
	if err != nil {
		return 0, err
	}
	n, err := r.Result.RowsAffected()
	if err != nil || n < 2 {
		return last, err
	}
	return last - n + 1, nil
}

type sqliteTx struct {
	inner driver.Tx
	c     *sqliteConn
}

func (t *sqliteTx) Commit() error {
	defer t.end()
	return t.inner.Commit()
}

func (t *sqliteTx) Rollback() error {
	defer t.end()
	return t.inner.Rollback()
}

func (t *sqliteTx) end() {
	if t.c.inTx {
		t.c.inTx = false
		<-t.c.writer
	}
}

var (
	sqliteReplacer = strings.NewReplacer(
		"INSERT IGNORE ", "INSERT OR IGNORE ",
		" FOR UPDATE SKIP LOCKED", "",
		" FOR UPDATE", "",
		" LOCK IN SHARE MODE", "",
		"GREATEST(", "max(",
		"LEAST(", "min(",
		"UNIX_TIMESTAMP(NOW(3))", "unixepoch('subsec')",
		" AS SIGNED)", " AS INTEGER)",
	)
	upsertValues  = regexp.MustCompile(`\bVALUES\((\w+)\)`)
	upsertNoop    = regexp.MustCompile(`^\s*(\w+)\s*=\s*(\w+)\s*$`)
	deleteLimited = regexp.MustCompile(`(?s)^DELETE FROM (\w+) WHERE (.+) LIMIT (\S+)$`)
)

const onDuplicate = "ON DUPLICATE KEY UPDATE "

// toSQLite rewrites a statement written for MySQL into SQLite's dialect (see
// the list at the top of this file).
func toSQLite(q string) string {
	q = sqliteReplacer.Replace(q)
	if i := strings.Index(q, onDuplicate); i >= 0 {
		set := q[i+len(onDuplicate):]
		if m := upsertNoop.FindStringSubmatch(set); m != nil && m[1] == m[2] {
			q = q[:i] + "ON CONFLICT DO NOTHING"
		} else {
			q = q[:i] + "ON CONFLICT DO UPDATE SET " + upsertValues.ReplaceAllString(set, "excluded.$1")
		}
	}
	if strings.HasPrefix(q, "DELETE FROM ") && strings.Contains(q, " LIMIT ") {
		if m := deleteLimited.FindStringSubmatch(q); m != nil {
			q = "DELETE FROM " + m[1] + " WHERE rowid IN (SELECT rowid FROM " + m[1] + " WHERE " + m[2] + " LIMIT " + m[3] + ")"
		}
	}
	return q
}

// sqliteCode returns the primary result code of a SQLite error, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff
	}
	return 0
}

// SQLite result codes and extended codes (sqlite3.h).
const (
	sqliteBusy             = 5
	sqliteLocked           = 6
	sqliteConstraintPK     = 1555
	sqliteConstraintUnique = 2067
)

func sqliteIsDuplicate(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && (se.Code() == sqliteConstraintPK || se.Code() == sqliteConstraintUnique)
}

func sqliteIsRetryable(err error) bool {
	c := sqliteCode(err)
	return c == sqliteBusy || c == sqliteLocked
}
