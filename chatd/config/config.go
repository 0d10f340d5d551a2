// Package config loads chatd's and waphone's configuration from the
// environment and an optional file (viper stays inside this package) and sets
// up logging the same way for every binary of the chatd module.
package config

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/openwaba/openwaba/db"
)

// Chatd is the chatd server's configuration.
type Chatd struct {
	DB           db.Config
	ListenAddr   string        // WA_CHATD_LISTEN_ADDR, default 0.0.0.0
	ChatPort     int           // WA_CHAT_PORT, default 5222
	FallbackPort int           // WA_CHAT_FALLBACK_PORT, default 443 (0 disables)
	AdminAddr    string        // WA_CHATD_ADMIN_ADDR, default 127.0.0.1
	AdminPort    int           // WA_CHATD_ADMIN_PORT, default 5280 (0 disables)
	QueueTTL     time.Duration // WA_CHATD_QUEUE_TTL, default 720h
	// MediaPort is the HTTPS media server's port (WA_CHATD_MEDIA_PORT,
	// default 5281, 0 disables); it binds ListenAddr.
	MediaPort int
	// MediaURL optionally overrides the base URL clients use for media
	// (WA_CHATD_MEDIA_URL, https://host[:port]); by default clients use the
	// host they dialled for chat and MediaPort. It must lead to chatd's
	// media port with TLS passed through: clients pin chatd's certificate.
	MediaURL string
	MediaTTL time.Duration // WA_CHATD_MEDIA_TTL, default 720h: how long a blob is kept
	DataDir  string        // WA_DATA_DIR, default data: chatd writes chat-root.pub there, blobs under media/
	// EnforceWindow refuses free-form messages outside the 24-hour
	// customer-service window (WA_SANDBOX_ENFORCE_WINDOW, default true; a
	// sandbox-only switch: WhatsApp always enforces it).
	EnforceWindow bool
	// TemplateApprovalDelay is how long the sandbox takes to approve a
	// submitted template (WA_SANDBOX_TEMPLATE_APPROVAL_DELAY, default 5s;
	// 0 approves at once).
	TemplateApprovalDelay time.Duration
	Log                   Log
}

// Log selects the log format and level.
type Log struct {
	Format string // WA_LOG_FORMAT: text or json; default text on a terminal
	Level  string // WA_LOG_LEVEL: debug, info, warn, error
}

// LogValue redacts secrets.
func (c Chatd) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("db", c.DB), slog.String("listen_addr", c.ListenAddr),
		slog.Int("chat_port", c.ChatPort), slog.Int("fallback_port", c.FallbackPort),
		slog.String("admin_addr", c.AdminAddr), slog.Int("admin_port", c.AdminPort),
		slog.Duration("queue_ttl", c.QueueTTL), slog.Int("media_port", c.MediaPort),
		slog.String("media_url", c.MediaURL), slog.Duration("media_ttl", c.MediaTTL), slog.String("data_dir", c.DataDir),
		slog.Bool("enforce_window", c.EnforceWindow), slog.Duration("template_approval_delay", c.TemplateApprovalDelay))
}

// BindDB binds the WA_DB_* variables onto v under "db.*", with dbNameEnv
// naming the database (WA_DB_NAME for coreapp and webapp, WA_CHATD_DB_NAME
// for chatd).
func BindDB(v *viper.Viper, dbNameEnv, defaultName string) {
	for key, env := range map[string]string{
		"db.engine": "WA_DB_ENGINE", "db.hostname": "WA_DB_HOSTNAME", "db.port": "WA_DB_PORT",
		"db.username": "WA_DB_USERNAME", "db.password": "WA_DB_PASSWORD", "db.name": dbNameEnv,
		"db.max_open_conns": "WA_DB_MAX_OPEN_CONNS", "db.dir": "WA_DB_DIR",
	} {
		v.BindEnv(key, env)
	}
	v.SetDefault("db.port", 3306)
	v.SetDefault("db.username", "root")
	v.SetDefault("db.password", "")
	v.SetDefault("db.name", defaultName)
	v.SetDefault("db.max_open_conns", 32)
	v.BindEnv("log.format", "WA_LOG_FORMAT")
	v.BindEnv("log.level", "WA_LOG_LEVEL")
	v.SetDefault("log.level", "info")
}

// DBFrom reads the bound database settings; the SQLite files default to
// the data dir (see db.Config.WithDefaults).
func DBFrom(v *viper.Viper) db.Config {
	return db.Config{
		Engine: v.GetString("db.engine"), Hostname: v.GetString("db.hostname"),
		Port: v.GetInt("db.port"), Username: v.GetString("db.username"),
		Password: v.GetString("db.password"), Name: v.GetString("db.name"),
		MaxOpenConns: v.GetInt("db.max_open_conns"), Dir: v.GetString("db.dir"),
	}.WithDefaults(v.GetString("data_dir"))
}

// LogFrom reads the bound log settings.
func LogFrom(v *viper.Viper) Log {
	return Log{Format: v.GetString("log.format"), Level: v.GetString("log.level")}
}

// NewViper returns a viper reading file (if not empty) and the environment.
func NewViper(file string) (*viper.Viper, error) {
	v := viper.New()
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config file %s: %w", file, err)
		}
	}
	return v, nil
}

