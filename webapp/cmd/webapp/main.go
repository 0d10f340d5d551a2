// Command webapp serves the WhatsApp Business API on-premises REST API over
// HTTPS and forwards the work to the coreapps over gRPC. It owns the users,
// tokens and api_keys tables and waits for coreapp to migrate the schema.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/clusterkeys"
	"github.com/openwaba/openwaba/db/gcpolicy"
	"github.com/openwaba/openwaba/db/keystore"
	"github.com/openwaba/openwaba/db/procprofile"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
	"github.com/openwaba/openwaba/webapp/api"
	"github.com/openwaba/openwaba/webapp/auth"
	"github.com/openwaba/openwaba/webapp/config"
	"github.com/openwaba/openwaba/webapp/connlimit"
	"github.com/openwaba/openwaba/webapp/coreconn"
	"github.com/openwaba/openwaba/webapp/ratelimit"
	"github.com/openwaba/openwaba/webapp/webtls"
)

func main() {
	// A quarter of the collections of GOGC=100 (docs/performance.md); the
	// soft limit keeps the webapp within 64 MB of RSS through media uploads.
	gcpolicy.Apply(gcpolicy.Policy{Percent: 400, Limit: 48 << 20})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile, err := procprofile.Start("webapp")
	if err != nil {
		fmt.Fprintln(os.Stderr, "webapp: profiling:", err)
		os.Exit(1)
	}
	err = run(ctx, os.Stderr, os.Args[1:]) // logs go to stderr, like the other binaries
	stop()
	if perr := stopProfile(); perr != nil {
		fmt.Fprintln(os.Stderr, "webapp: profiling:", perr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "webapp:", err)
		os.Exit(1)
	}
}

