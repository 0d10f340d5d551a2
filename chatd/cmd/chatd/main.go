// Command chatd runs the sandbox chat network: the chat protocol on
// WA_CHAT_PORT and WA_CHAT_FALLBACK_PORT (each raw or inside TLS), the media
// server (HTTPS) on WA_CHATD_MEDIA_PORT with its blobs in $WA_DATA_DIR/media,
// and the sandbox admin API on WA_CHATD_ADMIN_ADDR:WA_CHATD_ADMIN_PORT
// (loopback by default).
//
// At its first start on a database chatd creates the network root key; it
// logs its public half ("network root key") and writes it to
// $WA_DATA_DIR/chat-root.pub, where clients (coreapp: WA_CHAT_ROOT_KEY_FILE)
// read the key they pin.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/openwaba/openwaba/chatd/config"
	"github.com/openwaba/openwaba/chatd/server"
	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/gcpolicy"
	"github.com/openwaba/openwaba/db/procprofile"
)

func main() {
	// A quarter of the collections of GOGC=100 (docs/performance.md); the
	// soft limit keeps a large heap (many connections) from growing fivefold.
	gcpolicy.Apply(gcpolicy.Policy{Percent: 400, Limit: 512 << 20})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile, err := procprofile.Start("chatd")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatd: profiling:", err)
		os.Exit(1)
	}
	err = run(ctx, os.Stderr, os.Args[1:])
	stop()
	if perr := stopProfile(); perr != nil {
		fmt.Fprintln(os.Stderr, "chatd: profiling:", perr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, stderr io.Writer, args []string) error {
	fs := flag.NewFlagSet("chatd", flag.ContinueOnError)
	file := fs.String("config", os.Getenv("WA_CONFIG_FILE"), "optional config file (yaml, json or toml)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.LoadChatd(*file)
	if err != nil {
		return err
	}
	log, err := config.NewLogger(stderr, cfg.Log)
	if err != nil {
		return err
	}
	log = log.With("service", "chatd")
	log.Info("starting", "config", cfg)

	octx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	d, err := db.Open(octx, cfg.DB, log)
	cancel()
	if err != nil {
		return err
	}
	defer d.Close()
	if err := db.Migrate(ctx, d, db.Chatd); err != nil {
		return err
	}
	keys, err := server.LoadKeys(ctx, d, log)
	if err != nil {
		return err
	}
	root := wire.EncodeRootKey(keys.RootPublic())
	pubFile := filepath.Join(cfg.DataDir, rootKeyFile)
	if err := writeRootKey(pubFile, root); err != nil {
		return err
	}
	log.Info("network root key", "root_key", root, "file", pubFile,
		"cert_not_after", time.Unix(keys.Cert.NotAfter, 0).UTC())

	var lc net.ListenConfig
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for _, p := range []int{cfg.ChatPort, cfg.FallbackPort} {
		if p == 0 {
			continue
		}
		l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.ListenAddr, strconv.Itoa(p)))
		if err != nil {
			return err
		}
		listeners = append(listeners, l)
		log.Info("chat protocol listening", "addr", l.Addr().String())
	}
	var admin net.Listener
	if cfg.AdminPort != 0 {
		admin, err = lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.AdminAddr, strconv.Itoa(cfg.AdminPort)))
		if err != nil {
			return err
		}
		log.Info("sandbox admin API listening", "url", "http://"+admin.Addr().String())
	}
	var media net.Listener
	if cfg.MediaPort != 0 {
		media, err = lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.ListenAddr, strconv.Itoa(cfg.MediaPort)))
		if err != nil {
			return err
		}
		defer media.Close()
		log.Info("media server listening", "addr", media.Addr().String(), "url_override", cfg.MediaURL,
			"blobs", filepath.Join(cfg.DataDir, "media"), "ttl", cfg.MediaTTL)
	}
	srv := server.New(server.Config{Listeners: listeners, Admin: admin, DB: d, Log: log,
		QueueTTL: cfg.QueueTTL, Keys: keys, Media: media, MediaDir: filepath.Join(cfg.DataDir, "media"),
		MediaURL: cfg.MediaURL, MediaTTL: cfg.MediaTTL,
		EnforceWindow: cfg.EnforceWindow, TemplateApprovalDelay: cfg.TemplateApprovalDelay})
	srv.RegisterMetrics()
	err = srv.Serve(ctx)
	log.Info("stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// rootKeyFile is the name of the file in WA_DATA_DIR that holds the network
// root public key (base64, one line).
const rootKeyFile = "chat-root.pub"

// writeRootKey writes the root key file (0644: it is public) atomically, so a
// client never reads half a key.
func writeRootKey(path, key string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("WA_DATA_DIR: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(key+"\n"), 0o644); err != nil {
		return fmt.Errorf("write the root key: %w", err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil { // whatever the umask
		return fmt.Errorf("write the root key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write the root key: %w", err)
	}
	return nil
}
