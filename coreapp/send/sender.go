package send

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/api/message"
	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/coreapp/e2e"
	"github.com/openwaba/openwaba/coreapp/medialib"
	"github.com/openwaba/openwaba/coreapp/templates"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Sender timings.
const (
	// resendAfter is how long a sent stanza may wait for chatd's ack before
	// it is sent again (chatd deduplicates).
	resendAfter = 30 * time.Second
	// rescanInterval is the backstop scan of the database for work this
	// process was not told about (other nodes, lost wake-ups).
	rescanInterval = 5 * time.Second
	scanPage       = 1000
)

// Sender sends one slot's accepted messages and pending receipts. Messages
// accepted on this node arrive through Enqueue; a database scan at every
// (re)connection and every rescanInterval picks up everything else.
//
// Order: accepts of one account commit one after another (they lock the
// account row), so within a slot seq order is commit order, and a customer's
// message n+1, accepted only after n was committed, has the higher seq. So
// before sending fresh messages the sender lists, in one index-only query,
// the slot's pending seqs above the highest it has seen: that finds the
// messages other nodes accepted meanwhile (their wake-up may be late or
// lost during a handover) and sends everything in seq order. A message's envelope is sealed and
// stored before it is sent for the first time, so a resend after a crash
// sends the same bytes.
//
// A Sender is safe for concurrent use; Run owns its goroutine.
type Sender struct {
	db        *sql.DB
	committer *db.Committer
	store     *Store
	sealer    e2e.Sealer
	log       *slog.Logger
	accountID int64
	shard     uint32
	sess      *session.Session
	media     *medialib.Store
	net       medialib.Net
	templates *templates.Cache
	wake      chan struct{}

	mu           sync.Mutex // guards the fields below
	fresh        []Message
	rescan       bool
	rescanRcpts  bool
	inflight     map[string]flight    // message id → when it was sent
	rcptInflight map[string]time.Time // receipt id → when it was sent
	retries      []retry              // retry receipts to answer
	blocked      map[string]blocker   // customer → the media message holding later ones
	// seen is the highest seq of the slot's pending messages this sender
	// has listed (only Run's goroutine uses it).
	seen int64
}

// retry is a peer's request to encrypt a message again.
type retry struct {
	peer, id string
	count    uint32
}

type flight struct {
	peer string
	at   time.Time
	// acked: chatd acked it and its sent status is on its way to the table
	// (Store.Sent may wait for the receipt): not sent again meanwhile.
	acked bool
}

// SenderConfig is what a Sender works with.
type SenderConfig struct {
	DB        *sql.DB
	Committer *db.Committer
	Store     *Store
	Sealer    e2e.Sealer
	// Media encrypts files from the volume; Net uploads them.
	Media     *medialib.Store
	Net       medialib.Net
	Log       *slog.Logger
	AccountID int64
	Shard     uint32
	Session   *session.Session
	// Templates hydrates template messages (nil: they fail).
	Templates *templates.Cache
}

// NewSender returns the sender of one slot, sending over cfg.Session.
func NewSender(cfg SenderConfig) *Sender {
	return &Sender{db: cfg.DB, committer: cfg.Committer, store: cfg.Store, sealer: cfg.Sealer, media: cfg.Media, net: cfg.Net, log: cfg.Log,
		accountID: cfg.AccountID, shard: cfg.Shard, sess: cfg.Session, templates: cfg.Templates,
		wake: make(chan struct{}, 1), rescan: true, rescanRcpts: true,
		inflight: map[string]flight{}, rcptInflight: map[string]time.Time{}, blocked: map[string]blocker{}}
}

func (s *Sender) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Enqueue hands a message committed on this node to the sender.
func (s *Sender) Enqueue(m Message) {
	s.mu.Lock()
	if len(s.fresh) < 100_000 {
		s.fresh = append(s.fresh, m)
	} else {
		s.rescan = true // the scan finds it
	}
	s.mu.Unlock()
	s.poke()
}

