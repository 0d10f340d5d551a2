// Package config loads coreapp's configuration from the environment and an
// optional file; viper stays inside this package.
package config

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	chatdconfig "github.com/openwaba/openwaba/chatd/config"
	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/db"
)

// Config is coreapp's configuration.
type Config struct {
	DB               db.Config
	CoreAddr         string // WA_CORE_ADDR: bind host of the gRPC listener (default 0.0.0.0)
	CorePort         int    // WA_CORE_PORT (6250)
	ChatHost         string // WA_CHAT_HOST (127.0.0.1)
	ChatPort         int    // WA_CHAT_PORT (5222)
	ChatFallbackPort int    // WA_CHAT_FALLBACK_PORT (443; 0: no fallback)
	NodeID           string // WA_NODE_ID (default: the host name); unique per running coreapp
	// Advertise (WA_CORE_ADVERTISE_ADDR) is the host:port other coreapps
	// reach this node's gRPC on; default: WA_CORE_ADDR when it is a
	// specific address, else the first non-loopback address of the host,
	// with WA_CORE_PORT.
	Advertise string
	DataDir   string // WA_DATA_DIR (./data)
	Log       chatdconfig.Log

	// The chat network's root public key (base64), which chatd must prove
	// it belongs to: given directly (WA_CHAT_ROOT_KEY) or as a file holding
	// it (WA_CHAT_ROOT_KEY_FILE, e.g. the chat-root.pub the sandbox chatd
	// writes). One of them is required.
	ChatRootKey     string // WA_CHAT_ROOT_KEY
	ChatRootKeyFile string // WA_CHAT_ROOT_KEY_FILE
	// MediaDir (WA_MEDIA_DIR, default $WA_DATA_DIR/media) is the shared
	// media volume; every coreapp of a deployment mounts the same one.
	MediaDir string
	// MediaAllowPrivateLinks (WA_MEDIA_ALLOW_PRIVATE_LINKS) lets media links
	// point at loopback, private and link-local addresses. Off by default
	// (SSRF protection); for development against local servers only.
	MediaAllowPrivateLinks bool
	// WebhookAllowPrivate (WA_WEBHOOK_ALLOW_PRIVATE) lets webhook URLs set
	// by tenants (API keys) point at loopback, private and link-local
	// addresses: an install inside a private network. The admin's URLs are
	// never address-checked.
	WebhookAllowPrivate bool
	// WebhookDeadAfter (WA_WEBHOOK_DEAD_AFTER, default 168h as Cloud) is
	// how long a webhook delivery is retried before it is dead (kept,
	// listed, no longer attempted).
	WebhookDeadAfter time.Duration
	// MediaLinkTimeout (WA_MEDIA_LINK_TIMEOUT, default 60s) bounds fetching
	// one media link.
	MediaLinkTimeout time.Duration
	// MetricsAddr and MetricsPort (WA_CORE_METRICS_ADDR, default 127.0.0.1;
	// WA_CORE_METRICS_PORT, default 6261, 0: off) are where GET /metrics
	// is served, in plain HTTP (coreapp/metrics).
	MetricsAddr string
	MetricsPort int
	// MaxPendingMessages (WA_MAX_PENDING_MESSAGES, default 100000, 0: no
	// limit) is the backlog of a number past which sends answer 503
	// (on-prem's concurrent rate limiting) until it drains.
	MaxPendingMessages int
	// MessageRetention (WA_MESSAGE_RETENTION, default 720h) is how long a
	// finished message is kept before PUT /v1/services/message/gc removes
	// it (coreapp/messagegc).
	MessageRetention time.Duration
	// KeystoreSecret (WA_KEYSTORE_SECRET, base64 of 32 bytes) encrypts
	// private keys at rest; unset: generated into DataDir. Never logged.
	KeystoreSecret string
}

// LogValue redacts secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.Any("db", c.DB), slog.String("core_addr", c.CoreAddr), slog.Int("core_port", c.CorePort),
		slog.String("chat_host", c.ChatHost), slog.Int("chat_port", c.ChatPort), slog.Int("chat_fallback_port", c.ChatFallbackPort),
		slog.String("chat_root_key", c.ChatRootKey), slog.String("chat_root_key_file", c.ChatRootKeyFile),
		slog.String("node_id", c.NodeID), slog.String("advertise", c.Advertise), slog.String("data_dir", c.DataDir), slog.String("media_dir", c.MediaDir),
		slog.Bool("media_allow_private_links", c.MediaAllowPrivateLinks), slog.Bool("webhook_allow_private", c.WebhookAllowPrivate), slog.Duration("webhook_dead_after", c.WebhookDeadAfter), slog.Duration("media_link_timeout", c.MediaLinkTimeout), slog.Duration("message_retention", c.MessageRetention), slog.String("metrics_addr", c.MetricsAddr), slog.Int("metrics_port", c.MetricsPort),
		slog.Bool("keystore_secret_set", c.KeystoreSecret != ""))
}

