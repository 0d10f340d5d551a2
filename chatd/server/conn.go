package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/chatd/shard"
	"github.com/openwaba/openwaba/chatd/wire"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// Queue row kinds.
const (
	kindMessage      = 1
	kindReceipt      = 2
	kindNotification = 3
)

// MaxStanzaID is the longest stanza id accepted.
const MaxStanzaID = 64

// maxReceiptIDs caps the message ids one receipt may carry.
const maxReceiptIDs = 256

var errKicked = errors.New("connection kicked")

// Reasons a session ends, as logged in "session ended".
const (
	endReplaced       = "replaced"         // a login with the same or a higher epoch took the slot
	endSetShards      = "set_shards"       // the account's shard count changed
	endLoggedOut      = "logged_out"       // the account re-registered with a new key
	endClosedByClient = "closed_by_client" // the client closed the connection
	endIdleTimeout    = "idle_timeout"     // nothing read for IdleTimeout
	endServerStop     = "server_stop"      // chatd is stopping
	endProtocol       = "protocol"         // a protocol violation or a frame that failed to open
	endSlowClient     = "slow_client"      // the write queue overflowed
	endError          = "error"            // anything else (a failed write, queue write or read)
)

type conn struct {
	srv          *Server
	wc           *wire.Conn
	login        *chatdv1.Login
	account      *account // nil on registration connections
	registerOnly bool
	log          *slog.Logger
	out          chan *chatdv1.Stanza
	signal       chan struct{} // wakes the pusher
	kickCh       chan *chatdv1.Stanza
	cancel       context.CancelFunc

	// The end of a session (see end). prev is the connection this one
	// replaced: set before the connection is published in Server.conns,
	// then read and cleared only inside endOnce.
	prev *conn
	// serveMu is held while a stanza from the client is handled, while
	// the pusher pushes, and from the slot claim until the login is logged.
	serveMu  sync.Mutex
	loggedIn bool        // guarded by serveMu: the "login" line was logged
	ended    atomic.Bool // stored under serveMu: nothing more is accepted or pushed
	endOnce  sync.Once
	stores   sync.WaitGroup // queue writes submitted for this connection's stanzas, not yet done
	messages atomic.Int64   // messages committed to a queue from this connection
	receipts atomic.Int64   // receipts committed to a queue from this connection

	readDone chan struct{} // closed when the reader returns
	deferred []func()      // see later; the reader's own

	mu        sync.Mutex // guards the fields below
	reason    string     // why the session ends; the first recorded wins
	lingering bool       // a StreamError was sent: the read deadline is the linger's
	active    bool
	offers    []offer
	dirty     bool // offers were dropped: the pusher must read the queue
	acked     []uint64
	pushed    map[uint64]bool // pushed on this connection and not yet acked
}

type offer struct {
	seq     uint64
	payload []byte
}

func (c *conn) run(ctx context.Context) {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	defer c.srv.release(c)
	if !c.registerOnly {
		// Before release: until the session has ended (and logged it), it
		// stays the slot's connection, so a login replacing it waits for
		// its end.
		defer func() {
			if parent.Err() != nil {
				c.setReason(endServerStop)
			}
			c.end(endError, 0, "")
		}()
	}

	success := &chatdv1.Success{SessionId: c.srv.newID(), T: time.Now().Unix(), WindowEnforced: c.srv.cfg.EnforceWindow}
	if !c.registerOnly {
		var depth uint32
		c.srv.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM queue WHERE recipient = ? AND shard = ?", c.login.Account, c.login.Shard).Scan(&depth)
		success.QueueDepth = depth
	}
	if err := c.wc.WriteStanza(&chatdv1.Stanza{Body: &chatdv1.Stanza_Success{Success: success}}); err != nil {
		return
	}
	if err := c.wc.Flush(); err != nil {
		return
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.writeLoop(gctx) })
	g.Go(func() error {
		defer close(c.readDone)
		return c.readLoop(gctx)
	})
	if !c.registerOnly {
		g.Go(func() error { return c.pushLoop(gctx) })
	}
	g.Go(func() error { <-gctx.Done(); return c.wc.Close() })
	err := g.Wait()
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, errKicked) {
		c.log.Info("connection closed", "err", err)
	} else {
		c.log.Debug("connection closed", "err", err)
	}
}

