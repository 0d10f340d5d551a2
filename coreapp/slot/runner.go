package slot

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/chatd/clientproto"
	"github.com/openwaba/openwaba/chatd/mediaconn"
	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/coreapp/account"
	"github.com/openwaba/openwaba/coreapp/medialib"
	"github.com/openwaba/openwaba/coreapp/receive"
	"github.com/openwaba/openwaba/coreapp/send"
	"github.com/openwaba/openwaba/coreapp/webhook"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// runner is one owned slot: the chatd session, the sender, and the handling
// of pushed stanzas. Replies to chatd that must wait for a commit (acks,
// delivered receipts) go through a queue drained by the runner's own
// goroutine, so committer callbacks never block on the network.
type runner struct {
	m      *Manager
	acct   account.Account
	key    Key
	epoch  uint64
	sess   *session.Session
	sender *send.Sender
	inbox  *receive.Inbox
	media  mediaNet

	ctx     context.Context
	cancel  context.CancelFunc
	done    atomic.Bool
	release atomic.Bool  // free the lease when the runner has stopped (handover)
	lease   atomic.Int64 // unix ms (local clock) until which the runner may act on its lease
	// downSince is when the session last left the connected state (unix
	// ms; 0 while connected).
	downSince atomic.Int64

	tasks chan func(context.Context) // network work the reader must not wait for

	mu      sync.Mutex // guards the fields below
	replies []*chatdv1.Stanza
	signal  chan struct{}
}

func newRunner(m *Manager, a account.Account, k Key, epoch uint64, key wire.KeyPair, leaseUntil time.Time) *runner {
	r := &runner{m: m, acct: a, key: k, epoch: epoch, signal: make(chan struct{}, 1),
		tasks: make(chan func(context.Context), 256)}
	r.lease.Store(leaseUntil.UnixMilli())
	r.downSince.Store(time.Now().UnixMilli())
	r.ctx, r.cancel = context.WithCancel(context.Background())
	sc := m.cfg.Session
	sc.Addrs, sc.Static, sc.Handler = m.cfg.ChatAddrs, key, r
	// A dead path to chatd must show well within unhealthy_interval (the
	// session gives up after two unanswered pings): with the default 3 s,
	// a ping every 0.5 s and 0.75 s for its pong notice a dead path in
	// about 2 s.
	if t := m.cfg.Cluster.Timings(); sc.PingInterval == 0 {
		sc.PingInterval = max(t.Unhealthy/6, 500*time.Millisecond)
		sc.PingTimeout = max(t.Unhealthy/4, 750*time.Millisecond)
		sc.ReadTimeout = max(2*t.Unhealthy, 3*time.Second)
	}
	sc.Log = m.log.With("wa_id", a.WaID, "shard", k.Shard)
	sc.Login = func() *chatdv1.Login {
		return &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_SESSION, Account: a.WaID, Shard: k.Shard, Epoch: epoch,
			ClientVersion: "openwaba-coreapp/1", Passive: true}
	}
	r.sess = session.New(sc)
	r.media = mediaNet{mediaconn.New(mediaconn.Config{IQ: r.sess.IQ, Addr: r.sess.Addr, Log: sc.Log})}
	r.inbox = receive.NewInbox(m.cfg.Receive, sc.Log, a.ID, k.Shard, r.reply, r.later)
	r.sender = send.NewSender(send.SenderConfig{DB: m.cfg.DB, Committer: m.cfg.Committer, Store: m.cfg.Send, Sealer: m.cfg.Sealer,
		Media: m.cfg.Media, Net: r.media, Log: sc.Log, AccountID: a.ID, Shard: k.Shard, Session: r.sess,
		Templates: m.cfg.Templates})
	return r
}

func (r *runner) stopped() bool { return r.done.Load() }