// Retry asks the sender to encrypt a message again for a peer that could
// not decrypt it (from the second retry on, with a new session).
func (s *Sender) Retry(peer string, ids []string, count uint32) {
	s.mu.Lock()
	for _, id := range ids {
		s.retries = append(s.retries, retry{peer, id, count})
	}
	s.mu.Unlock()
	s.poke()
}

// Rescan makes the sender look for accepted messages in the database now
// (another node accepted some for this slot).
func (s *Sender) Rescan() {
	s.mu.Lock()
	s.rescan = true
	s.mu.Unlock()
	s.poke()
}

// ReceiptsPending tells the sender that receipts were queued.
func (s *Sender) ReceiptsPending() {
	s.mu.Lock()
	s.rescanRcpts = true
	s.mu.Unlock()
	s.poke()
}

// Connected resets what is in flight: on a new connection everything not
// acked is sent again.
func (s *Sender) Connected() {
	s.mu.Lock()
	clear(s.inflight)
	clear(s.rcptInflight)
	s.rescan, s.rescanRcpts = true, true
	s.mu.Unlock()
	s.poke()
}

// AckedMessage notes that chatd acked a message and returns its peer (""
// if this sender did not send it on the current connection). The message
// is not sent again until Recorded says whether its sent status was
// written.
func (s *Sender) AckedMessage(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.inflight[id]
	if ok {
		f.acked = true
		s.inflight[id] = f
	}
	return f.peer
}

// Recorded forgets an acked message once its sent status was written (or
// failed to be: then a later scan sends it again).
func (s *Sender) Recorded(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.inflight[id]; ok && f.acked {
		delete(s.inflight, id)
	}
}

// AckedReceipt deletes a receipt chatd stored.
func (s *Sender) AckedReceipt(id string) {
	s.mu.Lock()
	delete(s.rcptInflight, id)
	s.mu.Unlock()
	accountID := s.accountID
	s.committer.Go(func(tx *sql.Tx) error {
		_, err := tx.Exec("DELETE FROM outbound_receipts WHERE account_id = ? AND id = ?", accountID, id)
		return err
	}, func(err error) {
		if err != nil {
			s.log.Error("deleting a sent receipt failed; it will be sent again", "err", err)
		}
	})
}

// Run sends until ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	t := time.NewTicker(rescanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.wake:
		case <-t.C:
			s.mu.Lock()
			s.rescan, s.rescanRcpts = true, true
			s.mu.Unlock()
		}
		if s.sess.State() != session.Connected {
			continue // Connected wakes us
		}
		if err := s.pump(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sending paused", "err", err)
			s.mu.Lock()
			s.rescan, s.rescanRcpts = true, true
			s.mu.Unlock()
		}
	}
}

func (s *Sender) pump(ctx context.Context) error {
	s.mu.Lock()
	fresh, rescan, rescanRcpts, retries := s.fresh, s.rescan, s.rescanRcpts, s.retries
	s.fresh, s.rescan, s.rescanRcpts, s.retries = nil, false, false, nil
	s.mu.Unlock()
	if len(retries) > 0 {
		if err := s.answerRetries(ctx, retries); err != nil {
			return err
		}
	}

	if rescan {
		var after int64
		for {
			page, err := s.loadPending(ctx, after)
			if err != nil {
				return err
			}
			if len(page) > 0 {
				s.seen = max(s.seen, page[len(page)-1].Seq)
			}
			if err := s.sendMessages(ctx, page); err != nil {
				return err
			}
			if len(page) < scanPage {
				break
			}
			after = page[len(page)-1].Seq
		}
	}
	if len(fresh) > 0 {
		var err error
		if fresh, err = s.inOrder(ctx, fresh); err != nil {
			return err
		}
	}
	if err := s.sendMessages(ctx, fresh); err != nil {
		return err
	}
	if rescanRcpts {
		return s.sendReceipts(ctx)
	}
	return nil
}