// end ends a session. When it returns, chatd accepts nothing more from the
// client and pushes nothing more to it: a stanza being handled (or a push
// round) has finished, the queue writes of the stanzas already taken have
// committed, and the "session ended" line is logged, after the one of the
// connection this one replaced. Then the connection is closed, with a
// StreamError when code is set. reason is recorded unless one was before.
// Safe to call more than once and from any goroutine: every call returns
// after the first has logged.
func (c *conn) end(reason string, code chatdv1.StreamErrorCode, text string) {
	c.setReason(reason)
	c.endOnce.Do(func() {
		if p := c.prev; p != nil {
			p.end(endReplaced, chatdv1.StreamErrorCode_STREAM_ERROR_CODE_REPLACED, "replaced by a newer connection")
			c.prev = nil
		}
		c.serveMu.Lock()
		c.ended.Store(true)
		loggedIn := c.loggedIn
		c.serveMu.Unlock()
		c.stores.Wait()
		if loggedIn {
			c.mu.Lock()
			reason := c.reason
			c.mu.Unlock()
			c.log.Info("session ended", "epoch", c.login.Epoch, "reason", reason,
				"messages", c.messages.Load(), "receipts", c.receipts.Load())
		}
	})
	if code != chatdv1.StreamErrorCode_STREAM_ERROR_CODE_UNSPECIFIED {
		c.kick(code, text)
	} else {
		c.close("")
	}
}

// setReason records why the connection ends, unless a reason was recorded.
func (c *conn) setReason(reason string) {
	if reason == "" {
		return
	}
	c.mu.Lock()
	if c.reason == "" {
		c.reason = reason
	}
	c.mu.Unlock()
}

// kick sends a stream error and closes the connection.
func (c *conn) kick(code chatdv1.StreamErrorCode, text string) {
	select {
	case c.kickCh <- &chatdv1.Stanza{Body: &chatdv1.Stanza_StreamError{StreamError: &chatdv1.StreamError{Code: code, Text: text}}}:
	default:
	}
}

// close ends the connection without a goodbye, recording reason.
func (c *conn) close(reason string) {
	c.setReason(reason)
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// send queues st for writing; a connection that cannot keep up is closed
// (everything it misses is still queued durably or will be resent).
func (c *conn) send(st *chatdv1.Stanza) {
	select {
	case c.out <- st:
	default:
		c.log.Warn("client too slow: write queue full; closing")
		c.close(endSlowClient)
	}
}

func (c *conn) writeLoop(ctx context.Context) error {
	write := func(st *chatdv1.Stanza) error {
		c.wc.NetConn().SetWriteDeadline(time.Now().Add(30 * time.Second))
		err := c.wc.WriteStanza(st)
		if err != nil && ctx.Err() == nil {
			c.setReason(endError)
		}
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case st := <-c.kickCh:
			write(st)
			c.wc.Flush()
			c.linger(ctx)
			return errKicked
		case st := <-c.out:
			if err := write(st); err != nil {
				return err
			}
			for more := true; more; {
				select {
				case st := <-c.out:
					if err := write(st); err != nil {
						return err
					}
				default:
					more = false
				}
			}
			if err := c.wc.Flush(); err != nil {
				return err
			}
		}
	}
}

// lingerTimeout is how long a connection that got a StreamError waits for
// the client to close before chatd closes it.
const lingerTimeout = 2 * time.Second

// linger half-closes the connection after its StreamError and waits until
// the client closes its side (the reader drains and drops what still
// arrives) or lingerTimeout passes. Closing a socket with unread input
// resets it, and the reset can destroy the StreamError before the client
// reads it; a client that never learns it was replaced would come back with
// its stale epoch.
func (c *conn) linger(ctx context.Context) {
	nc := c.wc.NetConn()
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.mu.Lock()
	c.lingering = true
	nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	c.mu.Unlock()
	select {
	case <-c.readDone:
	case <-ctx.Done():
	}
}

