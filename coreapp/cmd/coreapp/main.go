// Command coreapp runs a coreapp node: the gRPC API the webapp forwards to,
// the connection slots of the registered numbers, and webhook delivery.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	chatdconfig "github.com/openwaba/openwaba/chatd/config"
	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/coreapp/account"
	"github.com/openwaba/openwaba/coreapp/backup"
	"github.com/openwaba/openwaba/coreapp/cluster"
	"github.com/openwaba/openwaba/coreapp/config"
	"github.com/openwaba/openwaba/coreapp/e2e"
	"github.com/openwaba/openwaba/coreapp/egress"
	"github.com/openwaba/openwaba/coreapp/medialib"
	"github.com/openwaba/openwaba/coreapp/messagegc"
	"github.com/openwaba/openwaba/coreapp/metrics"
	"github.com/openwaba/openwaba/coreapp/profile"
	"github.com/openwaba/openwaba/coreapp/receive"
	"github.com/openwaba/openwaba/coreapp/rpc"
	"github.com/openwaba/openwaba/coreapp/send"
	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/coreapp/slot"
	"github.com/openwaba/openwaba/coreapp/stats"
	"github.com/openwaba/openwaba/coreapp/templates"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/clusterkeys"
	"github.com/openwaba/openwaba/db/gcpolicy"
	"github.com/openwaba/openwaba/db/keystore"
	"github.com/openwaba/openwaba/db/procprofile"
	"github.com/openwaba/openwaba/media/volume"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

