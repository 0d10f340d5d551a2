// Package db opens the databases of openwaba (MySQL, or an embedded SQLite
// file for a single node), applies the embedded migrations, and runs many
// small writes in shared transactions (Committer).
//
// Every timestamp column holds unix milliseconds (BIGINT), which keeps the
// schema free of time-zone handling and portable across engines.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Config says how to reach a database server. The field names follow the
// on-prem WA_DB_* variables.
type Config struct {
	Engine   string `mapstructure:"engine"` // EngineMySQL or EngineSQLite
	Hostname string `mapstructure:"hostname"`
	Port     int    `mapstructure:"port"`
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
	Name     string `mapstructure:"name"` // database name
	// Dir (WA_DB_DIR, default the data dir) holds the SQLite files, one per
	// database: Dir/Name.db (EngineSQLite only).
	Dir string `mapstructure:"dir"`
	// Path is the SQLite database file; WithDefaults derives it from Dir
	// and Name.
	Path string `mapstructure:"-"`
	// MaxOpenConns caps the pool; 0 means 32 (MySQL) or 16 (SQLite).
	MaxOpenConns int `mapstructure:"max_open_conns"`
}

// The storage engines (WA_DB_ENGINE).
const (
	EngineMySQL  = "MYSQL"
	EngineSQLite = "SQLITE"
)

// WithDefaults fills what the settings left empty. The engine: MySQL when a
// database host is given (WA_DB_HOSTNAME), else SQLite, so a single node
// runs with nothing to install; WA_DB_ENGINE chooses explicitly (compose sets
// MYSQL). dataDir is the process's data dir, the default of Dir.
func (c Config) WithDefaults(dataDir string) Config {
	c.Engine = strings.ToUpper(strings.TrimSpace(c.Engine))
	if c.Engine == "" {
		c.Engine = EngineSQLite
		if c.Hostname != "" {
			c.Engine = EngineMySQL
		}
	}
	if c.Hostname == "" {
		c.Hostname = "127.0.0.1"
	}
	if c.Dir == "" {
		c.Dir = dataDir
	}
	if c.IsSQLite() && c.Path == "" && c.Name != "" {
		c.Path = filepath.Join(c.Dir, c.Name+".db")
	}
	return c
}

// IsSQLite reports whether c selects the embedded SQLite engine.
func (c Config) IsSQLite() bool { return strings.EqualFold(c.Engine, EngineSQLite) }

// LogValue keeps the password out of logs.
func (c Config) LogValue() slog.Value {
	if c.IsSQLite() {
		return slog.GroupValue(slog.String("engine", EngineSQLite), slog.String("path", c.Path))
	}
	pw := ""
	if c.Password != "" {
		pw = "********"
	}
	return slog.GroupValue(
		slog.String("engine", c.Engine), slog.String("hostname", c.Hostname),
		slog.Int("port", c.Port), slog.String("username", c.Username),
		slog.String("password", pw), slog.String("name", c.Name))
}

// Validate reports the first problem in c.
func (c Config) Validate() error {
	switch strings.ToUpper(c.Engine) {
	case EngineMySQL, "":
	case EngineSQLite:
		if c.Path == "" || strings.ContainsAny(c.Path, "?#") {
			return fmt.Errorf("SQLite database path %q is empty or holds ? or #", c.Path)
		}
		return nil
	default:
		return fmt.Errorf("WA_DB_ENGINE %q is not supported (use MYSQL, or SQLITE for a single node)", c.Engine)
	}
	if c.Hostname == "" {
		return errors.New("WA_DB_HOSTNAME is empty")
	}
	if c.Port <= 0 || c.Port > 65535 {
		return fmt.Errorf("WA_DB_PORT %d is out of range", c.Port)
	}
	if c.Name == "" || strings.ContainsAny(c.Name, "`'\"\\/ ") {
		return fmt.Errorf("database name %q is empty or has characters we do not quote", c.Name)
	}
	return nil
}

func (c Config) mysqlConfig(dbName, isolationVar string) *mysql.Config {
	mc := mysql.NewConfig()
	mc.User = c.Username
	mc.Passwd = c.Password
	mc.Net = "tcp"
	mc.Addr = net.JoinHostPort(c.Hostname, strconv.Itoa(c.Port))
	mc.DBName = dbName
	mc.Timeout = 5 * time.Second
	mc.ReadTimeout = 60 * time.Second
	mc.WriteTimeout = 60 * time.Second
	mc.InterpolateParams = true // one round trip per statement
	if isolationVar != "" {
		// READ COMMITTED: no gap locks, so concurrent batches of inserts and
		// updates do not deadlock on index ranges. Every lock this code
		// relies on is taken explicitly (SELECT … FOR UPDATE).
		mc.Params = map[string]string{isolationVar: "'READ-COMMITTED'",
			// A node cut off from MySQL in the middle of a transaction
			// (a network partition that keeps the TCP connection open)
			// would hold its row locks, such as an account row taken by an
			// accept batch, until the server noticed: with the default
			// wait_timeout, hours, blocking every other coreapp. The server
			// closes a connection silent for this long and rolls its
			// transaction back; nothing here keeps a transaction open and
			// idle for seconds, and the pool drops idle connections sooner
			// (SetConnMaxIdleTime below).
			"wait_timeout": strconv.Itoa(int(serverIdleTimeout / time.Second))}
	}
	return mc
}