func (c *conn) readLoop(ctx context.Context) error {
	for {
		c.mu.Lock()
		lingering := c.lingering
		if !lingering {
			c.wc.NetConn().SetReadDeadline(time.Now().Add(c.srv.cfg.IdleTimeout))
		}
		c.mu.Unlock()
		st, err := c.wc.ReadStanza()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.mu.Lock()
			lingering = c.lingering
			c.mu.Unlock()
			if lingering {
				return errKicked // the client closed after the StreamError, or did not in time
			}
			var ne net.Error
			switch {
			case errors.Is(err, wire.ErrDecrypt) || errors.Is(err, wire.ErrFrameTooLarge):
				// Nothing of the frame is used; the connection cannot go on.
				c.log.Warn("frame refused (tampered, replayed or oversized); connection closed", "err", err)
				c.setReason(endProtocol)
			case errors.As(err, &ne) && ne.Timeout():
				c.setReason(endIdleTimeout)
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET):
				c.setReason(endClosedByClient)
			}
			return fmt.Errorf("read: %w", err)
		}
		if err := c.serve(ctx, st); err != nil {
			c.log.Info("protocol violation; closing", "err", err)
			c.setReason(endProtocol)
			c.wc.NetConn().SetWriteDeadline(time.Now().Add(time.Second))
			c.kick(chatdv1.StreamErrorCode_STREAM_ERROR_CODE_PROTOCOL, err.Error())
			return err
		}
	}
}

// serve handles one stanza from the client, unless its session has ended:
// then the stanza is dropped unanswered (the client sends it again on its
// next connection) and the reader keeps draining until the connection
// closes.
func (c *conn) serve(ctx context.Context, st *chatdv1.Stanza) error {
	err := c.serveLocked(ctx, st)
	for _, fn := range c.deferred {
		fn()
	}
	c.deferred = nil
	return err
}

func (c *conn) serveLocked(ctx context.Context, st *chatdv1.Stanza) error {
	if c.registerOnly {
		return c.dispatch(ctx, st)
	}
	c.serveMu.Lock()
	defer c.serveMu.Unlock()
	if c.ended.Load() {
		return nil
	}
	return c.dispatch(ctx, st)
}

// later runs fn once the stanza being handled is done, outside serveMu.
// Work that ends sessions must run there: ending a session waits for its
// serveMu (and for those of the sessions it replaced), so it must never
// wait while holding one.
func (c *conn) later(fn func()) { c.deferred = append(c.deferred, fn) }

func (c *conn) dispatch(ctx context.Context, st *chatdv1.Stanza) error {
	if iq := st.GetIq(); iq != nil {
		return c.onIQ(ctx, iq)
	}
	if c.registerOnly {
		return errors.New("only registration requests are allowed on this connection")
	}
	switch b := st.Body.(type) {
	case *chatdv1.Stanza_Message:
		c.onMessage(ctx, b.Message)
	case *chatdv1.Stanza_Receipt:
		c.onReceipt(ctx, b.Receipt)
	case *chatdv1.Stanza_Ack:
		c.onAck(b.Ack)
	default:
		return fmt.Errorf("unexpected stanza %T from a client", b)
	}
	return nil
}

func (c *conn) nack(id string, class chatdv1.AckClass, reason string) {
	stanzasRefused.WithLabelValues(reason).Inc()
	c.send(&chatdv1.Stanza{Body: &chatdv1.Stanza_Ack{Ack: &chatdv1.Ack{Id: id, Class: class, T: time.Now().Unix(), Error: reason}}})
}

// recipientSlot resolves the recipient's account and the slot that serves
// traffic from sender (from the cached count; the commit decides again).
func (c *conn) recipientSlot(ctx context.Context, to string) (*account, uint32, error) {
	a, err := c.srv.dir.lookup(ctx, to, false)
	if err != nil {
		return nil, 0, err
	}
	var sh uint32
	if a.kind == chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS {
		sh = shard.For(c.login.Account, a.shards)
	}
	return a, sh, nil
}