func main() {
	// A quarter of the collections of GOGC=100 (docs/performance.md); the
	// soft limit keeps a large heap (a media backlog) from growing fivefold.
	gcpolicy.Apply(gcpolicy.Policy{Percent: 400, Limit: 512 << 20})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile, err := procprofile.Start("coreapp")
	if err != nil {
		fmt.Fprintln(os.Stderr, "coreapp: profiling:", err)
		os.Exit(1)
	}
	err = run(ctx, os.Stderr, os.Args[1:])
	stop()
	if perr := stopProfile(); perr != nil {
		fmt.Fprintln(os.Stderr, "coreapp: profiling:", perr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "coreapp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, stderr io.Writer, args []string) error {
	fs := flag.NewFlagSet("coreapp", flag.ContinueOnError)
	file := fs.String("config", os.Getenv("WA_CONFIG_FILE"), "optional config file (yaml, json or toml)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	log, err := chatdconfig.NewLogger(stderr, cfg.Log)
	if err != nil {
		return err
	}
	log = log.With("service", "coreapp", "node", cfg.NodeID)
	log.Info("starting", "config", cfg)
	kctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	rootKey, err := cfg.RootKey(kctx, func() { log.Info("waiting for chatd to write the root key file", "file", cfg.ChatRootKeyFile) })
	cancel()
	if err != nil {
		return err
	}
	log.Info("chat network root key pinned", "root_key", wire.EncodeRootKey(rootKey))

	if cfg.DB.IsSQLite() {
		// SQLite is a single node: a second coreapp on the same file would
		// fight the first over the chat connection.
		lock, err := db.LockSQLite(cfg.DB, "coreapp")
		if errors.Is(err, db.ErrSQLiteInUse) {
			return fmt.Errorf("another coreapp already runs on the SQLite database %s: SQLite mode is a single node; "+
				"several coreapps (high availability, multiconnect) need MySQL (WA_DB_ENGINE=MYSQL, WA_DB_HOSTNAME, …)", cfg.DB.Path)
		}
		if err != nil {
			return fmt.Errorf("lock the SQLite database: %w", err)
		}
		defer lock.Close()
		log.Info("storage: embedded SQLite (single node)", "path", cfg.DB.Path)
	}

	octx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	d, err := db.Open(octx, cfg.DB, log)
	cancel()
	if err != nil {
		return err
	}
	defer d.Close()
	if err := db.Migrate(ctx, d, db.Core); err != nil {
		return err
	}
	ks, created, err := keystore.Load(cfg.KeystoreSecret, cfg.DataDir)
	if err != nil {
		return err
	}
	if created {
		log.Warn("created a keystore secret; every coreapp and webapp of this deployment needs the same one (WA_KEYSTORE_SECRET)",
			"file", filepath.Join(cfg.DataDir, keystore.FileName))
	}
	// The gRPC certificate is pinned by the webapps and the other nodes, so
	// its validity is long: nobody but this deployment trusts it.
	certPEM, err := clusterkeys.GetOrCreate(ctx, d, ks, clusterkeys.CoreCert, clusterkeys.SelfSigned(clusterkeys.Cert{
		CommonName: "openwaba-coreapp", Hosts: []string{"coreapp", "localhost"}, Valid: 10 * 365 * 24 * time.Hour}))
	if err != nil {
		return err
	}
	token, err := clusterkeys.GetOrCreate(ctx, d, ks, clusterkeys.CoreToken, clusterkeys.RandomToken)
	if err != nil {
		return err
	}
	cert, err := clusterkeys.KeyPair(certPEM)
	if err != nil {
		return err
	}

	committer := db.NewCommitter(d, log, db.CommitterOptions{Name: "committer"})
	settingsStore := settings.NewStore(d)
	dispatcher := webhook.NewDispatcher(d, settingsStore, log, webhook.Options{AllowPrivate: cfg.WebhookAllowPrivate, Keystore: ks, DeadAfter: cfg.WebhookDeadAfter})
	// A webhook URL a tenant sets is checked when it is set (and at every
	// connection by the dispatcher).
	settingsStore.CheckTenantURL = egress.Policy{AllowPrivate: cfg.WebhookAllowPrivate}.CheckURL
	if cfg.WebhookAllowPrivate {
		log.Warn("webhook URLs set with API keys may point at private and loopback addresses (WA_WEBHOOK_ALLOW_PRIVATE)")
	}
	vol, err := volume.Open(cfg.MediaDir)
	if err != nil {
		return fmt.Errorf("media volume WA_MEDIA_DIR: %w", err)
	}
	mediaLib := medialib.New(d, vol, ks, log)
	mediaLib.WebhookWake = dispatcher.Wake
	mediaLib.Fetch.AllowPrivate, mediaLib.Fetch.Timeout = cfg.MediaAllowPrivateLinks, cfg.MediaLinkTimeout
	if cfg.MediaAllowPrivateLinks {
		log.Warn("media links may point at private and loopback addresses (WA_MEDIA_ALLOW_PRIVATE_LINKS); do not use this in production")
	}
	accounts := account.NewStore(d, log, cfg.ChatAddrs(), rootKey, ks)
	sendStore := send.NewStore(d, settingsStore, log, dispatcher.Wake)
	sealer := e2e.NewSignal(d, ks)
	recvStore := receive.NewStore(d, sealer, settingsStore, mediaLib, log, dispatcher.Wake)
	hostname, _ := os.Hostname()
	profiles := profile.NewStore(d)
	var slots *slot.Manager
	cl := cluster.New(cluster.Config{DB: d, Log: log, Settings: settingsStore, Node: cfg.NodeID, Hostname: hostname, Advertise: cfg.Advertise,
		Dial: peerDialer(certPEM, token), OnWake: func(ws []*corev1.WakeSlot) { slots.Woken(ws) }})
	slots = slot.New(slot.Config{DB: d, Log: log, Node: cfg.NodeID, Cluster: cl, Accounts: accounts, Send: sendStore, Receive: recvStore,
		Committer: committer, Sealer: sealer, Media: mediaLib, Templates: templates.NewCache(), Profiles: profiles, WebhookWake: dispatcher.Wake,
		ChatAddrs: cfg.ChatAddrs(), Session: session.Config{RootKey: rootKey}})
	mediaLib.NetFor, mediaLib.Connected = slots.MediaNet, slots.ConnectedAccounts

	lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", net.JoinHostPort(cfg.CoreAddr, strconv.Itoa(cfg.CorePort)))
	if err != nil {
		return err
	}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(coreTLS(cert))),
		grpc.ChainUnaryInterceptor(metrics.UnaryInterceptor, rpc.AuthInterceptor(token), rpc.AvailabilityInterceptor(cl)),
		grpc.StreamInterceptor(rpc.StreamAuthInterceptor(token)),
		grpc.MaxRecvMsgSize(4<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	started := time.Now()
	messageGC := messagegc.New(d, log, cfg.MessageRetention, dispatcher.Wake)
	corev1.RegisterCoreServer(srv, rpc.New(log, accounts, settingsStore, sendStore, recvStore, slots, mediaLib, cl).
		WithWebhooks(dispatcher, ks).WithProfiles(profiles).WithMessageGC(messageGC).WithSupport(d, started).WithBackups(backup.New(d, ks)).
		WithStats(stats.Source{DB: d, Node: cfg.NodeID, Started: started, Posts: dispatcher.Posts}).WithMaxPending(cfg.MaxPendingMessages))

	// Start order: committer, dispatcher, slots, gRPC. Stop in reverse:
	// gRPC first (no new work), then slots and dispatcher, committer last.
	workCtx, stopWork := context.WithCancel(context.Background())
	commitCtx, stopCommit := context.WithCancel(context.Background())
	var commitWG, workWG sync.WaitGroup
	commitWG.Go(func() { committer.Run(commitCtx) })
	commitWG.Go(func() { sendStore.Run(commitCtx) })
	commitWG.Go(func() { recvStore.Run(commitCtx) })
	workWG.Go(func() { dispatcher.Run(workCtx) })
	workWG.Go(func() { cl.Run(workCtx) })
	workWG.Go(func() { slots.Run(workCtx) })
	workWG.Go(func() { mediaLib.Run(workCtx) })
	workWG.Go(func() { messageGC.Run(workCtx) })
	metrics.ObserveBatches()
	metrics.Register(metrics.Node{DB: d, Slots: slots.Counts, Master: cl.IsMaster})
	if cfg.MetricsPort > 0 {
		addr := net.JoinHostPort(cfg.MetricsAddr, strconv.Itoa(cfg.MetricsPort))
		workWG.Go(func() {
			if err := metrics.Serve(workCtx, addr, log); err != nil {
				log.Error("the metrics listener stopped", "addr", addr, "err", err)
			}
		})
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	log.Info("coreapp ready", "grpc", lis.Addr().String(), "chat", cfg.ChatAddrs())

	select {
	case <-ctx.Done():
	case err = <-serveErr:
		log.Error("gRPC server stopped", "err", err)
	}
	log.Info("shutting down")
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		srv.Stop()
	}
	stopWork()
	workWG.Wait()
	stopCommit()
	commitWG.Wait()
	log.Info("stopped")
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// coreTLS is the gRPC listener's TLS: the deployment's coreapp certificate
// and the project's server suites.
func coreTLS(cert tls.Certificate) *tls.Config {
	c := clusterkeys.ServerTLS()
	c.Certificates = []tls.Certificate{cert}
	return c
}

// peerDialer returns how this node reaches the other coreapps: TLS pinned
// to the deployment's coreapp certificate (every node serves the same one,
// from the database) and the cluster token.
func peerDialer(certPEM, token []byte) func(addr string) (corev1.CoreClient, func() error, error) {
	return func(addr string) (corev1.CoreClient, func() error, error) {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(certPEM) {
			return nil, nil, errors.New("the coreapp certificate does not parse")
		}
		auth := "Bearer " + string(token)
		conn, err := grpc.NewClient(addr,
			grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "coreapp", MinVersion: tls.VersionTLS12})),
			grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", auth), method, req, reply, cc, opts...)
			}))
		if err != nil {
			return nil, nil, err
		}
		return corev1.NewCoreClient(conn), conn.Close, nil
	}
}
