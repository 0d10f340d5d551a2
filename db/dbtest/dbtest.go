// Package dbtest gives each test a fresh, migrated database on the engine
// named by WA_TEST_ENGINE: "mysql" (the default), on the real server named by
// WA_TEST_DSN (for example "root@tcp(127.0.0.1:3306)/"), or "sqlite", in
// files under a temporary directory. Without WA_TEST_DSN MySQL tests skip,
// except under CI=true, where they fail.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/openwaba/openwaba/db"
)

// SQLite reports whether the tests run on SQLite (WA_TEST_ENGINE=sqlite).
func SQLite() bool { return strings.EqualFold(os.Getenv("WA_TEST_ENGINE"), "sqlite") }

var sqliteDir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "openwaba-dbtest-") })

// Server returns the test server's connection settings (database name
// empty); on SQLite, the directory of the test databases.
func Server(t testing.TB) db.Config {
	t.Helper()
	if SQLite() {
		dir, err := sqliteDir()
		if err != nil {
			t.Fatal(err)
		}
		return db.Config{Engine: db.EngineSQLite, Dir: dir}
	}
	dsn := os.Getenv("WA_TEST_DSN")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("WA_TEST_DSN is unset under CI=true; set it to e.g. root@tcp(127.0.0.1:3306)/")
		}
		t.Skip("WA_TEST_DSN unset; set it to e.g. root@tcp(127.0.0.1:3306)/ to run database tests")
	}
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("WA_TEST_DSN: %v", err)
	}
	host, portStr := mc.Addr, "3306"
	for i := len(mc.Addr) - 1; i >= 0; i-- {
		if mc.Addr[i] == ':' {
			host, portStr = mc.Addr[:i], mc.Addr[i+1:]
			break
		}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatalf("WA_TEST_DSN port: %v", err)
	}
	return db.Config{Engine: "MYSQL", Hostname: host, Port: port, Username: mc.User, Password: mc.Passwd}
}

// Env is the WA_DB_* environment that points a process at cfg's server (or,
// on SQLite, its directory); WA_DB_NAME is left to the caller.
func Env(cfg db.Config) map[string]string {
	if cfg.IsSQLite() {
		return map[string]string{"WA_DB_ENGINE": db.EngineSQLite, "WA_DB_DIR": cfg.Dir}
	}
	return map[string]string{
		"WA_DB_ENGINE": db.EngineMySQL, "WA_DB_HOSTNAME": cfg.Hostname, "WA_DB_PORT": strconv.Itoa(cfg.Port),
		"WA_DB_USERNAME": cfg.Username, "WA_DB_PASSWORD": cfg.Password,
	}
}

// NewName returns a fresh database name on the test server and drops that
// database when the test ends. The database itself is created by whoever
// opens it first (db.Open creates missing databases).
func NewName(t testing.TB) (db.Config, string) {
	t.Helper()
	cfg := Server(t)
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	cfg.Name = name
	if cfg.IsSQLite() {
		cfg = cfg.WithDefaults(cfg.Dir)
		t.Cleanup(func() {
			for _, suffix := range []string{"", "-wal", "-shm", ".coreapp.lock"} {
				os.Remove(cfg.Path + suffix)
			}
		})
		return cfg, name
	}
	t.Cleanup(func() {
		c := cfg
		c.Name = "mysql"
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := db.Open(ctx, c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer admin.Close()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return cfg, name
}

// New returns an open, migrated, empty database of set s, dropped at the end
// of the test.
func New(t testing.TB, s db.Set) *sql.DB {
	t.Helper()
	cfg, _ := NewName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := db.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() }) // registered after the drop, so it runs first
	if err := db.Migrate(ctx, d, s); err != nil {
		t.Fatal(err)
	}
	return d
}

// Open connects to an existing database on the test server (for example
// one a process under test created), closed at the end of the test.
func Open(t testing.TB, name string) *sql.DB {
	t.Helper()
	cfg := Server(t)
	cfg.Name = name
	cfg = cfg.WithDefaults(cfg.Dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := db.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