// run starts the webapp and blocks until ctx ends, then shuts down in reverse
// start order: HTTP, the gRPC connection, the database. Logs go to stdout.
func run(ctx context.Context, stdout io.Writer, args []string) error {
	cfg, err := config.Load(args, isTerminal(stdout), stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := newLogger(stdout, cfg.Log)
	if err != nil {
		return err
	}
	log.Info("webapp starting", "version", api.Version, "config", cfg)
	// A signal while we wait for the database or coreapp is a normal stop.
	stopped := func(err error) error {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			log.Info("webapp stopped before it was ready", "reason", err)
			return nil
		}
		return err
	}

	d, err := db.Open(ctx, cfg.DB, log)
	if err != nil {
		return stopped(err)
	}
	defer d.Close()
	var logged bool
	err = db.WaitForSchema(ctx, d, db.Core, func(current, want int64) {
		if !logged {
			log.Info("waiting for coreapp to apply the schema", "current", current, "want", want)
			logged = true
		}
	})
	if err != nil {
		return stopped(err)
	}

	store := auth.New(d, auth.Options{})
	if err := store.SeedAdmin(ctx); err != nil {
		return err
	}

	ks, err := waitForKeystore(ctx, cfg, log)
	if err != nil {
		return stopped(err)
	}
	certs, err := webtls.Load(ctx, d, ks, cfg.Web.ServerName, log)
	if err != nil {
		return err
	}

	coreCert, coreToken, err := waitForCoreSecrets(ctx, d, ks, log)
	if err != nil {
		return stopped(err)
	}
	coreTLS, err := clusterkeys.PinnedClientConfig(coreCert)
	if err != nil {
		return fmt.Errorf("coreapp certificate: %w", err)
	}
	endpoints, err := cfg.Core.Parsed()
	if err != nil {
		return err
	}
	// Every address of every endpoint; calls go round robin to ready nodes
	// and retries to other nodes (see package coreconn).
	conn, err := coreconn.Dial(endpoints, coreconn.Options{Creds: credentials.NewTLS(coreTLS), Log: log})
	if err != nil {
		return fmt.Errorf("dial coreapps %v: %w", cfg.Core.Endpoints, err)
	}
	defer conn.Close()

	mediaKey, err := clusterkeys.GetOrCreate(ctx, d, ks, clusterkeys.MediaURLKey, clusterkeys.RandomToken)
	if err != nil {
		return fmt.Errorf("media URL key: %w", err)
	}
	limits, err := cfg.Web.Limits()
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	limiter := ratelimit.New(limits, d, host+":"+rand.Text()[:8], log)
	api.RegisterLimitsShare(limiter.Share)
	srv := api.New(corev1.NewCoreClient(conn), store, log, api.Options{
		Limits:        limiter,
		MonitoringKey: cfg.APIKey,
		CoreToken:     string(coreToken),
		MediaURLKey:   mediaKey,
		Certificates:  certs,
	})
	addr := net.JoinHostPort(cfg.Web.Addr, strconv.Itoa(cfg.Web.Port))
	hs := &http.Server{
		Addr:              addr,
		Handler:           srv.Handler(),
		TLSConfig:         certs.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      90 * time.Second, // above SendMessage's 30 s deadline and retries
		IdleTimeout:       120 * time.Second,
		// Headers up to 1 MiB are read so that the API can refuse those
		// over api.MaxHeaderBytes with its own envelope (431).
		MaxHeaderBytes: 1 << 20,
		// Mostly TLS handshake noise from probes and scanners.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// HTTP/2 buffers what a client sends ahead of the handler's reads
		// (1 MiB per request by default): media uploads are streamed to
		// coreapp, so 128 KiB per stream bounds an HTTP/2 client's burst of
		// uploads and still keeps a transfer's pipeline full on a LAN.
		HTTP2: &http.HTTP2Config{MaxReceiveBufferPerStream: 128 << 10, MaxReceiveBufferPerConnection: 1 << 20},
	}
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	ln := connlimit.New(raw, cfg.Web.MaxConnsPerIP)
	log.Info("webapp listening", "url", "https://"+addr, "core_endpoint", strings.Join(cfg.Core.Endpoints, ","))

	certCtx, stopCerts := context.WithCancel(ctx)
	var certsDone sync.WaitGroup
	certsDone.Go(func() { certs.Run(certCtx) })
	certsDone.Go(func() { limiter.Run(certCtx) })
	defer func() { stopCerts(); certsDone.Wait() }()

	served := make(chan error, 1)
	go func() { served <- hs.ServeTLS(ln, "", "") }()
	select {
	case err := <-served:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}

	log.Info("webapp shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("webapp stopped")
	return nil
}

// waitForCoreSecrets polls until a coreapp has published its certificate and
// the call token, logging now and then while it waits.
func waitForCoreSecrets(ctx context.Context, d *sql.DB, ks *keystore.Keystore, log *slog.Logger) (cert, token []byte, err error) {
	const every = time.Second
	var lastLog time.Time
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		cert, err = clusterkeys.Get(ctx, d, ks, clusterkeys.CoreCert)
		if err == nil {
			token, err = clusterkeys.Get(ctx, d, ks, clusterkeys.CoreToken)
		}
		if err == nil {
			return cert, token, nil
		}
		if !errors.Is(err, clusterkeys.ErrNotFound) {
			return nil, nil, fmt.Errorf("read coreapp secrets: %w", err)
		}
		if time.Since(lastLog) > 30*time.Second {
			log.Info("waiting for a coreapp to publish its certificate and token", "missing", err)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("waiting for coreapp secrets: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// waitForKeystore opens the deployment keystore: WA_KEYSTORE_SECRET, or the
// secret a coreapp generates into the data directory at its first start
// (polled until it appears).
func waitForKeystore(ctx context.Context, cfg config.Config, log *slog.Logger) (*keystore.Keystore, error) {
	var lastLog time.Time
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		ks, err := keystore.Open(cfg.KeystoreSecret, cfg.DataDir)
		if !errors.Is(err, keystore.ErrNoSecret) {
			return ks, err
		}
		if time.Since(lastLog) > 30*time.Second {
			log.Info("waiting for the keystore secret: set WA_KEYSTORE_SECRET as on the coreapps, or share their data directory",
				"file", filepath.Join(cfg.DataDir, keystore.FileName))
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the keystore secret: %w", ctx.Err())
		case <-t.C:
		}
	}
}

func newLogger(w io.Writer, c config.Log) (*slog.Logger, error) {
	level, err := c.SlogLevel()
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
