// Package server is chatd, the sandbox chat network: it accepts client
// connections on the chat port and the fallback port, registers accounts with
// verification codes, routes messages and receipts between accounts through a
// durable per-recipient queue, and serves a loopback admin endpoint for the
// sandbox (pending registration codes).
//
// Delivery is at least once: a stanza is committed to the recipient's queue
// before the sender gets its ack, pushed to the recipient when it is online
// (window of Window unacked stanzas), and deleted when the recipient acks it.
// A resent message or notification (same sender and id) is acked again and
// not queued twice; a resent receipt is queued again (see deduplicated).
//
// A slot (account, shard) is served by one session connection at a time:
// a login that replaces a live connection first ends that session (nothing
// more accepted from it, its queue writes committed, "session ended"
// logged), then logs its own "login". SetShards changes an account's slot
// count, re-maps its queue and ends its sessions.
//
// Concurrency: every connection runs as a reader, a writer and a pusher
// goroutine owned by the connection; Serve owns the connections; when Serve
// returns, none is left (the media server's handlers included).
package server

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/media/volume"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// Window is the number of pushed stanzas a connection may leave unacked.
const Window = 1024

// Config configures a Server.
type Config struct {
	// Listeners for the chat protocol (the main port and the fallback).
	Listeners []net.Listener
	// Admin serves the sandbox admin API; nil disables it.
	Admin net.Listener
	DB    *sql.DB
	Log   *slog.Logger
	// QueueTTL is how long an undelivered stanza is kept (default 30 days).
	QueueTTL time.Duration
	// IdleTimeout closes a connection silent for this long (default 60 s).
	IdleTimeout time.Duration
	// CodeTTL is how long a registration code is valid (default 10 min).
	CodeTTL time.Duration
	// Keys are the network's keys (LoadKeys); nil: Serve loads them from DB.
	Keys *Keys

	// Media serves media blobs over HTTPS; nil disables media (MediaConn
	// is then refused). Clients reach it at MediaURL when set, else at the
	// host they dialled for chat and this listener's port.
	Media net.Listener
	// MediaDir is the directory of the blob volume. Required with Media;
	// without Media the janitor still deletes expired blobs there.
	MediaDir string
	// MediaURL is the optional base URL override (https://host[:port]).
	MediaURL string
	// MediaTTL is how long a blob is kept after its last upload (default
	// 30 days).
	MediaTTL time.Duration
	// MediaTokenTTL is how long a MediaConn token is valid (default 5 min).
	MediaTokenTTL time.Duration

	// EnforceWindow refuses a business's free-form message to a customer
	// outside the 24-hour customer-service window (nack "reengagement"),
	// as WhatsApp does. chatd's binary enables it unless
	// WA_SANDBOX_ENFORCE_WINDOW=false.
	EnforceWindow bool
	// TemplateApprovalDelay is how long the sandbox takes to approve a
	// submitted template (0: at once).
	TemplateApprovalDelay time.Duration
}

// Server is the chatd network.
type Server struct {
	cfg     Config
	log     *slog.Logger
	db      *sql.DB
	queue   *db.Batcher[*storeItem] // inserts into the queue: one writer, so commit order is seq order
	dir     *directory
	seqStep uint64 // @@auto_increment_increment
	fetches fetchLimiter
	keys    atomic.Pointer[Keys] // set by Serve; reloaded by refreshKeys
	tlsCfg  *tls.Config

	vol       *volume.Volume // the media blobs; nil without MediaDir
	mediaPort int            // the media listener's port
	mediaMu   sync.Mutex     // held while a blob's file and row change together

	clock   clock         // the network's clock (the sandbox may move it forward)
	approve chan struct{} // wakes the approver

	mu    sync.Mutex // guards conns and reshards
	conns map[slotKey]*conn
	// reshards counts the shard count changes per account (SetShards), so
	// a login checked against the old count is checked again.
	reshards map[string]uint64
}

type slotKey struct {
	number string
	shard  uint32
}