func validID(id string) bool { return id != "" && len(id) <= MaxStanzaID }

func (c *conn) onMessage(ctx context.Context, m *chatdv1.Message) {
	cls := chatdv1.AckClass_ACK_CLASS_MESSAGE
	switch {
	case !validID(m.Id):
		c.nack(m.Id, cls, "bad_id")
		return
	case !phone.Valid(m.To) || m.To == c.login.Account:
		c.nack(m.Id, cls, "bad_recipient")
		return
	case m.Enc == nil || len(m.Enc.Ciphertext) == 0:
		c.nack(m.Id, cls, "no_payload")
		return
	case m.Enc.Type != chatdv1.EncType_ENC_TYPE_PKMSG && m.Enc.Type != chatdv1.EncType_ENC_TYPE_MSG:
		// The network relays end-to-end encrypted payloads only.
		c.nack(m.Id, cls, "not_encrypted")
		return
	}
	to, sh, err := c.recipientSlot(ctx, m.To)
	if errors.Is(err, errNoAccount) {
		c.nack(m.Id, cls, "unknown_recipient")
		return
	}
	if err != nil {
		c.log.Error("recipient lookup failed; closing so the client resends", "err", err)
		c.close(endError)
		return
	}
	m.From = c.login.Account
	m.T = time.Now().Unix()
	m.QueueSeq, m.Offline = 0, false
	if m.PushName == "" || c.account.kind == chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS {
		m.PushName = c.account.name
	}
	if len(m.PushName) > 256 {
		m.PushName = m.PushName[:256]
	}
	// A resend answering a retry receipt is a new stanza with the same id.
	key := m.Id
	if m.Retry > 0 {
		key = fmt.Sprintf("%s#r%d", m.Id, m.Retry)
	}
	it := &storeItem{kind: kindMessage, id: key, t: m.T, recipient: to.number, shard: sh, stanzaKind: m.Kind, templateID: m.TemplateId}
	business := chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS
	switch {
	case c.account.kind == business && to.kind != business:
		it.dir = dirFromBusiness
	case c.account.kind != business && to.kind == business:
		it.dir = dirToBusiness
	}
	c.store(it, m.Id, &chatdv1.Stanza{Body: &chatdv1.Stanza_Message{Message: m}}, cls)
}

func (c *conn) onReceipt(ctx context.Context, r *chatdv1.Receipt) {
	cls := chatdv1.AckClass_ACK_CLASS_RECEIPT
	switch {
	case !validID(r.Id):
		c.nack(r.Id, cls, "bad_id")
		return
	case !phone.Valid(r.To) || r.To == c.login.Account:
		c.nack(r.Id, cls, "bad_recipient")
		return
	case len(r.MessageIds) == 0 || len(r.MessageIds) > maxReceiptIDs:
		c.nack(r.Id, cls, "bad_ids")
		return
	case r.Type == chatdv1.ReceiptType_RECEIPT_TYPE_UNSPECIFIED:
		c.nack(r.Id, cls, "bad_type")
		return
	}
	for _, id := range r.MessageIds {
		if !validID(id) {
			c.nack(r.Id, cls, "bad_ids")
			return
		}
	}
	to, sh, err := c.recipientSlot(ctx, r.To)
	if errors.Is(err, errNoAccount) {
		c.nack(r.Id, cls, "unknown_recipient")
		return
	}
	if err != nil {
		c.log.Error("recipient lookup failed; closing so the client resends", "err", err)
		c.close(endError)
		return
	}
	r.From = c.login.Account
	r.T = time.Now().Unix()
	r.QueueSeq, r.Offline = 0, false
	c.store(&storeItem{kind: kindReceipt, id: r.Id, t: r.T, recipient: to.number, shard: sh}, r.Id, &chatdv1.Stanza{Body: &chatdv1.Stanza_Receipt{Receipt: r}}, cls)
}