// LoadChatd loads chatd's configuration.
func LoadChatd(file string) (Chatd, error) {
	v, err := NewViper(file)
	if err != nil {
		return Chatd{}, err
	}
	BindDB(v, "WA_CHATD_DB_NAME", "chatd")
	for key, env := range map[string]string{
		"listen_addr": "WA_CHATD_LISTEN_ADDR", "chat_port": "WA_CHAT_PORT", "fallback_port": "WA_CHAT_FALLBACK_PORT",
		"admin_addr": "WA_CHATD_ADMIN_ADDR", "admin_port": "WA_CHATD_ADMIN_PORT", "queue_ttl": "WA_CHATD_QUEUE_TTL",
		"data_dir": "WA_DATA_DIR", "media_port": "WA_CHATD_MEDIA_PORT", "media_url": "WA_CHATD_MEDIA_URL",
		"media_ttl": "WA_CHATD_MEDIA_TTL", "enforce_window": "WA_SANDBOX_ENFORCE_WINDOW",
		"template_approval_delay": "WA_SANDBOX_TEMPLATE_APPROVAL_DELAY",
	} {
		v.BindEnv(key, env)
	}
	v.SetDefault("listen_addr", "0.0.0.0")
	v.SetDefault("chat_port", 5222)
	v.SetDefault("fallback_port", 443)
	v.SetDefault("admin_addr", "127.0.0.1")
	v.SetDefault("admin_port", 5280)
	v.SetDefault("queue_ttl", 30*24*time.Hour)
	v.SetDefault("data_dir", "data")
	v.SetDefault("media_port", 5281)
	v.SetDefault("media_url", "")
	v.SetDefault("media_ttl", 30*24*time.Hour)
	v.SetDefault("enforce_window", true)
	v.SetDefault("template_approval_delay", 5*time.Second)
	enforce, err := strconv.ParseBool(strings.TrimSpace(v.GetString("enforce_window")))
	if err != nil {
		return Chatd{}, fmt.Errorf("WA_SANDBOX_ENFORCE_WINDOW %q: want true or false", v.GetString("enforce_window"))
	}
	delay, err := time.ParseDuration(strings.TrimSpace(v.GetString("template_approval_delay")))
	if err != nil || delay < 0 {
		return Chatd{}, fmt.Errorf("WA_SANDBOX_TEMPLATE_APPROVAL_DELAY %q: want a duration such as 5s (0 approves at once)", v.GetString("template_approval_delay"))
	}
	c := Chatd{
		DB: DBFrom(v), ListenAddr: v.GetString("listen_addr"), ChatPort: v.GetInt("chat_port"),
		FallbackPort: v.GetInt("fallback_port"), AdminAddr: v.GetString("admin_addr"),
		AdminPort: v.GetInt("admin_port"), QueueTTL: v.GetDuration("queue_ttl"), MediaPort: v.GetInt("media_port"),
		MediaURL: strings.TrimSpace(v.GetString("media_url")), MediaTTL: v.GetDuration("media_ttl"),
		DataDir: v.GetString("data_dir"), Log: LogFrom(v), EnforceWindow: enforce, TemplateApprovalDelay: delay,
	}
	if err := c.DB.Validate(); err != nil {
		return c, err
	}
	for name, p := range map[string]int{"WA_CHAT_PORT": c.ChatPort, "WA_CHAT_FALLBACK_PORT": c.FallbackPort,
		"WA_CHATD_ADMIN_PORT": c.AdminPort, "WA_CHATD_MEDIA_PORT": c.MediaPort} {
		if p < 0 || p > 65535 || (name == "WA_CHAT_PORT" && p == 0) {
			return c, fmt.Errorf("%s %d is out of range", name, p)
		}
	}
	if c.DataDir == "" {
		return c, fmt.Errorf("WA_DATA_DIR is empty")
	}
	if c.QueueTTL < time.Minute {
		return c, fmt.Errorf("WA_CHATD_QUEUE_TTL %s is shorter than a minute", c.QueueTTL)
	}
	if c.MediaTTL < time.Minute {
		return c, fmt.Errorf("WA_CHATD_MEDIA_TTL %s is shorter than a minute", c.MediaTTL)
	}
	if c.MediaURL != "" {
		if err := CheckMediaURL(c.MediaURL); err != nil {
			return c, fmt.Errorf("WA_CHATD_MEDIA_URL: %w", err)
		}
		c.MediaURL = strings.TrimSuffix(c.MediaURL, "/")
	}
	return c, nil
}

// CheckMediaURL checks a media base URL: https, a host, no user, query or
// fragment (a path prefix is allowed). Clients pin chatd's own TLS
// certificate, so the URL must reach chatd's media port through something
// that passes TLS through (a port mapping, a TCP proxy).
func CheckMediaURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "https":
		return fmt.Errorf("%q: want an https:// URL", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q: no host", s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("%q: no user, query or fragment allowed", s)
	}
	return nil
}

// NewLogger returns the process logger: text on a terminal, JSON otherwise,
// unless Format says which.
func NewLogger(w io.Writer, l Log) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, fmt.Errorf("WA_LOG_LEVEL: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	format := l.Format
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("WA_LOG_FORMAT %q: want text or json", format)
}