// disconnectedFor is how long the session has not been connected.
func (r *runner) disconnectedFor() time.Duration {
	since := r.downSince.Load()
	if since == 0 {
		return 0
	}
	return time.Since(time.UnixMilli(since))
}
func (r *runner) renewed(until time.Time) { r.lease.Store(until.UnixMilli()) }
func (r *runner) leaseUntil() time.Time   { return time.UnixMilli(r.lease.Load()) }

// run runs the slot until ctx or the runner's own context ends.
func (r *runner) run(ctx context.Context) error {
	defer r.done.Store(true)
	defer r.cancel()
	stop := context.AfterFunc(ctx, r.cancel)
	defer stop()
	g, gctx := errgroup.WithContext(r.ctx)
	g.Go(func() error { return r.sess.Run(gctx) })
	g.Go(func() error { return r.sender.Run(gctx) })
	g.Go(func() error { return r.replyLoop(gctx) })
	g.Go(func() error { return r.taskLoop(gctx) })
	err := g.Wait()
	r.media.c.Close()
	return err
}

// later runs task on the runner's task goroutine.
func (r *runner) later(ctx context.Context, task func(context.Context)) {
	select {
	case r.tasks <- task:
	case <-ctx.Done():
	}
}

func (r *runner) taskLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case task := <-r.tasks:
			task(ctx)
		}
	}
}

// ensurePreKeys publishes the account's Signal keys when chatd has none and
// tops the one-time pool up when it runs low. Slot 0 does it for the
// account.
func (r *runner) ensurePreKeys(ctx context.Context) {
	if r.key.Shard != 0 {
		return
	}
	log := r.m.log.With("wa_id", r.acct.WaID)
	n, first, err := clientproto.EnsurePreKeys(ctx, r.sess.IQ, func(n int) (*chatdv1.PreKeyUpload, error) {
		return r.m.cfg.Sealer.PreKeys(ctx, r.acct.ID, n)
	})
	switch {
	case err != nil:
		log.Warn("publishing pre-keys failed", "err", err)
	case n > 0:
		log.Info("pre-keys published", "new", n, "first", first)
	}
}

// reply queues a stanza for the session after a commit.
func (r *runner) reply(sts ...*chatdv1.Stanza) {
	r.mu.Lock()
	r.replies = append(r.replies, sts...)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *runner) replyLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.signal:
		}
		r.mu.Lock()
		sts := r.replies
		r.replies = nil
		r.mu.Unlock()
		for _, st := range sts {
			// A reply lost with its connection is harmless: chatd pushes the
			// stanza again on the next connection and the receiver
			// deduplicates it.
			if err := r.sess.Send(ctx, st); err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
}

func ack(seq uint64, class chatdv1.AckClass) *chatdv1.Stanza { return clientproto.Ack(seq, class) }

// Connected implements session.Handler: it publishes the account's keys
// when chatd lacks them, before the session goes active.
func (r *runner) Connected(ctx context.Context, gen uint64) {
	r.mu.Lock()
	r.replies = nil // acks for the old connection's pushes are moot: chatd pushes again
	r.mu.Unlock()
	r.ensurePreKeys(ctx)
}

// StateChanged implements session.Handler. Once the session is active,
// everything not acked is sent again.
func (r *runner) StateChanged(s session.State) {
	r.m.log.Debug("slot connection state", "wa_id", r.acct.WaID, "shard", r.key.Shard, "state", s.String())
	if s == session.Connected {
		r.downSince.Store(0)
		r.sender.Connected()
		if r.key.Shard == 0 {
			// On the task goroutine, after activation: a slow media server
			// must not hold the connection's traffic back.
			publish := func(ctx context.Context) {
				ctx, cancel := context.WithTimeout(ctx, publishTimeout)
				defer cancel()
				if err := r.publishProfile(ctx); err != nil && ctx.Err() == nil {
					r.m.log.Warn("publishing the profile failed; it is published again at the next connection or change", "wa_id", r.acct.WaID, "err", err)
				}
			}
			select {
			case r.tasks <- publish:
			default: // StateChanged must not wait
				r.m.log.Warn("the slot's task queue is full; the profile is published at the next connection or change", "wa_id", r.acct.WaID)
			}
		}
	} else {
		r.downSince.CompareAndSwap(0, time.Now().UnixMilli())
	}
}