// ChatAddrs are the chat network addresses in dial order: the chat port,
// then the fallback port raw and inside TLS (for networks that let only TLS
// through), when there is a fallback port.
func (c Config) ChatAddrs() []string {
	addrs := []string{net.JoinHostPort(c.ChatHost, strconv.Itoa(c.ChatPort))}
	if c.ChatFallbackPort != 0 {
		fallback := net.JoinHostPort(c.ChatHost, strconv.Itoa(c.ChatFallbackPort))
		if c.ChatFallbackPort != c.ChatPort {
			addrs = append(addrs, fallback)
		}
		addrs = append(addrs, "tls://"+fallback)
	}
	return addrs
}

// errNoRootKey explains where the key comes from.
var errNoRootKey = errors.New("no chat network root key: set WA_CHAT_ROOT_KEY (base64) or WA_CHAT_ROOT_KEY_FILE " +
	"(a file holding it). The sandbox chatd logs it at start (\"network root key\"), writes it to " +
	"$WA_DATA_DIR/chat-root.pub (in docker compose: the chatd-pub volume) and serves it at " +
	"GET http://<admin address>/sandbox/root-key")

// RootKey returns the chat network's root public key. When it comes from
// WA_CHAT_ROOT_KEY_FILE and the file does not exist yet (chatd writes it at
// its first start), it waits for it until ctx ends, calling onWait once.
func (c Config) RootKey(ctx context.Context, onWait func()) (ed25519.PublicKey, error) {
	if c.ChatRootKey != "" {
		k, err := wire.ParseRootKey(c.ChatRootKey)
		if err != nil {
			return nil, fmt.Errorf("WA_CHAT_ROOT_KEY: %w", err)
		}
		return k, nil
	}
	if c.ChatRootKeyFile == "" {
		return nil, errNoRootKey
	}
	waited := false
	for {
		b, err := os.ReadFile(c.ChatRootKeyFile)
		if err == nil {
			k, err := wire.ParseRootKey(string(b))
			if err != nil {
				return nil, fmt.Errorf("WA_CHAT_ROOT_KEY_FILE %s: %w", c.ChatRootKeyFile, err)
			}
			return k, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("WA_CHAT_ROOT_KEY_FILE: %w", err)
		}
		if !waited && onWait != nil {
			onWait()
		}
		waited = true
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("WA_CHAT_ROOT_KEY_FILE %s does not exist (is chatd running? it writes the file at start): %w", c.ChatRootKeyFile, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Load reads the configuration.
func Load(file string) (Config, error) {
	v, err := chatdconfig.NewViper(file)
	if err != nil {
		return Config{}, err
	}
	chatdconfig.BindDB(v, "WA_DB_NAME", "openwaba")
	for key, env := range map[string]string{
		"core_addr": "WA_CORE_ADDR", "core_port": "WA_CORE_PORT", "chat_host": "WA_CHAT_HOST", "chat_port": "WA_CHAT_PORT",
		"chat_fallback_port": "WA_CHAT_FALLBACK_PORT", "node_id": "WA_NODE_ID", "data_dir": "WA_DATA_DIR",
		"keystore_secret": "WA_KEYSTORE_SECRET", "media_dir": "WA_MEDIA_DIR", "core_advertise_addr": "WA_CORE_ADVERTISE_ADDR",
		"media_allow_private_links": "WA_MEDIA_ALLOW_PRIVATE_LINKS", "webhook_allow_private": "WA_WEBHOOK_ALLOW_PRIVATE", "webhook_dead_after": "WA_WEBHOOK_DEAD_AFTER", "media_link_timeout": "WA_MEDIA_LINK_TIMEOUT",
		"message_retention": "WA_MESSAGE_RETENTION", "metrics_addr": "WA_CORE_METRICS_ADDR", "metrics_port": "WA_CORE_METRICS_PORT",
		"max_pending_messages": "WA_MAX_PENDING_MESSAGES",
		"chat_root_key":        "WA_CHAT_ROOT_KEY", "chat_root_key_file": "WA_CHAT_ROOT_KEY_FILE",
	} {
		v.BindEnv(key, env)
	}
	host, _ := os.Hostname()
	v.SetDefault("core_addr", "0.0.0.0")
	v.SetDefault("core_port", 6250)
	v.SetDefault("chat_host", "127.0.0.1")
	v.SetDefault("chat_port", 5222)
	v.SetDefault("chat_fallback_port", 443)
	v.SetDefault("node_id", host)
	v.SetDefault("data_dir", "data")
	v.SetDefault("media_link_timeout", "60s")
	v.SetDefault("webhook_dead_after", "168h")
	v.SetDefault("message_retention", "720h")
	v.SetDefault("metrics_addr", "127.0.0.1")
	v.SetDefault("metrics_port", 6261)
	v.SetDefault("max_pending_messages", 100000)
	c := Config{
		DB: chatdconfig.DBFrom(v), CoreAddr: v.GetString("core_addr"), CorePort: v.GetInt("core_port"),
		ChatHost: v.GetString("chat_host"), ChatPort: v.GetInt("chat_port"), ChatFallbackPort: v.GetInt("chat_fallback_port"),
		NodeID: v.GetString("node_id"), DataDir: v.GetString("data_dir"), Log: chatdconfig.LogFrom(v),
		KeystoreSecret: v.GetString("keystore_secret"),
		MediaDir:       v.GetString("media_dir"), MediaAllowPrivateLinks: v.GetBool("media_allow_private_links"),
		WebhookAllowPrivate: v.GetBool("webhook_allow_private"),
		MediaLinkTimeout:    v.GetDuration("media_link_timeout"),
		WebhookDeadAfter:    v.GetDuration("webhook_dead_after"),
		MessageRetention:    v.GetDuration("message_retention"),
		MetricsAddr:         v.GetString("metrics_addr"), MetricsPort: v.GetInt("metrics_port"),
		MaxPendingMessages: v.GetInt("max_pending_messages"),
		ChatRootKey:        v.GetString("chat_root_key"), ChatRootKeyFile: v.GetString("chat_root_key_file"),
	}
	if c.MediaDir == "" {
		c.MediaDir = filepath.Join(c.DataDir, "media")
	}
	c.Advertise = v.GetString("core_advertise_addr")
	if c.Advertise == "" {
		c.Advertise = net.JoinHostPort(advertiseHost(c.CoreAddr), strconv.Itoa(c.CorePort))
	}
	return c, c.validate()
}

// advertiseHost is bind when it is a specific address, else the first
// non-loopback unicast address of the host, else 127.0.0.1.
func advertiseHost(bind string) string {
	if ip := net.ParseIP(bind); bind != "" && (ip == nil || !ip.IsUnspecified()) {
		return bind
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

func (c Config) validate() error {
	if err := c.DB.Validate(); err != nil {
		return err
	}
	if c.CorePort <= 0 || c.CorePort > 65535 {
		return fmt.Errorf("WA_CORE_PORT %d is out of range", c.CorePort)
	}
	if c.ChatPort <= 0 || c.ChatPort > 65535 || c.ChatFallbackPort < 0 || c.ChatFallbackPort > 65535 {
		return errors.New("WA_CHAT_PORT or WA_CHAT_FALLBACK_PORT is out of range")
	}
	if c.ChatHost == "" {
		return errors.New("WA_CHAT_HOST is empty")
	}
	switch {
	case c.ChatRootKey == "" && c.ChatRootKeyFile == "":
		return errNoRootKey
	case c.ChatRootKey != "" && c.ChatRootKeyFile != "":
		return errors.New("set WA_CHAT_ROOT_KEY or WA_CHAT_ROOT_KEY_FILE, not both")
	case c.ChatRootKey != "":
		if _, err := wire.ParseRootKey(c.ChatRootKey); err != nil {
			return fmt.Errorf("WA_CHAT_ROOT_KEY: %w", err)
		}
	}
	if c.WebhookDeadAfter < time.Second {
		return fmt.Errorf("WA_WEBHOOK_DEAD_AFTER %s must be at least 1s", c.WebhookDeadAfter)
	}
	if c.MaxPendingMessages < 0 {
		return fmt.Errorf("WA_MAX_PENDING_MESSAGES %d is negative", c.MaxPendingMessages)
	}
	if c.MetricsPort < 0 || c.MetricsPort > 65535 {
		return fmt.Errorf("WA_CORE_METRICS_PORT %d is out of range", c.MetricsPort)
	}
	if c.MessageRetention < time.Hour {
		return fmt.Errorf("WA_MESSAGE_RETENTION %s must be at least 1h", c.MessageRetention)
	}
	if c.MediaLinkTimeout < time.Second || c.MediaLinkTimeout > 10*time.Minute {
		return fmt.Errorf("WA_MEDIA_LINK_TIMEOUT %s must be between 1s and 10m", c.MediaLinkTimeout)
	}
	if c.NodeID == "" || len(c.NodeID) > 64 || strings.ContainsAny(c.NodeID, " \t\n") {
		return fmt.Errorf("WA_NODE_ID %q must be 1 to 64 characters without spaces", c.NodeID)
	}
	return nil
}