// store queues st (as it, whose kind, key, time, recipient and slot are
// set) and acks the sender (with id) after the commit. A key the sender
// already used is acked again as the first time and not queued twice; a
// message the window or its template refuses is nacked. The slot is the one
// at routing time; the commit decides the slot of a business recipient
// again (see flushStore).
func (c *conn) store(it *storeItem, id string, st *chatdv1.Stanza, cls chatdv1.AckClass) {
	payload, err := proto.Marshal(st)
	if err != nil {
		c.nack(id, cls, "bad_stanza")
		return
	}
	it.sender, it.payload = c.login.Account, payload
	c.stores.Add(1) // under serveMu (serve): end waits for this write
	c.srv.queue.Go(it, func(err error) {
		defer c.stores.Done()
		if err != nil {
			c.log.Error("queue write failed; closing so the client resends", "err", err)
			c.close(endError)
			return
		}
		if it.nack != "" {
			c.nack(id, cls, it.nack)
			return
		}
		c.send(&chatdv1.Stanza{Body: &chatdv1.Stanza_Ack{Ack: &chatdv1.Ack{Id: id, Class: cls, T: it.firstT, Conversation: it.conv}}})
		if !it.dup && !it.dropped {
			switch it.kind {
			case kindMessage:
				c.messages.Add(1)
				stanzasStored.WithLabelValues("message").Inc()
			case kindReceipt:
				c.receipts.Add(1)
				stanzasStored.WithLabelValues("receipt").Inc()
			}
			c.srv.deliver(it.recipient, it.shard, it.seq, payload)
		}
	})
}

// deliver offers a committed queue row to the recipient's live connection.
func (s *Server) deliver(recipient string, sh uint32, seq uint64, payload []byte) {
	if rc := s.online(recipient, sh); rc != nil {
		rc.offer(seq, payload)
	}
}

func (c *conn) offer(seq uint64, payload []byte) {
	c.mu.Lock()
	if len(c.offers) >= 4*Window {
		c.offers, c.dirty = nil, true
	} else {
		c.offers = append(c.offers, offer{seq, payload})
	}
	c.mu.Unlock()
	c.wake()
}

func (c *conn) wake() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// onAck deletes an acked queue row; the pusher forgets it after the delete
// commits, so a reread of the queue cannot push it again. Only a stanza
// pushed on this connection can be acked here.
func (c *conn) onAck(a *chatdv1.Ack) {
	seq := a.QueueSeq
	c.mu.Lock()
	ok := c.pushed[seq]
	delete(c.pushed, seq)
	c.mu.Unlock()
	if !ok {
		return // not pushed here (or acked twice): it is pushed again if still queued
	}
	c.srv.queue.Go(&storeItem{ackSeq: seq}, func(err error) {
		if err != nil {
			c.log.Error("queue delete failed", "seq", seq, "err", err)
			return // the row stays in flight; it is pushed again on the next connection
		}
		c.mu.Lock()
		c.acked = append(c.acked, seq)
		c.mu.Unlock()
		c.wake()
	})
}

type queued struct {
	seq     uint64
	payload []byte
}

