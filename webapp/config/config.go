// Package config loads the webapp's settings from the environment (the on-prem
// WA_* names) and an optional configuration file, and validates them. It is the
// only package that touches viper; everyone else receives a typed Config.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/viper"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/webapp/coreconn"
	"github.com/openwaba/openwaba/webapp/ratelimit"
)

// Config is the webapp's effective configuration.
type Config struct {
	DB   db.Config `mapstructure:"db"`
	Web  Web       `mapstructure:"web"`
	Core Core      `mapstructure:"core"`
	// APIKey is the optional monitoring key (WA_API_KEY) accepted as
	// "Authorization: Apikey <key>" on GET /v1/health only.
	APIKey string `mapstructure:"api_key"`
	Log    Log    `mapstructure:"log"`
	// DataDir is WA_DATA_DIR: where a coreapp of this host keeps the
	// keystore secret when WA_KEYSTORE_SECRET is not set (and the SQLite
	// files).
	DataDir string `mapstructure:"data_dir"`
	// KeystoreSecret (WA_KEYSTORE_SECRET) opens the sealed cluster secrets
	// (the TLS keys and the core call token); it must equal the coreapps'.
	// Never logged.
	KeystoreSecret string `mapstructure:"keystore_secret"`
}

// Web is the HTTPS listener.
type Web struct {
	Addr       string `mapstructure:"addr"`       // bind host, WA_WEB_ADDR
	Port       int    `mapstructure:"port"`       // WA_WEB_PORT
	ServerName string `mapstructure:"servername"` // name in the self-signed certificate, WA_WEB_SERVERNAME
	// MaxConnsPerIP caps the open connections of one client address
	// (WA_WEB_MAX_CONNS_PER_IP, 256; 0: no cap).
	MaxConnsPerIP int `mapstructure:"max_conns_per_ip"`
	// RateMessages and RateDefault are the request rate limits per caller
	// of the message routes and of every other authenticated route, as
	// "RATE/BURST" or "off" (WA_RATE_LIMIT_MESSAGES, 50/150;
	// WA_RATE_LIMIT_DEFAULT, 20/60: on-prem's; webapp/ratelimit).
	RateMessages string `mapstructure:"rate_messages"`
	RateDefault  string `mapstructure:"rate_default"`
}

// Core says where the coreapps are.
type Core struct {
	// Endpoints are the coreapps' host:port (WA_CORE_ENDPOINT: a
	// comma-separated list; a list or a string in a file), spaces trimmed.
	// A name may resolve to several nodes.
	Endpoints []string `mapstructure:"endpoint"`
}

// Parsed returns the endpoints, parsed (Validate checked them).
func (c Core) Parsed() ([]coreconn.Endpoint, error) {
	return coreconn.ParseEndpointList(c.Endpoints)
}

// Log configures the process logger.
type Log struct {
	Format string `mapstructure:"format"` // "text" or "json"
	Level  string `mapstructure:"level"`  // "debug", "info", "warn" or "error"
}

// env binds every configuration key to its environment variable. Keys are
// also the names used in a configuration file (for example db.hostname).
var env = []struct{ key, name string }{
	{"db.engine", "WA_DB_ENGINE"},
	{"db.hostname", "WA_DB_HOSTNAME"},
	{"db.port", "WA_DB_PORT"},
	{"db.username", "WA_DB_USERNAME"},
	{"db.password", "WA_DB_PASSWORD"},
	{"db.name", "WA_DB_NAME"},
	{"db.max_open_conns", "WA_DB_MAX_OPEN_CONNS"},
	{"db.dir", "WA_DB_DIR"},
	{"data_dir", "WA_DATA_DIR"},
	{"web.port", "WA_WEB_PORT"},
	{"web.addr", "WA_WEB_ADDR"},
	{"web.servername", "WA_WEB_SERVERNAME"},
	{"web.max_conns_per_ip", "WA_WEB_MAX_CONNS_PER_IP"},
	{"web.rate_messages", "WA_RATE_LIMIT_MESSAGES"},
	{"web.rate_default", "WA_RATE_LIMIT_DEFAULT"},
	{"keystore_secret", "WA_KEYSTORE_SECRET"},
	{"core.endpoint", "WA_CORE_ENDPOINT"},
	{"api_key", "WA_API_KEY"},
	{"log.format", "WA_LOG_FORMAT"},
	{"log.level", "WA_LOG_LEVEL"},
}

