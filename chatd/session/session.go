// Package session keeps one client connection to chatd alive: it dials the
// network's addresses in order (5222, then the fallback port raw, then the
// fallback port over TLS; through an HTTP CONNECT proxy when HTTPS_PROXY says
// so), runs the Noise handshake, which authenticates chatd against the pinned
// network root key, waits for the login result, keeps the connection alive
// with pings and reconnects with capped exponential backoff and full jitter.
//
// A Session is safe for concurrent use. Run owns every goroutine the session
// starts; when Run returns, none is left. Stanzas arrive through the Handler,
// called from the connection's reader goroutine, one at a time and in order.
package session

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/chatd/wire"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// State is the connection state.
type State int32

// States, in the order a healthy session passes them.
const (
	Disconnected State = iota
	Connecting
	Connected // logged in and active
	Stopped   // terminal: replaced, logged out or refused
)

func (s State) String() string {
	switch s {
	case Disconnected:
		return "disconnected"
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Errors.
var (
	ErrNotConnected = errors.New("not connected to chatd")
	ErrReplaced     = errors.New("another connection took this slot")
	ErrLoggedOut    = errors.New("logged out by the network")
	ErrRefused      = errors.New("login refused")
	ErrNoRootKey    = errors.New("no chat network root key configured: the session cannot authenticate chatd")
)

// Handler receives what the server sends.
type Handler interface {
	// Connected is called after a successful login on connection number
	// gen, before the session goes active; the handler can resend what is
	// unacknowledged.
	Connected(ctx context.Context, gen uint64)
	// Stanza is called for every stanza that is not an IQ response.
	Stanza(ctx context.Context, st *chatdv1.Stanza)
	// StateChanged reports state transitions.
	StateChanged(State)
}

// Config configures a Session.
type Config struct {
	// Addrs are dialled in order until one connects and completes the
	// handshake: "host:port" for the raw protocol, "tls://host:port" for
	// the protocol inside TLS (e.g. host:5222, host:443, tls://host:443).
	// When the environment names an HTTPS proxy for "https://host:port"
	// (HTTPS_PROXY, NO_PROXY), the address is reached through it with HTTP
	// CONNECT.
	Addrs  []string
	Static wire.KeyPair
	// RootKey is the network's root public key (required): chatd must prove
	// it holds a certificate from it. A server that cannot is not trusted.
	RootKey ed25519.PublicKey
	// Login returns the login for each new connection (the epoch may have
	// changed).
	Login   func() *chatdv1.Login
	Handler Handler
	Log     *slog.Logger

	DialTimeout  time.Duration // per address; default 10 s
	PingInterval time.Duration // default 20 s (±25 % jitter)
	PingTimeout  time.Duration // default 10 s
	ReadTimeout  time.Duration // no inbound byte for this long → reconnect; default 45 s
	BackoffBase  time.Duration // default 1 s
	BackoffMax   time.Duration // default 60 s
	// SendQueue is the number of stanzas buffered for writing; default 4096.
	SendQueue int

	// untrustedIsTerminal makes Run return when no address proved it
	// belongs to the network (Once); Run otherwise keeps trying.
	untrustedIsTerminal bool
}

func (c *Config) defaults() {
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 20 * time.Second
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = 10 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 45 * time.Second
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 60 * time.Second
	}
	if c.SendQueue == 0 {
		c.SendQueue = 4096
	}
}

// Session is a self-healing client connection.
type Session struct {
	cfg      Config
	log      *slog.Logger
	state    atomic.Int32
	gen      atomic.Uint64
	idSeq    atomic.Uint64
	idPrefix string

	mu      sync.Mutex           // guards the fields below
	out     chan *chatdv1.Stanza // nil while disconnected
	pending map[string]chan *chatdv1.IQ
	addr    string           // the address of the live connection
	success *chatdv1.Success // the login answer of the live (or last) connection
}

// New returns a Session; call Run to connect.
func New(cfg Config) *Session {
	cfg.defaults()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Session{cfg: cfg, log: cfg.Log, pending: map[string]chan *chatdv1.IQ{}, idPrefix: rand.Text()[:12]}
}

// State returns the current state.
func (s *Session) State() State { return State(s.state.Load()) }

// Addr returns the address of the live connection, or "".
func (s *Session) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

func (s *Session) setState(st State) {
	if State(s.state.Swap(int32(st))) != st {
		s.cfg.Handler.StateChanged(st)
	}
}

// Success returns the network's answer to the last login (nil before the
// first): what it tells clients about the session, such as whether it
// enforces the customer-service window.
func (s *Session) Success() *chatdv1.Success {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.success
}

// NewID returns a fresh stanza id: a random prefix of this Session and a
// counter, so ids are unique per sender even across processes and installs
// of one number (chatd deduplicates by sender and id).
func (s *Session) NewID() string {
	return fmt.Sprintf("%s.%d", s.idPrefix, s.idSeq.Add(1))
}

// Run connects and reconnects until ctx ends or the network ends the session
// for good (ErrReplaced, ErrLoggedOut, ErrRefused). Without a root key it
// returns ErrNoRootKey at once. A server that fails authentication
// (wire.ErrUntrustedServer) is not the end: it may be a transient
// misconfiguration, or an attack on one path; Run logs it as an error and
// keeps trying with backoff.
func (s *Session) Run(ctx context.Context) error {
	if len(s.cfg.RootKey) != ed25519.PublicKeySize {
		return ErrNoRootKey
	}
	defer s.setState(Disconnected)
	failures := 0
	for {
		s.setState(Connecting)
		started := time.Now()
		err := s.connectAndServe(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		untrusted := errors.Is(err, wire.ErrUntrustedServer)
		if untrusted && s.cfg.untrustedIsTerminal {
			s.setState(Stopped)
			return err
		}
		var terminal *terminalError
		if errors.As(err, &terminal) {
			s.log.Warn("chatd session ended for good", "err", err)
			s.setState(Stopped)
			return terminal.err
		}
		s.setState(Disconnected)
		var restart *restartError
		if errors.As(err, &restart) {
			s.log.Info("chatd asked to reconnect", "reason", err)
			failures = 0
			continue
		}
		if time.Since(started) > 30*time.Second {
			failures = 0
		}
		failures++
		d := s.backoff(failures)
		if untrusted {
			s.log.Error("no trusted chatd server: check the pinned root key (WA_CHAT_ROOT_KEY), or the connection is being intercepted",
				"root_key", wire.EncodeRootKey(s.cfg.RootKey), "err", err, "retry_in", d.Round(time.Millisecond))
		} else {
			s.log.Warn("chatd connection lost", "err", err, "retry_in", d.Round(time.Millisecond))
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// backoff is full jitter over a capped exponential.
func (s *Session) backoff(failures int) time.Duration {
	ceil := s.cfg.BackoffBase << min(failures-1, 16)
	if ceil <= 0 || ceil > s.cfg.BackoffMax {
		ceil = s.cfg.BackoffMax
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(ceil)))
	return time.Duration(n.Int64()) + s.cfg.BackoffBase/10
}

type terminalError struct{ err error }

func (e *terminalError) Error() string { return e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

type restartError struct{ text string }

func (e *restartError) Error() string { return e.text }

// connect tries every address in order: dial it, run the handshake. An
// address that does not answer, whose handshake breaks (a middlebox that
// lets only TLS through) or whose server is not trusted makes it try the
// next one; the error names every attempt.
func (s *Session) connect(ctx context.Context) (*wire.Conn, string, error) {
	var errs []error
	for _, addr := range s.cfg.Addrs {
		c, err := s.connectAddr(ctx, addr)
		if err == nil {
			return c, addr, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		if errors.Is(err, wire.ErrUntrustedServer) {
			s.log.Error("chatd server NOT trusted: it has no valid certificate from the pinned root key", "addr", addr, "err", err)
		} else {
			s.log.Debug("chatd address failed, trying the next", "addr", addr, "err", err)
		}
		errs = append(errs, err)
	}
	return nil, "", fmt.Errorf("connect to chatd: %w", errors.Join(errs...))
}

func (s *Session) connectAddr(ctx context.Context, addr string) (*wire.Conn, error) {
	nc, err := dial(ctx, addr, s.cfg.DialTimeout)
	if err != nil {
		return nil, err
	}
	c, err := wire.ClientHandshake(ctx, nc, wire.ClientConfig{Static: s.cfg.Static, RootKey: s.cfg.RootKey, Login: s.cfg.Login()})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	return c, nil
}

func (s *Session) connectAndServe(ctx context.Context) error {
	c, addr, err := s.connect(ctx)
	if err != nil {
		return err
	}
	nc := c.NetConn()
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(wire.HandshakeTimeout))
	first, err := c.ReadStanza()
	if err != nil {
		return fmt.Errorf("login at %s: %w", addr, err)
	}
	switch b := first.Body.(type) {
	case *chatdv1.Stanza_Success:
		s.mu.Lock()
		s.success = b.Success
		s.mu.Unlock()
	case *chatdv1.Stanza_Failure:
		err := fmt.Errorf("%w: %s %s", ErrRefused, b.Failure.Reason, b.Failure.Text)
		return &terminalError{err}
	default:
		return fmt.Errorf("login at %s: unexpected first stanza %T", addr, b)
	}
	gen := s.gen.Add(1)
	s.log.Info("connected to chatd", "addr", addr, "gen", gen)

	g, gctx := errgroup.WithContext(ctx)
	out := make(chan *chatdv1.Stanza, s.cfg.SendQueue)
	s.mu.Lock()
	s.out, s.addr = out, addr
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.out, s.addr = nil, ""
		for id, ch := range s.pending {
			close(ch)
			delete(s.pending, id)
		}
		s.mu.Unlock()
	}()

	g.Go(func() error { return s.writeLoop(gctx, c, out) })
	g.Go(func() error { return s.readLoop(gctx, c) })
	g.Go(func() error {
		<-gctx.Done()
		return nc.Close()
	})
	g.Go(func() error {
		s.cfg.Handler.Connected(gctx, gen)
		if _, err := s.IQ(gctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Active{Active: &chatdv1.Active{}}}); err != nil {
			return fmt.Errorf("activate: %w", err)
		}
		s.setState(Connected)
		return s.pingLoop(gctx)
	})
	return g.Wait()
}

func (s *Session) writeLoop(ctx context.Context, c *wire.Conn, out chan *chatdv1.Stanza) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case st := <-out:
			if err := c.WriteStanza(st); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			// Write everything queued before paying for a flush.
			for more := true; more; {
				select {
				case st := <-out:
					if err := c.WriteStanza(st); err != nil {
						return fmt.Errorf("write: %w", err)
					}
				default:
					more = false
				}
			}
			if err := c.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
	}
}

func (s *Session) readLoop(ctx context.Context, c *wire.Conn) error {
	for {
		c.NetConn().SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
		st, err := c.ReadStanza()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read: %w", err)
		}
		switch b := st.Body.(type) {
		case *chatdv1.Stanza_Iq:
			if t := b.Iq.Type; t == chatdv1.IQType_IQ_TYPE_RESULT || t == chatdv1.IQType_IQ_TYPE_ERROR {
				s.mu.Lock()
				ch := s.pending[b.Iq.Id]
				delete(s.pending, b.Iq.Id)
				s.mu.Unlock()
				if ch != nil {
					ch <- b.Iq
				}
				continue
			}
		case *chatdv1.Stanza_StreamError:
			switch b.StreamError.Code {
			case chatdv1.StreamErrorCode_STREAM_ERROR_CODE_REPLACED:
				return &terminalError{ErrReplaced}
			case chatdv1.StreamErrorCode_STREAM_ERROR_CODE_LOGGED_OUT:
				return &terminalError{ErrLoggedOut}
			case chatdv1.StreamErrorCode_STREAM_ERROR_CODE_RESTART, chatdv1.StreamErrorCode_STREAM_ERROR_CODE_SERVER_SHUTDOWN:
				return &restartError{b.StreamError.Code.String()}
			}
			return fmt.Errorf("stream error %s: %s", b.StreamError.Code, b.StreamError.Text)
		}
		s.cfg.Handler.Stanza(ctx, st)
	}
}

