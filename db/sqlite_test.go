package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
)

func TestToSQLite(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"INSERT INTO a (k, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v), w = VALUES(w)",
			"INSERT INTO a (k, v) VALUES (?, ?) ON CONFLICT DO UPDATE SET v = excluded.v, w = excluded.w"},
		{"INSERT INTO a (k) VALUES (?),(?) ON DUPLICATE KEY UPDATE seq = seq",
			"INSERT INTO a (k) VALUES (?),(?) ON CONFLICT DO NOTHING"},
		{"INSERT INTO b (h, e) VALUES (?, ?) ON DUPLICATE KEY UPDATE e = GREATEST(e, VALUES(e))",
			"INSERT INTO b (h, e) VALUES (?, ?) ON CONFLICT DO UPDATE SET e = max(e, excluded.e)"},
		{"INSERT IGNORE INTO p (n, k) VALUES (?,?)", "INSERT OR IGNORE INTO p (n, k) VALUES (?,?)"},
		{"SELECT a FROM t WHERE id = ? FOR UPDATE", "SELECT a FROM t WHERE id = ?"},
		{"SELECT a FROM t ORDER BY a LIMIT 1 FOR UPDATE SKIP LOCKED", "SELECT a FROM t ORDER BY a LIMIT 1"},
		{"SELECT a FROM t WHERE id IN (?) LOCK IN SHARE MODE", "SELECT a FROM t WHERE id IN (?)"},
		{"DELETE FROM s WHERE t < ? LIMIT 10000", "DELETE FROM s WHERE rowid IN (SELECT rowid FROM s WHERE t < ? LIMIT 10000)"},
		{"DELETE FROM s WHERE t < ?", "DELETE FROM s WHERE t < ?"},
		{"SELECT " + NowSQL, "SELECT CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER)"},
		{"UPDATE x SET v = LEAST(v, ?) WHERE k = ?", "UPDATE x SET v = min(v, ?) WHERE k = ?"},
	} {
		if got := toSQLite(tt.in); got != tt.want {
			t.Errorf("toSQLite(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func openTestSQLite(t *testing.T) (*sql.DB, Config) {
	t.Helper()
	cfg := Config{Engine: EngineSQLite, Name: "t"}.WithDefaults(t.TempDir())
	d, err := Open(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if !IsSQLite(d) {
		t.Fatal("IsSQLite = false for a SQLite database")
	}
	if _, err := d.Exec("CREATE TABLE q (seq INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL UNIQUE, n INTEGER NOT NULL DEFAULT 0)"); err != nil {
		t.Fatal(err)
	}
	return d, cfg
}

func TestSQLiteSemanticsMatchMySQL(t *testing.T) {
	d, _ := openTestSQLite(t)
	// LastInsertId of a multi-row insert is the first new id, as in MySQL.
	if _, err := d.Exec("INSERT INTO q (k) VALUES ('a'), ('b')"); err != nil {
		t.Fatal(err)
	}
	res, err := d.Exec("INSERT INTO q (k) VALUES (?), (?), (?)", "c", "d", "e")
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := res.LastInsertId(); id != 3 {
		t.Errorf("LastInsertId of a 3-row insert after 2 rows = %d, want 3 (the first new id)", id)
	}
	// The "ignore duplicates" idiom inserts only new rows and counts them.
	res, err = d.Exec("INSERT INTO q (k) VALUES ('a'), ('f') ON DUPLICATE KEY UPDATE seq = seq")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Errorf("rows affected by a half-duplicate insert = %d, want 1", n)
	}
	// Duplicates are reported as such.
	if _, err := d.Exec("INSERT INTO q (k) VALUES ('a')"); !IsDuplicate(err) {
		t.Errorf("duplicate insert: err = %v, want IsDuplicate", err)
	}
	// The server clock is in milliseconds.
	var now int64
	if err := d.QueryRow("SELECT " + NowSQL).Scan(&now); err != nil {
		t.Fatal(err)
	}
	if diff := now - NowMillis(); diff < -5000 || diff > 5000 {
		t.Errorf("NowSQL = %d, local clock %d", now, NowMillis())
	}
}

// Concurrent read-modify-write transactions (SELECT … FOR UPDATE, then
// UPDATE) must neither lose an update nor surface "database is locked".
func TestSQLiteWritersTakeTurns(t *testing.T) {
	d, _ := openTestSQLite(t)
	if _, err := d.Exec("INSERT INTO q (k) VALUES ('ctr')"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16*25*2)
	for range 16 {
		wg.Go(func() {
			for range 25 {
				errs <- Tx(t.Context(), d, func(tx *sql.Tx) error {
					var n int
					if err := tx.QueryRow("SELECT n FROM q WHERE k = 'ctr' FOR UPDATE").Scan(&n); err != nil {
						return err
					}
					_, err := tx.Exec("UPDATE q SET n = ? WHERE k = 'ctr'", n+1)
					return err
				})
				_, err := d.Exec("INSERT INTO q (k) VALUES (?) ON DUPLICATE KEY UPDATE n = n + 1", "other")
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n, other int
	d.QueryRow("SELECT n FROM q WHERE k = 'ctr'").Scan(&n)
	d.QueryRow("SELECT n FROM q WHERE k = 'other'").Scan(&other)
	if n != 400 || other != 399 {
		t.Errorf("counter = %d, other = %d; want 400 and 399 (lost updates)", n, other)
	}
}

// Two processes on one file (coreapp and webapp share openwaba.db) each have
// their own in-process lock: SQLite's busy timeout must make them take turns
// without an error reaching the caller.
func TestSQLiteTwoProcessesShareTheFile(t *testing.T) {
	d1, cfg := openTestSQLite(t)
	d2, err := Open(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 2*8*50)
	for i, d := range []*sql.DB{d1, d2, d1, d2, d1, d2, d1, d2} {
		wg.Go(func() {
			for j := range 50 {
				errs <- Tx(t.Context(), d, func(tx *sql.Tx) error {
					_, err := tx.Exec("INSERT INTO q (k) VALUES (?)", fmt.Sprintf("p%d-%d", i, j))
					return err
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a writer got %v", err)
		}
	}
	var n int
	if err := d2.QueryRow("SELECT COUNT(*) FROM q").Scan(&n); err != nil || n != 400 {
		t.Fatalf("rows = %d (%v), want 400", n, err)
	}
}

func TestLockSQLiteRefusesASecondHolder(t *testing.T) {
	cfg := Config{Engine: EngineSQLite, Name: "t"}.WithDefaults(filepath.Join(t.TempDir(), "sub"))
	first, err := LockSQLite(cfg, "coreapp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockSQLite(cfg, "coreapp"); !errors.Is(err, ErrSQLiteInUse) {
		t.Fatalf("second lock: err = %v, want ErrSQLiteInUse", err)
	}
	first.Close()
	again, err := LockSQLite(cfg, "coreapp")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again.Close()
}

func TestSQLiteConfig(t *testing.T) {
	if c := (Config{Name: "openwaba"}).WithDefaults("data"); c.Engine != EngineSQLite || c.Path != filepath.Join("data", "openwaba.db") {
		t.Errorf("no settings: %+v, want SQLite in data/openwaba.db", c)
	}
	if c := (Config{Name: "openwaba", Hostname: "db"}).WithDefaults("data"); c.Engine != EngineMySQL || c.Path != "" {
		t.Errorf("a database host: %+v, want MySQL", c)
	}
	if err := (Config{Engine: "sqlite", Path: "a?b"}).Validate(); err == nil {
		t.Error("a path with ? validated")
	}
	_, err := Open(context.Background(), Config{Engine: EngineSQLite}, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Error("Open without a path succeeded")
	}
}
