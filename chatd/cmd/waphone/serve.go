package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/chatd/webphone"
)

// serve runs the web phone until ctx ends.
func serve(ctx context.Context, stdout io.Writer, log *slog.Logger, args, network []string, admin, rootKey, rootKeyFile string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dir := fs.String("dir", envOr("WA_WEBPHONE_DIR", "webphone"), "where the phones live (one waphone home per number)")
	listen := fs.String("listen", net.JoinHostPort(envOr("WA_WEBPHONE_ADDR", "127.0.0.1"), envOr("WA_WEBPHONE_PORT", "9091")), "address of the page and its API")
	certFile := fs.String("tls-cert", "", "PEM certificate for HTTPS (needed off loopback)")
	keyFile := fs.String("tls-key", "", "PEM key of --tls-cert")
	hosts := fs.String("hosts", os.Getenv("WA_WEBPHONE_HOSTS"), "comma-separated Host header values accepted (default on loopback: the listener's own names; elsewhere: any)")
	plain := fs.Bool("plain-http", false, "allow plain HTTP off loopback (only where the port stays on the host, e.g. published on 127.0.0.1)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected %q", fs.Arg(0))
	}
	if len(network) == 0 {
		return errors.New("serve: no --network address")
	}
	root, err := parseRootKey(rootKey, rootKeyFile)
	if err != nil {
		return err
	}
	admin = adminAddr(admin, network)
	if root == nil {
		// As register does: trust the sandbox's admin API on first use;
		// every phone pins the key in its home.
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		root, err = waphone.SandboxRootKey(rctx, admin)
		cancel()
		if err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	loopback := webphone.LoopbackHosts(ln.Addr()) != nil
	useTLS := *certFile != "" || *keyFile != ""
	if !loopback && !useTLS && !*plain {
		return fmt.Errorf("serve: %s is not a loopback address: give --tls-cert and --tls-key (or --plain-http if the port stays on this host)", *listen)
	}
	host := webphone.NewHost(webphone.Config{Dir: *dir, Network: network, Admin: admin, RootKey: root, Log: log})
	srv := webphone.NewServer(host)
	srv.Hosts = webphone.LoopbackHosts(ln.Addr())
	if *hosts != "" {
		srv.Hosts = nil
		for _, h := range splitAddrs(*hosts) {
			srv.Hosts = append(srv.Hosts, strings.ToLower(h))
		}
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	scheme := "http"
	if useTLS {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, hs.TLSConfig)
		scheme = "https"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	hostErr := make(chan error, 1)
	wg.Go(func() { hostErr <- host.Run(ctx) })
	select {
	case <-host.Ready():
	case err := <-hostErr:
		cancel()
		wg.Wait()
		return err
	}
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- hs.Serve(ln) })
	fmt.Fprintf(stdout, "Web phone: %s://%s/ (phones in %s)\n", scheme, ln.Addr(), *dir)
	select {
	case <-ctx.Done():
		err = nil
	case err = <-serveErr:
	case err = <-hostErr:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	// Live channels end when their phones stop; Shutdown waits for them.
	if serr := hs.Shutdown(sctx); serr != nil {
		hs.Close()
	}
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