// inOrder returns the slot's pending messages committed since the last
// listing, in seq order: the fresh ones from memory, the others (accepted on
// other nodes) read from the database. A fresh message not listed was sent
// by an earlier scan, or is past the page: the next scan (asked for then)
// sends it.
func (s *Sender) inOrder(ctx context.Context, fresh []Message) ([]Message, error) {
	rows, err := s.db.QueryContext(ctx,
		"SELECT seq, id FROM outbound_messages WHERE account_id = ? AND shard = ? AND status = 0 AND seq > ? ORDER BY seq LIMIT ?",
		s.accountID, s.shard, s.seen, scanPage)
	if err != nil {
		return nil, fmt.Errorf("list pending messages: %w", err)
	}
	defer rows.Close()
	byID := make(map[string]Message, len(fresh))
	for _, m := range fresh {
		byID[m.ID] = m
	}
	var out []Message
	missing := map[string]int{} // id → index in out
	for rows.Next() {
		var m Message
		if err := rows.Scan(&m.Seq, &m.ID); err != nil {
			return nil, err
		}
		if f, ok := byID[m.ID]; ok {
			f.Seq = m.Seq
			m = f
		} else {
			missing[m.ID] = len(out)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) > 0 {
		s.seen = out[len(out)-1].Seq
	}
	if len(out) == scanPage {
		s.Rescan()
	}
	if len(missing) == 0 {
		return out, nil
	}
	args := []any{s.accountID}
	for id := range missing {
		args = append(args, id)
	}
	full, err := s.db.QueryContext(ctx, "SELECT seq, id, peer, content, payload FROM outbound_messages WHERE account_id = ? AND id IN ("+db.Placeholders(len(missing))+")", args...)
	if err != nil {
		return nil, fmt.Errorf("load pending messages: %w", err)
	}
	defer full.Close()
	for full.Next() {
		m := Message{Shard: s.shard}
		if err := full.Scan(&m.Seq, &m.ID, &m.Peer, &m.Content, &m.Payload); err != nil {
			return nil, err
		}
		out[missing[m.ID]] = m
	}
	if err := full.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Sender) loadPending(ctx context.Context, after int64) ([]Message, error) {
	rows, err := s.db.QueryContext(ctx,
		"SELECT seq, id, peer, content, payload FROM outbound_messages WHERE account_id = ? AND shard = ? AND status = 0 AND seq > ? ORDER BY seq LIMIT ?",
		s.accountID, s.shard, after, scanPage)
	if err != nil {
		return nil, fmt.Errorf("load pending messages: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m := Message{Shard: s.shard}
		if err := rows.Scan(&m.Seq, &m.ID, &m.Peer, &m.Content, &m.Payload); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// due is what of msgs is to be sent at now: what is not in flight, or
// was sent resendAfter ago with no ack. An acked message is not due until
// Recorded forgets it: its sent status may still be waiting to be written
// (send.sentLinger), and a scan meanwhile still sees it unsent.
func (s *Sender) due(msgs []Message, now time.Time) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	todo := msgs[:0:0]
	for _, m := range msgs {
		if f, ok := s.inflight[m.ID]; ok && (f.acked || now.Sub(f.at) < resendAfter) {
			continue
		}
		todo = append(todo, m)
	}
	return todo
}

// sendMessages seals what is not sealed yet, then sends what is not in
// flight (or waited too long for its ack).
func (s *Sender) sendMessages(ctx context.Context, msgs []Message) error {
	todo := s.due(msgs, time.Now())
	if len(todo) == 0 {
		return nil
	}
	// Chunks of at most mediaWorkers media files to prepare: the files of
	// the next chunk are encrypted and uploaded while the current one is
	// sealed and sent, so the first messages leave early and the pipeline
	// stays full. Text messages need no chunking (one transaction seals
	// them all).
	var chunks [][]Message
	for len(todo) > 0 {
		n, files := 0, 0
		for n < len(todo) && (files < mediaWorkers || !mediaPending(todo[n])) {
			if mediaPending(todo[n]) {
				files++
			}
			n++
		}
		chunks, todo = append(chunks, todo[:n]), todo[n:]
	}
	if len(chunks) == 1 {
		return s.sealAndSend(ctx, s.prepare(ctx, chunks[0]))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := func(msgs []Message) chan prepped {
		ch := make(chan prepped, 1)
		go func() { ch <- s.prepare(ctx, msgs) }()
		return ch
	}
	next := start(chunks[0])
	defer func() {
		cancel()
		if next != nil {
			<-next // the preparing goroutine ends before this call returns
		}
	}()
	for i := range chunks {
		cur := <-next
		next = nil
		if i+1 < len(chunks) {
			next = start(chunks[i+1])
		}
		if err := s.sealAndSend(ctx, cur); err != nil {
			return err
		}
	}
	return nil
}

// mediaPending reports whether m is a media message whose file has yet to
// be prepared.
func mediaPending(m Message) bool {
	if m.Payload != nil {
		return false
	}
	var c messagev1.Content
	return proto.Unmarshal(m.Content, &c) == nil && pendingMedia(&c)
}

// metaOf is the metadata chatd sees of stored content: the stanza kind
// (package message) and, for a template, the template's network id.
func metaOf(content []byte) (kind, templateID string) {
	var c messagev1.Content
	if proto.Unmarshal(content, &c) != nil {
		return "unknown", ""
	}
	return message.Default.Kind(&c), c.GetTemplate().GetTemplateId()
}

func (s *Sender) sealAndSend(ctx context.Context, p prepped) error {
	todo, err := s.seal(ctx, p)
	if err != nil {
		return err
	}
	for _, m := range todo {
		enc := new(chatdv1.Enc)
		if err := proto.Unmarshal(m.Payload, enc); err != nil {
			return fmt.Errorf("stored envelope of %s: %w", m.ID, err)
		}
		kind, tplID := metaOf(m.Content)
		st := &chatdv1.Stanza{Body: &chatdv1.Stanza_Message{Message: &chatdv1.Message{Id: m.ID, To: m.Peer, Kind: kind, TemplateId: tplID, Enc: enc, Retry: m.retry}}}
		s.mu.Lock()
		s.inflight[m.ID] = flight{peer: m.Peer, at: time.Now()}
		s.mu.Unlock()
		if err := s.sess.Send(ctx, st); err != nil {
			s.mu.Lock()
			delete(s.inflight, m.ID)
			s.mu.Unlock()
			return err
		}
	}
	return nil
}

func (s *Sender) sendReceipts(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx,
		"SELECT id, peer, type, message_ids FROM outbound_receipts WHERE account_id = ? AND shard = ? ORDER BY seq LIMIT ?",
		s.accountID, s.shard, scanPage)
	if err != nil {
		return fmt.Errorf("load pending receipts: %w", err)
	}
	var sts []*chatdv1.Stanza
	now := time.Now()
	for rows.Next() {
		var (
			id, peer, ids string
			typ           int32
		)
		if err := rows.Scan(&id, &peer, &typ, &ids); err != nil {
			rows.Close()
			return err
		}
		s.mu.Lock()
		at, ok := s.rcptInflight[id]
		if !ok || now.Sub(at) >= resendAfter {
			s.rcptInflight[id] = now
			sts = append(sts, &chatdv1.Stanza{Body: &chatdv1.Stanza_Receipt{Receipt: &chatdv1.Receipt{
				Id: id, To: peer, Type: chatdv1.ReceiptType(typ), MessageIds: strings.Split(ids, ",")}}})
		}
		s.mu.Unlock()
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, st := range sts {
		if err := s.sess.Send(ctx, st); err != nil {
			return err
		}
	}
	return nil
}