// New returns a Server; Serve runs it.
func New(cfg Config) *Server {
	if cfg.QueueTTL == 0 {
		cfg.QueueTTL = 30 * 24 * time.Hour
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	if cfg.CodeTTL == 0 {
		cfg.CodeTTL = 10 * time.Minute
	}
	if cfg.MediaTTL == 0 {
		cfg.MediaTTL = DefaultMediaTTL
	}
	if cfg.MediaTokenTTL == 0 {
		cfg.MediaTokenTTL = DefaultMediaTokenTTL
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Log,
		db:       cfg.DB,
		conns:    map[slotKey]*conn{},
		reshards: map[string]uint64{},
		approve:  make(chan struct{}, 1),
	}
	s.queue = db.NewBatcher(cfg.DB, cfg.Log, db.BatchOptions{Workers: 1, MaxBatch: 512}, s.flushStore)
	s.dir = newDirectory(cfg.DB)
	s.tlsCfg = s.tlsConfig()
	if cfg.Media != nil {
		if a, ok := cfg.Media.Addr().(*net.TCPAddr); ok {
			s.mediaPort = a.Port
		}
	}
	return s
}

// Serve accepts connections until ctx ends, then closes them all and returns.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	s.seqStep = 1 // SQLite: AUTOINCREMENT counts by one
	if !db.IsSQLite(s.db) {
		if err := s.db.QueryRowContext(ctx, "SELECT @@auto_increment_increment").Scan(&s.seqStep); err != nil {
			return fmt.Errorf("read auto_increment_increment: %w", err)
		}
	}
	keys := s.cfg.Keys
	if keys == nil {
		var err error
		if keys, err = LoadKeys(ctx, s.db, s.log); err != nil {
			return fmt.Errorf("network keys: %w", err)
		}
	}
	s.keys.Store(keys)
	if err := s.loadClock(ctx); err != nil {
		return fmt.Errorf("sandbox clock: %w", err)
	}
	if s.cfg.Media != nil && s.cfg.MediaDir == "" {
		return errors.New("media: no MediaDir for the blobs")
	}
	if s.cfg.MediaDir != "" {
		vol, err := volume.Open(s.cfg.MediaDir)
		if err != nil {
			return fmt.Errorf("media volume: %w", err)
		}
		s.vol = vol
	}
	commitCtx, stopCommit := context.WithCancel(context.Background())
	wg.Go(func() { s.queue.Run(commitCtx) })

	var conns sync.WaitGroup
	errs := make(chan error, len(s.cfg.Listeners)+2)
	for _, l := range s.cfg.Listeners {
		wg.Go(func() { errs <- s.accept(ctx, l, &conns) })
	}
	if s.cfg.Admin != nil {
		srv := &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() {
			if err := srv.Serve(s.cfg.Admin); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("admin: %w", err)
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			srv.Shutdown(sctx)
		})
	}
	if s.cfg.Media != nil {
		wg.Go(func() { s.serveMedia(ctx, s.cfg.Media, errs) })
	}
	wg.Go(func() { s.janitor(ctx) })
	wg.Go(func() { s.approver(ctx) })
	wg.Go(func() { s.refreshKeys(ctx) })

	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
		cancel()
	}
	for _, l := range s.cfg.Listeners {
		l.Close()
	}
	conns.Wait() // connections end with ctx
	stopCommit()
	wg.Wait()
	return err
}

func (s *Server) accept(ctx context.Context, l net.Listener, conns *sync.WaitGroup) error {
	go func() { <-ctx.Done(); l.Close() }()
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept on %s: %w", l.Addr(), err)
		}
		conns.Go(func() { s.handle(ctx, nc) })
	}
}