func (s *Server) loadQueue(ctx context.Context, number string, sh uint32, limit int) ([]queued, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT seq, payload FROM queue WHERE recipient = ? AND shard = ? ORDER BY seq LIMIT ?", number, sh, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []queued
	for rows.Next() {
		var q queued
		if err := rows.Scan(&q.seq, &q.payload); err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// pushLoop delivers the queue: the backlog from the database, then live
// offers straight from memory while the connection keeps up, falling back to
// the database whenever offers were dropped or the window filled.
func (c *conn) pushLoop(ctx context.Context) error {
	inflight := map[uint64]struct{}{}
	var maxPushed uint64
	live, offlineSent := false, false
	backlogCount := uint32(0)
	push := func(seq uint64, payload []byte, offline bool) error {
		st := new(chatdv1.Stanza)
		if err := proto.Unmarshal(payload, st); err != nil {
			return fmt.Errorf("queue row %d: %w", seq, err)
		}
		switch b := st.Body.(type) {
		case *chatdv1.Stanza_Message:
			b.Message.QueueSeq, b.Message.Offline = seq, offline
		case *chatdv1.Stanza_Receipt:
			b.Receipt.QueueSeq, b.Receipt.Offline = seq, offline
		case *chatdv1.Stanza_Notification:
			b.Notification.QueueSeq = seq
		}
		inflight[seq] = struct{}{}
		maxPushed = max(maxPushed, seq)
		if offline {
			backlogCount++
		}
		c.mu.Lock()
		c.pushed[seq] = true
		c.mu.Unlock()
		c.send(st)
		return nil
	}
	for {
		c.mu.Lock()
		offers, dirty, acked, active := c.offers, c.dirty, c.acked, c.active
		c.offers, c.dirty, c.acked = nil, false, nil
		c.mu.Unlock()
		for _, seq := range acked {
			delete(inflight, seq)
		}
		// A push round holds serveMu: once the session has ended, nothing
		// more is pushed.
		round := func() error {
			c.serveMu.Lock()
			defer c.serveMu.Unlock()
			if !active || c.ended.Load() {
				return nil
			}
			if dirty {
				live = false
			}
			if live {
				for _, o := range offers {
					if o.seq <= maxPushed {
						continue // already pushed from the database read
					}
					if len(inflight) >= Window {
						live = false
						break
					}
					if err := push(o.seq, o.payload, false); err != nil {
						return err
					}
				}
			}
			if !live && len(inflight) < Window {
				limit := Window + len(inflight)
				rows, err := c.srv.loadQueue(ctx, c.login.Account, c.login.Shard, limit)
				if err != nil {
					return fmt.Errorf("read queue: %w", err)
				}
				full := false
				for _, r := range rows {
					if _, ok := inflight[r.seq]; ok {
						continue
					}
					if len(inflight) >= Window {
						full = true
						break
					}
					if err := push(r.seq, r.payload, !offlineSent); err != nil {
						return err
					}
				}
				if !full && len(rows) < limit {
					live = true
					if !offlineSent {
						offlineSent = true
						c.send(&chatdv1.Stanza{Body: &chatdv1.Stanza_OfflineComplete{OfflineComplete: &chatdv1.OfflineComplete{Count: backlogCount}}})
					}
				}
			}
			return nil
		}
		if err := round(); err != nil {
			return err
		}
		select {
		case <-c.signal:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *conn) onIQ(ctx context.Context, iq *chatdv1.IQ) error {
	if iq.Type != chatdv1.IQType_IQ_TYPE_GET && iq.Type != chatdv1.IQType_IQ_TYPE_SET {
		return fmt.Errorf("iq %q of type %s from a client", iq.Id, iq.Type)
	}
	if !validID(iq.Id) {
		return errors.New("iq without a valid id")
	}
	var (
		result *chatdv1.IQ
		err    *chatdv1.IQError
	)
	switch p := iq.Payload.(type) {
	case *chatdv1.IQ_Ping:
		result = &chatdv1.IQ{Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}}
	case *chatdv1.IQ_Active:
		c.mu.Lock()
		c.active = true
		c.mu.Unlock()
		c.wake()
		result = &chatdv1.IQ{}
	case *chatdv1.IQ_Register:
		result, err = c.srv.register(ctx, c, p.Register)
	case *chatdv1.IQ_Verify:
		result, err = c.srv.verify(ctx, c, p.Verify)
	case *chatdv1.IQ_ContactCheck:
		if c.registerOnly {
			return errors.New("contact check on a registration connection")
		}
		result, err = c.srv.contactCheck(ctx, p.ContactCheck)
	case *chatdv1.IQ_PrekeyUpload:
		if c.registerOnly {
			return errors.New("pre-key upload on a registration connection")
		}
		result, err = c.srv.uploadPreKeys(ctx, c.login.Account, p.PrekeyUpload)
	case *chatdv1.IQ_PrekeyCount:
		if c.registerOnly {
			return errors.New("pre-key count on a registration connection")
		}
		result, err = c.srv.preKeyCount(ctx, c.login.Account)
	case *chatdv1.IQ_PrekeyFetch:
		if c.registerOnly {
			return errors.New("bundle fetch on a registration connection")
		}
		result, err = c.srv.fetchBundle(ctx, c.login.Account, p.PrekeyFetch.GetNumber())
	case *chatdv1.IQ_MediaConn:
		if c.registerOnly {
			return errors.New("media token on a registration connection")
		}
		result, err = c.srv.mediaConn(c.login.Account)
	case *chatdv1.IQ_SetShards:
		result, err = c.srv.setShards(ctx, c, iq.Type, p.SetShards)
	case *chatdv1.IQ_TemplateCreate:
		result, err = c.srv.templateCreate(ctx, c, p.TemplateCreate)
	case *chatdv1.IQ_TemplateQuery:
		result, err = c.srv.templateQuery(ctx, c, p.TemplateQuery)
	case *chatdv1.IQ_TemplateDelete:
		result, err = c.srv.templateDelete(ctx, c, p.TemplateDelete)
	case *chatdv1.IQ_TemplateEdit:
		result, err = c.srv.templateEdit(ctx, c, p.TemplateEdit)
	case *chatdv1.IQ_WindowQuery:
		result, err = c.srv.windowQuery(ctx, c, p.WindowQuery)
	case *chatdv1.IQ_Block:
		result, err = c.srv.block(ctx, c, p.Block)
	case *chatdv1.IQ_TwoStep:
		result, err = c.srv.twoStep(ctx, c, iq.Type, p.TwoStep)
	case *chatdv1.IQ_ProfileSet:
		result, err = c.srv.profileSet(ctx, c, iq.Type, p.ProfileSet)
	case *chatdv1.IQ_ProfileGet:
		result, err = c.srv.profileGet(ctx, c, p.ProfileGet)
	default:
		err = &chatdv1.IQError{Code: 400, Text: fmt.Sprintf("unsupported request %T", p)}
	}
	if err != nil {
		c.send(&chatdv1.Stanza{Body: &chatdv1.Stanza_Iq{Iq: &chatdv1.IQ{Id: iq.Id, Type: chatdv1.IQType_IQ_TYPE_ERROR, Payload: &chatdv1.IQ_Error{Error: err}}}})
		return nil
	}
	result.Id, result.Type = iq.Id, chatdv1.IQType_IQ_TYPE_RESULT
	c.send(&chatdv1.Stanza{Body: &chatdv1.Stanza_Iq{Iq: result}})
	return nil
}

// maxContactCheck caps the numbers of one contact check.
const maxContactCheck = 1000

func (s *Server) contactCheck(ctx context.Context, req *chatdv1.ContactCheck) (*chatdv1.IQ, *chatdv1.IQError) {
	if len(req.Numbers) > maxContactCheck {
		return nil, &chatdv1.IQError{Code: 400, Text: fmt.Sprintf("at most %d numbers per check", maxContactCheck)}
	}
	res := &chatdv1.ContactCheckResult{}
	var valid []any
	for _, n := range req.Numbers {
		if phone.Valid(n) {
			valid = append(valid, n)
		}
	}
	found := map[string]bool{}
	if len(valid) > 0 {
		q := "SELECT number FROM accounts WHERE number IN (?" + strings.Repeat(",?", len(valid)-1) + ")"
		rows, err := s.db.QueryContext(ctx, q, valid...)
		if err != nil {
			s.log.Error("contact check failed", "err", err)
			return nil, &chatdv1.IQError{Code: 500, Text: "internal error"}
		}
		defer rows.Close()
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				return nil, &chatdv1.IQError{Code: 500, Text: "internal error"}
			}
			found[n] = true
		}
	}
	for _, n := range req.Numbers {
		res.Contacts = append(res.Contacts, &chatdv1.ContactStatus{Number: n, Registered: found[n]})
	}
	return &chatdv1.IQ{Payload: &chatdv1.IQ_ContactCheckResult{ContactCheckResult: res}}, nil
}