func (s *Session) pingLoop(ctx context.Context) error {
	misses := 0
	for {
		jitter, _ := rand.Int(rand.Reader, big.NewInt(int64(s.cfg.PingInterval/2)+1))
		wait := s.cfg.PingInterval*3/4 + time.Duration(jitter.Int64())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		pctx, cancel := context.WithTimeout(ctx, s.cfg.PingTimeout)
		_, err := s.IQ(pctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}})
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			misses++
			if misses >= 2 {
				return fmt.Errorf("keepalive: %d pings unanswered: %w", misses, err)
			}
			continue
		}
		misses = 0
	}
}

// Send queues st on the live connection, waiting while the queue is full.
// It returns ErrNotConnected when there is no live connection; a stanza
// queued on a connection that then drops is lost, so callers resend what
// chatd did not ack.
func (s *Session) Send(ctx context.Context, st *chatdv1.Stanza) error {
	s.mu.Lock()
	out := s.out
	s.mu.Unlock()
	if out == nil {
		return ErrNotConnected
	}
	select {
	case out <- st:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TrySend queues st without waiting; it reports whether it did.
func (s *Session) TrySend(st *chatdv1.Stanza) bool {
	s.mu.Lock()
	out := s.out
	s.mu.Unlock()
	if out == nil {
		return false
	}
	select {
	case out <- st:
		return true
	default:
		return false
	}
}

// IQError is an IQ answered with type ERROR.
type IQError struct {
	Code uint32
	Text string
}

func (e *IQError) Error() string { return fmt.Sprintf("chatd error %d: %s", e.Code, e.Text) }

// OnPrem turns an IQError that carries an on-prem code (chatd answers
// template, block and two-step requests with them: codes of 1000 and up
// that package errcode knows) into that *errcode.Error; any other err is
// returned as it is.
func OnPrem(err error) error {
	var ie *IQError
	if errors.As(err, &ie) && ie.Code >= 1000 && errcode.Code(ie.Code).Known() {
		return &errcode.Error{Code: errcode.Code(ie.Code), Details: ie.Text}
	}
	return err
}

// IQ sends a request and waits for its response. A response of type ERROR
// comes back as *IQError.
func (s *Session) IQ(ctx context.Context, iq *chatdv1.IQ) (*chatdv1.IQ, error) {
	if iq.Id == "" {
		iq.Id = s.NewID()
	}
	ch := make(chan *chatdv1.IQ, 1) // the reader never blocks on a caller that gave up
	s.mu.Lock()
	if s.out == nil {
		s.mu.Unlock()
		return nil, ErrNotConnected
	}
	s.pending[iq.Id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, iq.Id)
		s.mu.Unlock()
	}()
	if err := s.Send(ctx, &chatdv1.Stanza{Body: &chatdv1.Stanza_Iq{Iq: iq}}); err != nil {
		return nil, err
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return nil, ErrNotConnected
		}
		if resp.Type == chatdv1.IQType_IQ_TYPE_ERROR {
			e := &IQError{Code: 500, Text: "error"}
			if pe := resp.GetError(); pe != nil {
				e.Code, e.Text = pe.Code, pe.Text
			}
			return nil, e
		}
		return resp, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Once runs one short-lived connection for a registration: it connects with
// cfg (Addrs, Static, RootKey, Log and timings; Login and Handler are its
// own), logs in with login, calls fn with a function to send IQs, and
// closes. It retries a network that cannot be reached until ctx ends, but
// returns at once when the server is not trusted (wire.ErrUntrustedServer)
// or refuses the login.
func Once(ctx context.Context, cfg Config, login *chatdv1.Login, fn func(iq func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)) error) error {
	h := &onceHandler{ready: make(chan struct{})}
	cfg.Login = func() *chatdv1.Login { return login }
	cfg.Handler = h
	cfg.untrustedIsTerminal = true
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 2 * time.Second
	}
	s := New(cfg)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var err error
	select {
	case <-h.ready:
		err = fn(s.IQ)
	case err = <-done:
		if err == nil {
			err = ErrNotConnected
		}
		return err
	case <-ctx.Done():
		err = ctx.Err()
	}
	cancel()
	<-done
	return err
}

type onceHandler struct {
	ready chan struct{}
	once  sync.Once
}

func (h *onceHandler) Connected(context.Context, uint64)       {}
func (h *onceHandler) Stanza(context.Context, *chatdv1.Stanza) {}
func (h *onceHandler) StateChanged(st State) {
	if st == Connected {
		h.once.Do(func() { close(h.ready) })
	}
}