// handle runs one connection from handshake to close.
func (s *Server) handle(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	log := s.log.With("remote", nc.RemoteAddr().String(), "port", localPort(nc))
	nc, br, isTLS, err := s.unwrap(ctx, nc)
	if err != nil {
		log.Info("connection refused: no chat protocol", "tls", isTLS, "err", err)
		return
	}
	if isTLS {
		defer nc.Close() // the TLS connection: says goodbye, then closes the raw one
		log = log.With("tls", true)
	}
	keys := s.keys.Load()
	wc, login, err := wire.ServerHandshake(ctx, nc, br, wire.ServerConfig{Static: keys.Static, Cert: keys.Cert})
	if err != nil {
		log.Info("connection refused: handshake failed", "err", err)
		return
	}
	c := &conn{
		srv:      s,
		wc:       wc,
		login:    login,
		log:      log.With("account", login.Account, "shard", login.Shard),
		out:      make(chan *chatdv1.Stanza, 4096),
		signal:   make(chan struct{}, 1),
		kickCh:   make(chan *chatdv1.Stanza, 1),
		readDone: make(chan struct{}),
		pushed:   map[uint64]bool{},
	}
	if fail := s.authorize(ctx, c); fail != nil {
		level := slog.LevelInfo
		if fail.Reason == chatdv1.FailureReason_FAILURE_REASON_UNAUTHORIZED {
			level = slog.LevelWarn // someone holds a key that is not the account's
		}
		c.log.Log(ctx, level, "login refused; connection closed", "reason", fail.Reason.String(), "text", fail.Text,
			"static_key", base64.StdEncoding.EncodeToString(wc.PeerStatic))
		wc.WriteStanza(&chatdv1.Stanza{Body: &chatdv1.Stanza_Failure{Failure: fail}})
		wc.Flush()
		return
	}
	c.run(ctx)
}

func localPort(nc net.Conn) string {
	if a, ok := nc.LocalAddr().(*net.TCPAddr); ok {
		return fmt.Sprint(a.Port)
	}
	return ""
}

// authorize checks the login against the directory and, for a session,
// registers the connection (replacing an older one for the same slot).
func (s *Server) authorize(ctx context.Context, c *conn) *chatdv1.Failure {
	l := c.login
	if !phone.Valid(l.Account) {
		return &chatdv1.Failure{Reason: chatdv1.FailureReason_FAILURE_REASON_BAD_REQUEST, Text: "account must be 5 to 20 digits"}
	}
	switch l.Kind {
	case chatdv1.ConnKind_CONN_KIND_REGISTER:
		c.registerOnly = true
		return nil
	case chatdv1.ConnKind_CONN_KIND_SESSION:
	default:
		return &chatdv1.Failure{Reason: chatdv1.FailureReason_FAILURE_REASON_BAD_REQUEST, Text: "unknown connection kind"}
	}
	return s.claimSlot(ctx, c)
}

// maxLoginAttempts bounds how often a login is checked again because the
// account's shard count changed while it was checked.
const maxLoginAttempts = 3

// claimSlot fences a session login by epoch and makes c its slot's
// connection, replacing (and ending) the previous one. Ordering: the
// previous connection's session has ended (see conn.end) before c logs
// "login", and c can only be ended after it has.
func (s *Server) claimSlot(ctx context.Context, c *conn) *chatdv1.Failure {
	l := c.login
	key := slotKey{l.Account, l.Shard}
	// Held until the login is logged: c is not published yet, so this
	// never waits; an end of c, once published, waits for the login line.
	c.serveMu.Lock()
	defer c.serveMu.Unlock()
	var old *conn
	for attempt := 1; ; attempt++ {
		s.mu.Lock()
		gen := s.reshards[l.Account]
		s.mu.Unlock()
		acct, fail := s.checkLogin(ctx, c)
		if fail != nil {
			return fail
		}
		s.mu.Lock()
		if s.reshards[l.Account] != gen {
			// SetShards committed meanwhile and closed the sessions it
			// found: check this login against the new count.
			s.mu.Unlock()
			if attempt == maxLoginAttempts {
				return &chatdv1.Failure{Reason: chatdv1.FailureReason_FAILURE_REASON_UNSPECIFIED, Text: "try again", RetryAfter: 1}
			}
			continue
		}
		old = s.conns[key]
		if old != nil && old.login.Epoch > l.Epoch {
			s.mu.Unlock()
			return &chatdv1.Failure{Reason: chatdv1.FailureReason_FAILURE_REASON_STALE_EPOCH, Text: "a newer owner holds this slot"}
		}
		c.account = acct
		c.prev = old
		s.conns[key] = c
		s.mu.Unlock()
		break
	}
	if old != nil {
		// Synchronous: from here on chatd accepts nothing from old, and
		// its "session ended" line is logged.
		old.end(endReplaced, chatdv1.StreamErrorCode_STREAM_ERROR_CODE_REPLACED, "replaced by a newer connection")
		c.log.Info("login replaces the slot's previous connection", "old_epoch", old.login.Epoch, "epoch", l.Epoch)
	}
	c.loggedIn = true
	c.log.Info("login", "epoch", l.Epoch, "kind", c.account.kind.String())
	return nil
}