// Stanza implements session.Handler.
func (r *runner) Stanza(ctx context.Context, st *chatdv1.Stanza) {
	m := r.m
	switch b := st.Body.(type) {
	case *chatdv1.Stanza_Message:
		r.inbox.Message(ctx, b.Message)
	case *chatdv1.Stanza_Receipt:
		rc := b.Receipt
		if rc.Type == chatdv1.ReceiptType_RECEIPT_TYPE_RETRY {
			r.sender.Retry(rc.From, rc.MessageIds, rc.GetRetry().GetCount())
			r.reply(ack(rc.QueueSeq, chatdv1.AckClass_ACK_CLASS_RECEIPT))
			return
		}
		status := map[chatdv1.ReceiptType]int{chatdv1.ReceiptType_RECEIPT_TYPE_DELIVERED: send.StatusDelivered,
			chatdv1.ReceiptType_RECEIPT_TYPE_READ: send.StatusRead, chatdv1.ReceiptType_RECEIPT_TYPE_PLAYED: send.StatusRead}[rc.Type]
		if status == 0 {
			r.reply(ack(rc.QueueSeq, chatdv1.AckClass_ACK_CLASS_RECEIPT))
			return
		}
		m.cfg.Send.Advance(r.acct.ID, rc.From, rc.MessageIds, status, rc.T, func(err error) {
			if err != nil {
				m.log.Error("recording a receipt failed; chatd will push it again", "err", err)
				return
			}
			r.reply(ack(rc.QueueSeq, chatdv1.AckClass_ACK_CLASS_RECEIPT))
		})
	case *chatdv1.Stanza_Ack:
		a := b.Ack
		switch a.Class {
		case chatdv1.AckClass_ACK_CLASS_MESSAGE:
			peer := r.sender.AckedMessage(a.Id)
			done := func(err error) {
				if err != nil {
					m.log.Error("recording chatd's ack failed; the message is sent again", "id", a.Id, "err", err)
				}
				r.sender.Recorded(a.Id)
			}
			if a.Error != "" {
				m.log.Warn("chatd refused a message", "id", a.Id, "reason", a.Error)
				if strings.HasPrefix(a.Error, "template_") && m.cfg.Templates != nil {
					m.cfg.Templates.Invalidate(r.acct.ID) // the pack called it approved
				}
				m.cfg.Send.Fail(r.acct.ID, peer, []string{a.Id}, a.T, nackError(a.Error), done)
				return
			}
			m.cfg.Send.Sent(r.acct.ID, peer, a.Id, a.T, a.Conversation, done)
		case chatdv1.AckClass_ACK_CLASS_RECEIPT:
			if strings.HasPrefix(a.Id, "rcpt.") { // read receipts are stored until acked; "dr." and "rr." are not
				r.sender.AckedReceipt(a.Id)
			}
		}
	case *chatdv1.Stanza_Notification:
		n := b.Notification
		if n.Type == chatdv1.NotificationType_NOTIFICATION_TYPE_PREKEYS_LOW {
			r.later(ctx, r.ensurePreKeys)
		}
		if n.Type == chatdv1.NotificationType_NOTIFICATION_TYPE_TEMPLATE_STATUS {
			r.templateStatus(n)
			return
		}
		if n.Type != chatdv1.NotificationType_NOTIFICATION_TYPE_MESSAGE_EXPIRED {
			r.reply(ack(n.QueueSeq, chatdv1.AckClass_ACK_CLASS_NOTIFICATION))
			return
		}
		m.cfg.Send.Fail(r.acct.ID, n.Peer, n.MessageIds, n.T, webhook.Err(errcode.MessageExpired, ""), func(err error) {
			if err == nil {
				r.reply(ack(n.QueueSeq, chatdv1.AckClass_ACK_CLASS_NOTIFICATION))
			}
		})
	case *chatdv1.Stanza_OfflineComplete:
		m.log.Debug("backlog delivered", "wa_id", r.acct.WaID, "shard", r.key.Shard, "count", b.OfflineComplete.Count)
	}
}