// serverIdleTimeout is the MySQL session's wait_timeout: how long a
// partitioned node's open transaction can keep its locks.
const serverIdleTimeout = 10 * time.Second

// Open connects to the database named in cfg, creating it if it does not
// exist, and waits up to the context's deadline for the server to answer.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*sql.DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.IsSQLite() {
		return openSQLite(ctx, cfg)
	}
	isolationVar, err := createDatabase(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	conn, err := mysql.NewConnector(cfg.mysqlConfig(cfg.Name, isolationVar))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.Name, err)
	}
	db := sql.OpenDB(conn)
	max := cfg.MaxOpenConns
	if max <= 0 {
		max = 32
	}
	db.SetMaxOpenConns(max)
	db.SetMaxIdleConns(max)
	db.SetConnMaxIdleTime(serverIdleTimeout / 2)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("ping %s: %w", cfg.Name, err)
	}
	return db, nil
}

// createDatabase retries until the server answers, so processes can start
// before MySQL is up (as under docker compose). It returns the name of the
// server's isolation-level variable: transaction_isolation (MySQL 8,
// MariaDB ≥ 11.1) or tx_isolation (older MariaDB).
func createDatabase(ctx context.Context, cfg Config, log *slog.Logger) (string, error) {
	conn, err := mysql.NewConnector(cfg.mysqlConfig("", ""))
	if err != nil {
		return "", err
	}
	admin := sql.OpenDB(conn)
	defer admin.Close()
	admin.SetMaxOpenConns(1)
	delay := 250 * time.Millisecond
	for {
		_, err = admin.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+cfg.Name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
		var me *mysql.MySQLError
		if err == nil || errors.As(err, &me) && me.Number == 1044 { // 1044: no CREATE privilege; the database may exist
			return isolationVariable(ctx, admin), nil
		}
		if errors.As(err, &me) {
			return "", fmt.Errorf("database server %s:%d: %w", cfg.Hostname, cfg.Port, err)
		}
		log.Warn("database server not reachable yet", "addr", net.JoinHostPort(cfg.Hostname, strconv.Itoa(cfg.Port)), "err", err)
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("database server %s:%d: %w (last error: %v)", cfg.Hostname, cfg.Port, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func isolationVariable(ctx context.Context, admin *sql.DB) string {
	for _, v := range []string{"transaction_isolation", "tx_isolation"} {
		var x string
		if err := admin.QueryRowContext(ctx, "SELECT @@"+v).Scan(&x); err == nil {
			return v
		}
	}
	return ""
}

// IsDuplicate reports whether err is a unique-key violation.
func IsDuplicate(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062 || sqliteIsDuplicate(err) // ER_DUP_ENTRY
}

// ErrRetry is returned by a transaction function that saw a concurrent
// change it must re-read (for example a row another transaction inserted
// first): Tx runs the transaction again.
var ErrRetry = errors.New("concurrent change; run the transaction again")

// IsRetryable reports whether err is a deadlock, a lock-wait timeout (SQLite:
// busy) or ErrRetry, after which the whole transaction can simply be run
// again.
func IsRetryable(err error) bool {
	var me *mysql.MySQLError
	return errors.Is(err, ErrRetry) || errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205) || sqliteIsRetryable(err)
}

// Tx runs fn in a transaction and commits it, retrying with a short
// jittered pause on deadlocks and lock-wait timeouts. fn may run more than
// once.
func Tx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		err = tx(ctx, db, fn)
		if err == nil || !IsRetryable(err) {
			return err
		}
		pause := time.Duration(1+rand.IntN(2<<attempt)) * time.Millisecond
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
	return err
}

func tx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	t, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(t); err != nil {
		t.Rollback()
		return err
	}
	return t.Commit()
}

// NowSQL is the database server's clock in unix milliseconds, as an SQL
// expression: leases and heartbeats compare times of several machines, so
// they use this one clock instead of each machine's. (On SQLite it becomes
// the local clock: see toSQLite.)
const NowSQL = "CAST(ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED)"

// NowMillis is the timestamp format of every time column.
func NowMillis() int64 { return time.Now().UnixMilli() }