// checkLogin checks a session login against the account (fresh from the
// database) and fences it by epoch: a lower epoch than the slot's is
// refused, a higher one is stored.
func (s *Server) checkLogin(ctx context.Context, c *conn) (*account, *chatdv1.Failure) {
	l := c.login
	acct, err := s.dir.lookup(ctx, l.Account, true)
	if errors.Is(err, errNoAccount) {
		return nil, &chatdv1.Failure{Reason: chatdv1.FailureReason_FAILURE_REASON_NOT_REGISTERED, Text: "account is not registered"}
	}
	if err != nil {
		c.log.Error("login lookup failed", "err", err)
		return nil, &chatdv1.Failure{Reason: chatdv1.FailureReason_FAILURE_REASON_UNSPECIFIED, Text: "try again", RetryAfter: 1}
	}
	if subtle.ConstantTimeCompare(acct.staticPub, c.wc.PeerStatic) != 1 {
		return nil, &chatdv1.Failure{Reason: chatdv1.FailureReason_FAILURE_REASON_UNAUTHORIZED, Text: "static key does not match the registered key"}
	}
	if l.Shard >= uint32(acct.shards) {
		return nil, &chatdv1.Failure{Reason: chatdv1.FailureReason_FAILURE_REASON_BAD_REQUEST, Text: "no such shard"}
	}

	// Fence by epoch: never accept an older owner of the slot, and let a newer
	// one replace the current connection. The epoch row is locked so two
	// logins for one slot are decided one after the other.
	var stale bool
	err = db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		stale = false
		var cur int64
		err := tx.QueryRowContext(ctx, "SELECT epoch FROM slots WHERE number = ? AND shard = ? FOR UPDATE", l.Account, l.Shard).Scan(&cur)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, "INSERT INTO slots (number, shard, epoch) VALUES (?, ?, ?)", l.Account, l.Shard, l.Epoch)
			return err
		case err != nil:
			return err
		case int64(l.Epoch) < cur:
			stale = true
			return nil
		case int64(l.Epoch) > cur:
			_, err = tx.ExecContext(ctx, "UPDATE slots SET epoch = ? WHERE number = ? AND shard = ?", l.Epoch, l.Account, l.Shard)
			return err
		}
		return nil
	})
	if err != nil {
		c.log.Error("slot epoch check failed", "err", err)
		return nil, &chatdv1.Failure{Reason: chatdv1.FailureReason_FAILURE_REASON_UNSPECIFIED, Text: "try again", RetryAfter: 1}
	}
	if stale {
		return nil, &chatdv1.Failure{Reason: chatdv1.FailureReason_FAILURE_REASON_STALE_EPOCH, Text: "a newer owner holds this slot"}
	}
	return acct, nil
}

// release forgets c as its slot's connection, if it still is.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := slotKey{c.login.Account, c.login.Shard}
	if s.conns[key] == c {
		delete(s.conns, key)
	}
}

// online returns the live connection of a slot, or nil.
func (s *Server) online(number string, shard uint32) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[slotKey{number, shard}]
}

// sessionsOf returns the live session connections of number.
func (s *Server) sessionsOf(number string) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*conn
	for k, c := range s.conns {
		if k.number == number {
			out = append(out, c)
		}
	}
	return out
}

// kickAll ends every session of number (after a re-registration with a new
// key).
func (s *Server) kickAll(number string) {
	for _, c := range s.sessionsOf(number) {
		c.end(endLoggedOut, chatdv1.StreamErrorCode_STREAM_ERROR_CODE_LOGGED_OUT, "account re-registered with a new key")
	}
}