// Load reads the configuration: defaults, then the file named by --config
// (or WA_CONFIG_FILE), then the environment, each overriding the one before.
// logToTerminal chooses the default log format (text on a terminal, JSON
// otherwise). usage receives flag errors and -h output.
func Load(args []string, logToTerminal bool, usage io.Writer) (Config, error) {
	fs := flag.NewFlagSet("webapp", flag.ContinueOnError)
	fs.SetOutput(usage)
	path := fs.String("config", "", "configuration file (yaml, json or toml); also WA_CONFIG_FILE")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	v := viper.New()
	for _, e := range env {
		if err := v.BindEnv(e.key, e.name); err != nil {
			return Config{}, err
		}
	}
	_ = v.BindEnv("config_file", "WA_CONFIG_FILE")
	v.SetDefault("data_dir", "data")
	v.SetDefault("db.port", 3306)
	v.SetDefault("db.username", "root")
	v.SetDefault("db.password", "")
	v.SetDefault("db.name", "openwaba")
	v.SetDefault("db.max_open_conns", 32)
	v.SetDefault("web.port", 9090)
	v.SetDefault("web.addr", "0.0.0.0")
	v.SetDefault("web.servername", "localhost")
	v.SetDefault("web.max_conns_per_ip", 256)
	v.SetDefault("web.rate_messages", "50/150")
	v.SetDefault("web.rate_default", "20/60")
	v.SetDefault("keystore_secret", "")
	v.SetDefault("core.endpoint", "127.0.0.1:6250")
	v.SetDefault("api_key", "")
	v.SetDefault("log.format", map[bool]string{true: "text", false: "json"}[logToTerminal])
	v.SetDefault("log.level", "info")

	file := *path
	if file == "" {
		file = v.GetString("config_file")
	}
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("read config file %s: %w", file, err)
		}
	}

	var cfg Config
	if err := v.Unmarshal(&cfg); err != nil {
		return Config{}, fmt.Errorf("decode config: %w", err)
	}
	// SQLite (no database host set): the file coreapp writes in the shared
	// data dir.
	cfg.DB = cfg.DB.WithDefaults(v.GetString("data_dir"))
	cfg.Log.Format = strings.ToLower(cfg.Log.Format)
	cfg.Log.Level = strings.ToLower(cfg.Log.Level)
	for i, e := range cfg.Core.Endpoints {
		cfg.Core.Endpoints[i] = strings.TrimSpace(e)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	if err := c.DB.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Web.Port <= 0 || c.Web.Port > 65535 {
		errs = append(errs, fmt.Errorf("WA_WEB_PORT %d is out of range", c.Web.Port))
	}
	if c.Web.Addr == "" {
		errs = append(errs, errors.New("WA_WEB_ADDR is empty"))
	}
	if c.Web.MaxConnsPerIP < 0 {
		errs = append(errs, fmt.Errorf("WA_WEB_MAX_CONNS_PER_IP %d is negative", c.Web.MaxConnsPerIP))
	}
	if c.Web.ServerName == "" {
		errs = append(errs, errors.New("WA_WEB_SERVERNAME is empty"))
	}
	if _, err := c.Web.Limits(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.Core.Parsed(); err != nil {
		errs = append(errs, fmt.Errorf("WA_CORE_ENDPOINT %q: %w", strings.Join(c.Core.Endpoints, ","), err))
	}
	if n := len(c.APIKey); n != 0 && (n < 12 || n > 128) {
		errs = append(errs, fmt.Errorf("WA_API_KEY must be 12 to 128 characters long, not %d", n))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("WA_LOG_FORMAT %q is not text or json", c.Log.Format))
	}
	if _, err := c.Log.SlogLevel(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SlogLevel parses the level name.
func (l Log) SlogLevel() (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		return 0, fmt.Errorf("WA_LOG_LEVEL %q is not debug, info, warn or error", l.Level)
	}
	return lv, nil
}

// LogValue logs the configuration with the secrets redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("db", c.DB), // db.Config redacts its password
		slog.Group("web", slog.String("addr", c.Web.Addr), slog.Int("port", c.Web.Port), slog.String("servername", c.Web.ServerName),
			slog.Int("max_conns_per_ip", c.Web.MaxConnsPerIP), slog.String("rate_messages", c.Web.RateMessages), slog.String("rate_default", c.Web.RateDefault)),
		slog.String("data_dir", c.DataDir),
		slog.Bool("keystore_secret_set", c.KeystoreSecret != ""),
		slog.String("core_endpoint", strings.Join(c.Core.Endpoints, ",")),
		slog.String("api_key", redact(c.APIKey)),
		slog.Group("log", slog.String("format", c.Log.Format), slog.String("level", c.Log.Level)),
	)
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "********"
}

// Limits are the parsed rate limits by group.
func (w Web) Limits() (map[string]ratelimit.Limit, error) {
	m, err := ratelimit.Parse(w.RateMessages)
	if err != nil {
		return nil, fmt.Errorf("WA_RATE_LIMIT_MESSAGES: %w", err)
	}
	d, err := ratelimit.Parse(w.RateDefault)
	if err != nil {
		return nil, fmt.Errorf("WA_RATE_LIMIT_DEFAULT: %w", err)
	}
	return map[string]ratelimit.Limit{ratelimit.GroupMessages: m, ratelimit.GroupDefault: d}, nil
}