// templateStatus records a template's change of status: the pack is
// dropped, and the message_template_status_update webhook enqueued before
// chatd gets its ack.
func (r *runner) templateStatus(n *chatdv1.Notification) {
	m := r.m
	if m.cfg.Templates != nil {
		m.cfg.Templates.Invalidate(r.acct.ID)
	}
	ts := n.GetTemplate()
	id, _ := strconv.ParseInt(ts.GetId(), 10, 64)
	ev := webhook.TemplateStatusEvent(r.acct.ID, r.acct.WaID, n.T, webhook.TemplateStatus{Event: ts.GetEvent(), ID: id,
		Name: ts.GetName(), Language: ts.GetLanguage(), Reason: ts.GetReason()})
	m.log.Info("template status changed", "wa_id", r.acct.WaID, "template_id", ts.GetId(), "name", ts.GetName(), "language", ts.GetLanguage(), "event", ts.GetEvent())
	m.cfg.Committer.Go(func(tx *sql.Tx) error { return webhook.Enqueue(tx, ev) }, func(err error) {
		if err != nil {
			m.log.Error("recording a template status failed; chatd will push it again", "err", err)
			return
		}
		if m.cfg.WebhookWake != nil {
			m.cfg.WebhookWake()
		}
		r.reply(ack(n.QueueSeq, chatdv1.AckClass_ACK_CLASS_NOTIFICATION))
	})
}

// nackError maps chatd's refusal reasons to on-prem errors.
func nackError(reason string) webhook.Error {
	switch reason {
	case "unknown_recipient", "bad_recipient":
		return webhook.Err(errcode.UserNotValid, "")
	case "reengagement":
		return webhook.Err(errcode.ReEngagement, "")
	case "blocked":
		return webhook.Err(errcode.RecipientBlocked, "the business blocked this contact (POST /v1/contacts/{wa_id}/unblock)")
	case "template_unknown", "template_pending":
		return webhook.Err(errcode.TemplateMissing, "the network has no approved template with this id")
	case "template_rejected":
		return webhook.Err(errcode.TemplateRejected, "")
	case "template_paused":
		return webhook.Err(errcode.TemplatePaused, "")
	case "template_disabled":
		return webhook.Err(errcode.TemplateDisabled, "")
	}
	return webhook.Err(errcode.GenericStatus, reason)
}

var _ session.Handler = (*runner)(nil)

// mediaNet is a slot's access to chatd's media server, as the media
// library wants it: a blob the server does not have is ErrBlobGone, and an
// upload the server refuses for good fails its message (medialib.ErrSend).
type mediaNet struct{ c *mediaconn.Client }

func (n mediaNet) Upload(ctx context.Context, msgType string, blob io.Reader, blobLen int64, encSHA256 []byte) (string, error) {
	p, err := n.c.Upload(ctx, msgType, blob, blobLen, encSHA256)
	if err != nil && mediaconn.Permanent(err) {
		return "", fmt.Errorf("%w: the media server refused the file: %v", medialib.ErrSend, err)
	}
	return p, err
}

func (n mediaNet) Download(ctx context.Context, directPath string, w io.Writer, max int64) (int64, error) {
	k, err := n.c.Download(ctx, directPath, w, max)
	if err != nil && mediaconn.Permanent(err) {
		return k, fmt.Errorf("%w: %v", medialib.ErrBlobGone, err)
	}
	return k, err
}
