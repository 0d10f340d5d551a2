// Package send is the outbound side of coreapp: accepting a message
// (committed before its id is returned), the per-slot Sender that seals and
// sends accepted messages and pending receipts over the slot's chatd session,
// and the status transitions (sent, delivered, read, failed) that chatd's acks
// and the customer's receipts cause, each committed with its status webhook.
//
// Accepts and transitions from many callers are written in shared
// transactions with a few multi-row statements per batch (db.Batcher).
package send

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/api/message"
	"github.com/openwaba/openwaba/chatd/shard"
	"github.com/openwaba/openwaba/coreapp/account"
	"github.com/openwaba/openwaba/coreapp/metrics"
	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Status of an outbound message; the order is the order of progress.
const (
	StatusAccepted  = 0
	StatusSent      = 1
	StatusDelivered = 2
	StatusRead      = 3
	StatusFailed    = 9
)

var statusNames = map[int]string{StatusSent: "sent", StatusDelivered: "delivered", StatusRead: "read", StatusFailed: "failed"}

// Message is an accepted outbound message.
type Message struct {
	Seq     int64 // 0 for a message handed over by Accept (not needed to send it)
	ID      string
	Peer    string
	Shard   uint32
	Content []byte // serialized messagev1.Content
	Payload []byte // serialized chatdv1.Enc once sealed
	retry   uint32 // the retry receipt this send answers (0: none)
}

// Store accepts messages and records their progress. Run must be running.
type Store struct {
	db       *sql.DB
	settings *settings.Store
	log      *slog.Logger
	accepts  *db.Batcher[*acceptItem]
	moves    *db.Batcher[*transition]
	// webhookWake is called after a commit that enqueued webhooks.
	webhookWake func()
	backlogs    backlogs // Backlogged's counts
	linger      linger   // sent statuses waiting for their receipt
}

// sentLinger is how long a message's sent status (chatd's ack) waits in
// memory for the customer's delivered or read receipt before it is written
// alone. A receipt that comes within it is written in the same transaction
// as the sent status: one row change and one status webhook batch instead
// of two (the phone's receipt follows the ack by milliseconds when it is
// online). Nothing is lost by the wait: a sent status not written when the
// node stops or dies leaves the message unsent in the table, it is sent
// again, and chatd answers the resend with its first ack (PROTOCOL.md).
// Run writes what waits when it stops.
const sentLinger = 200 * time.Millisecond

// linger holds sent statuses for up to sentLinger.
type linger struct {
	wait time.Duration // sentLinger (tests set it before Run)
	mu   sync.Mutex
	open bool // Run is running: Sent may wait
	by   map[lingerKey]*lingering
	fifo []*lingering // in arrival order: the oldest are written first
}

type lingerKey struct {
	account int64
	id      string
}

// lingering is one waiting sent status and its callback.
type lingering struct {
	tr    *transition
	done  func(error)
	at    time.Time
	taken bool // written, with a receipt or alone
}

// NewStore returns a Store writing to d.
func NewStore(d *sql.DB, s *settings.Store, log *slog.Logger, webhookWake func()) *Store {
	st := &Store{db: d, settings: s, log: log, webhookWake: webhookWake, linger: linger{wait: sentLinger}}
	// One accept transaction at a time: each locks the rows of its
	// accounts until it commits (see flushAccepts), so parallel batches of
	// one node would only queue behind each other; one batch takes every
	// waiting request instead (measured: as fast, lower latency).
	st.accepts = db.NewBatcher(d, log, db.BatchOptions{Workers: 1, Name: "accepts"}, flushAccepts)
	st.moves = db.NewBatcher(d, log, db.BatchOptions{Workers: 2, Name: "statuses"}, st.flushTransitions)
	return st
}

// Run writes until ctx ends; the sent statuses that wait are written
// before it returns.
func (s *Store) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.accepts.Run(ctx) })
	movesCtx, stopMoves := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { s.moves.Run(movesCtx) })
	s.lingerLoop(ctx)
	stopMoves() // after the waiting sent statuses went in
	wg.Wait()
	return nil
}

// lingerLoop writes the sent statuses that waited sentLinger until ctx
// ends, and then every one that waits.
func (s *Store) lingerLoop(ctx context.Context) {
	s.linger.mu.Lock()
	s.linger.open, s.linger.by = true, map[lingerKey]*lingering{}
	s.linger.mu.Unlock()
	tick := time.NewTicker(s.linger.wait / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flushLingering(time.Time{}, true)
			return
		case now := <-tick.C:
			s.flushLingering(now.Add(-s.linger.wait), false)
		}
	}
}

// flushLingering writes the sent statuses that arrived before cutoff, or
// all of them and stops the waiting when closing.
func (s *Store) flushLingering(cutoff time.Time, closing bool) {
	var due []*lingering
	s.linger.mu.Lock()
	n := 0
	for _, l := range s.linger.fifo {
		if !closing && l.at.After(cutoff) {
			break
		}
		n++
		if !l.taken {
			l.taken = true
			delete(s.linger.by, lingerKey{l.tr.accountID, l.tr.id})
			due = append(due, l)
		}
	}
	s.linger.fifo = s.linger.fifo[n:]
	if closing {
		s.linger.open = false
	}
	s.linger.mu.Unlock()
	for _, l := range due {
		s.moves.Go(l.tr, l.done)
	}
}

// takeLingering removes and returns the waiting sent status of a message
// (nil: none).
func (s *Store) takeLingering(accountID int64, id string) *lingering {
	s.linger.mu.Lock()
	defer s.linger.mu.Unlock()
	k := lingerKey{accountID, id}
	l := s.linger.by[k]
	if l != nil {
		l.taken = true
		delete(s.linger.by, k)
	}
	return l
}

// NewMessageID returns a message id in the wamid style.
func NewMessageID() string {
	var b [18]byte
	rand.Read(b[:])
	return "wamid." + base64.RawURLEncoding.EncodeToString(b[:])
}

type acceptItem struct {
	accountID int64
	m         Message
	requestID string
	callback  string // biz_opaque_callback_data ("" none)
	kind      string // the message's type (api/message Kind)
	hash      []byte // of the request: recipient and content as sent
	existing  string // result: the id of an earlier message with the same request id
	conflict  bool   // result: that earlier message was another request
}

// InConversation reports whether id is a message between the account and
// peer, sent or received.
func (s *Store) InConversation(ctx context.Context, accountID int64, peer, id string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM outbound_messages WHERE account_id = ? AND id = ? AND peer = ?)
		+ (SELECT COUNT(*) FROM inbound_messages WHERE account_id = ? AND id = ? AND peer = ?)`,
		accountID, id, peer, accountID, id, peer).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up message %s: %w", id, err)
	}
	return n > 0, nil
}

// ErrRequestConflict is a request id already used for another message (a
// different recipient or content): the idempotency key cannot be reused.
var ErrRequestConflict = errors.New("the request id was already used for a different message")

// requestHash identifies what a request asked to send.
func requestHash(to string, b []byte) []byte {
	h := sha256.New()
	h.Write([]byte(to))
	h.Write([]byte{0})
	h.Write(b)
	return h.Sum(nil)
}

// usedRequest is a stored message found by its request id.
type usedRequest struct {
	id   string
	hash []byte // nil for messages stored before hashes were
}

// match gives it the earlier message's id, or marks a conflict.
func (u usedRequest) match(it *acceptItem) {
	it.existing = u.id
	it.conflict = u.hash != nil && !bytes.Equal(u.hash, it.hash)
}

// Accept stores an outbound message and returns it once committed. A
// request id already used for this account returns the first message
// instead, with dup set. callbackData (the Cloud API's
// biz_opaque_callback_data) is echoed in the message's status webhooks.
func (s *Store) Accept(ctx context.Context, acct account.Account, requestID, to string, content *messagev1.Content, callbackData string) (Message, bool, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(content)
	if err != nil {
		return Message{}, false, err
	}
	kind := message.Default.Kind(content)
	it := &acceptItem{accountID: acct.ID, requestID: requestID, callback: callbackData, kind: kind, hash: requestHash(to, b),
		m: Message{ID: NewMessageID(), Peer: to, Shard: shard.For(to, acct.Shards), Content: b}}
	if err := s.accepts.Do(ctx, it); err != nil {
		return Message{}, false, fmt.Errorf("accept message: %w", err)
	}
	if it.conflict {
		return Message{}, false, fmt.Errorf("request id %s: %w", requestID, ErrRequestConflict)
	}
	if it.existing != "" {
		return Message{ID: it.existing}, true, nil
	}
	metrics.MessagesAccepted.WithLabelValues(kind).Inc()
	return it.m, false, nil
}

// usedRequests returns the stored messages of the account with the given
// request ids.
func usedRequests(ctx context.Context, tx *sql.Tx, acct int64, reqs []any) (map[string]usedRequest, error) {
	q, err := tx.QueryContext(ctx, "SELECT request_id, id, request_hash FROM outbound_messages WHERE account_id = ? AND request_id IN ("+db.Placeholders(len(reqs))+")",
		append([]any{acct}, reqs...)...)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	used := map[string]usedRequest{}
	for q.Next() {
		var r string
		var u usedRequest
		if err := q.Scan(&r, &u.id, &u.hash); err != nil {
			return nil, err
		}
		used[r] = u
	}
	return used, q.Err()
}

// flushAccepts inserts a batch of messages: one query finds request ids used
// before, one multi-row insert stores the rest.
func flushAccepts(ctx context.Context, tx *sql.Tx, items []*acceptItem) error {
	byAccount := map[int64][]*acceptItem{}
	for _, it := range items {
		it.existing, it.conflict = "", false
		byAccount[it.accountID] = append(byAccount[it.accountID], it)
	}
	// The shard of a message comes from the account's shard count as of
	// this transaction: the lock orders accepts against a shard change,
	// which re-maps the messages accepted before it. The lock is exclusive
	// so that the accepts of an account commit one after another, on every
	// node: within a slot, seq order is then commit order (Sender relies on
	// it to keep a customer's messages in order across nodes).
	ids := make([]any, 0, len(byAccount))
	for acct := range byAccount {
		ids = append(ids, acct)
	}
	q, err := tx.QueryContext(ctx, "SELECT id, shards FROM accounts WHERE id IN ("+db.Placeholders(len(ids))+") ORDER BY id FOR UPDATE", ids...)
	if err != nil {
		return err
	}
	shards := map[int64]int{}
	for q.Next() {
		var id int64
		var n int
		if err := q.Scan(&id, &n); err != nil {
			q.Close()
			return err
		}
		shards[id] = n
	}
	q.Close()
	if err := q.Err(); err != nil {
		return err
	}
	for acct, its := range byAccount {
		for _, it := range its {
			it.m.Shard = shard.For(it.m.Peer, max(shards[acct], 1))
		}
	}
	var rows []any
	n := 0
	now := db.NowMillis()
	for acct, its := range byAccount {
		var reqs []any
		for _, it := range its {
			if it.requestID != "" {
				reqs = append(reqs, it.requestID)
			}
		}
		used := map[string]usedRequest{}
		if len(reqs) > 0 {
			if used, err = usedRequests(ctx, tx, acct, reqs); err != nil {
				return err
			}
		}
		for _, it := range its {
			var reqID any
			if it.requestID != "" {
				if u, ok := used[it.requestID]; ok {
					u.match(it)
					continue
				}
				used[it.requestID] = usedRequest{it.m.ID, it.hash} // a repeat within the batch gets this one
				reqID = it.requestID
			}
			var cb any
			if it.callback != "" {
				cb = it.callback
			}
			rows = append(rows, acct, it.m.ID, reqID, it.hash, it.m.Peer, it.m.Shard, it.m.Content, cb, it.kind, now, now)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	// A concurrent batch may commit the same request id between the query
	// above and this insert: the duplicate row is skipped here and matched
	// below, instead of failing the batch.
	res, err := tx.ExecContext(ctx, "INSERT INTO outbound_messages (account_id, id, request_id, request_hash, peer, shard, status, content, callback_data, kind, created_at, updated_at) VALUES "+
		db.Rows("(?,?,?,?,?,?,0,?,?,?,?,?)", n)+" ON DUPLICATE KEY UPDATE seq = seq", rows...)
	if err != nil {
		return err
	}
	if inserted, _ := res.RowsAffected(); inserted == int64(n) {
		return nil
	}
	for acct, its := range byAccount {
		var reqs []any
		for _, it := range its {
			if it.requestID != "" {
				reqs = append(reqs, it.requestID)
			}
		}
		if len(reqs) == 0 {
			continue
		}
		stored, err := usedRequests(ctx, tx, acct, reqs)
		if err != nil {
			return err
		}
		// Every item of a request id gets the id actually stored for it
		// (not the in-batch first one, which may have lost to another batch).
		for _, it := range its {
			if it.requestID == "" {
				continue
			}
			if u := stored[it.requestID]; u.id != it.m.ID {
				u.match(it)
			} else {
				it.existing, it.conflict = "", false
			}
		}
	}
	return nil
}

// transition is one status change to commit.
type transition struct {
	accountID int64
	peer      string // when set, the message must be to this peer
	id        string
	status    int
	t         int64 // event time, unix seconds
	err       *webhook.Error
	conv      *chatdv1.Conversation // sent: the conversation chatd's ack named
	// changedKind, set by the flush that wrote the change: the message's
	// type, for the status metric once the change is committed.
	changedKind string
	// sent is the message's sent status that waited for this receipt
	// (sentLinger): it is applied first, in the same transaction.
	sent *transition
}

// statusEvent is the webhook status of transition tr of a message to peer,
// with the message's callback data and its stored conversation conv.
func statusEvent(tr *transition, peer, callbackData string, conv []byte) webhook.Status {
	st := webhook.Status{ID: tr.id, RecipientID: peer, Status: statusNames[tr.status], Timestamp: strconv.FormatInt(tr.t, 10), CallbackData: callbackData}
	if tr.err != nil {
		st.Errors = []webhook.Error{*tr.err}
	} else if c := new(chatdv1.Conversation); len(conv) > 0 && proto.Unmarshal(conv, c) == nil && c.Id != "" {
		var expires int64
		if c.Opened {
			expires = c.Expires
		}
		st.Conversation, st.Pricing = webhook.ConversationOf(c.Id, c.Category, expires)
	}
	return st
}

// ErrNotFound is returned for an unknown message.
var ErrNotFound = errors.New("message not found")

// Advance moves messages forward to status (never backwards) and enqueues the
// status webhooks the account's settings ask for, in a shared transaction.
// A message's sent status that waits for this receipt goes in with it.
// done is called after the commit.
func (s *Store) Advance(accountID int64, peer string, ids []string, status int, t int64, done func(error)) {
	s.submit(accountID, peer, ids, status, t, nil, nil, true, done)
}

// Sent marks a message sent (chatd acked it) in the conversation conv
// (nil: none, such as a message to another business). The status waits up
// to sentLinger for the message's receipt (see sentLinger); done is called
// once it is committed.
func (s *Store) Sent(accountID int64, peer, id string, t int64, conv *chatdv1.Conversation, done func(error)) {
	tr := &transition{accountID: accountID, peer: peer, id: id, status: StatusSent, t: t, conv: conv}
	cb := s.callbacks([]*transition{tr}, StatusSent, done)[0]
	s.linger.mu.Lock()
	if k := (lingerKey{accountID, id}); s.linger.open && s.linger.by[k] == nil {
		l := &lingering{tr: tr, done: cb, at: time.Now()}
		s.linger.by[k] = l
		s.linger.fifo = append(s.linger.fifo, l)
		s.linger.mu.Unlock()
		return
	}
	s.linger.mu.Unlock()
	s.moves.Go(tr, cb) // not running, or a replayed ack while the first waits
}

// Fail marks messages failed with an on-prem error, unless they were already
// delivered.
func (s *Store) Fail(accountID int64, peer string, ids []string, t int64, e webhook.Error, done func(error)) {
	s.submit(accountID, peer, ids, StatusFailed, t, &e, nil, false, done)
}

// submit writes status for ids; withSent takes the sent statuses that wait
// for them along.
func (s *Store) submit(accountID int64, peer string, ids []string, status int, t int64, e *webhook.Error, conv *chatdv1.Conversation, withSent bool, done func(error)) {
	if len(ids) == 0 {
		done(nil)
		return
	}
	trs := make([]*transition, len(ids))
	for i, id := range ids {
		trs[i] = &transition{accountID: accountID, peer: peer, id: id, status: status, t: t, err: e, conv: conv}
	}
	for i, cb := range s.callbacks(trs, status, done) {
		tr := trs[i]
		if withSent {
			if l := s.takeLingering(accountID, tr.id); l != nil {
				tr.sent = l.tr
				own := cb
				cb = func(err error) { l.done(err); own(err) }
			}
		}
		s.moves.Go(tr, cb)
	}
}

// callbacks returns the done of each of trs: each counts its status change
// once committed, and done fires once, after the last one.
func (s *Store) callbacks(trs []*transition, status int, done func(error)) []func(error) {
	var mu sync.Mutex
	left, first := len(trs), error(nil)
	cbs := make([]func(error), len(trs))
	for i, tr := range trs {
		cbs[i] = func(err error) {
			if err == nil && tr.changedKind != "" {
				metrics.MessageStatuses.WithLabelValues(statusNames[status], tr.changedKind).Inc()
			}
			mu.Lock()
			left--
			if err != nil && first == nil {
				first = err
			}
			last := left == 0
			mu.Unlock()
			if last {
				if first == nil {
					s.webhookWake()
				}
				done(first)
			}
		}
	}
	return cbs
}

// updateRows sets set (with setArgs) on the account's messages ids and,
// for those conv gives one, their conversation, with one statement per
// 300 ids (SQLite's limit of variables a statement).
func updateRows(ctx context.Context, tx *sql.Tx, acct int64, ids []string, conv func(id string) []byte, set string, setArgs ...any) error {
	const per = 300
	for start := 0; start < len(ids); start += per {
		part := ids[start:min(start+per, len(ids))]
		var q strings.Builder
		args := slices.Clone(setArgs)
		q.WriteString("UPDATE outbound_messages SET ")
		q.WriteString(set)
		var cases []any
		for _, id := range part {
			if c := conv(id); c != nil {
				cases = append(cases, id, c)
			}
		}
		if len(cases) > 0 {
			if set != "" {
				q.WriteString(", ")
			}
			q.WriteString("conversation = CASE id" + strings.Repeat(" WHEN ? THEN ?", len(cases)/2) + " ELSE conversation END")
			args = append(args, cases...)
		} else if set == "" {
			continue
		}
		q.WriteString(" WHERE account_id = ? AND id IN (" + db.Placeholders(len(part)) + ")")
		args = append(args, acct)
		for _, id := range part {
			args = append(args, id)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// flushTransitions applies a batch of status changes: per account, one query
// locks the messages, one update per resulting status, and one multi-row
// insert of the webhook events.
func (s *Store) flushTransitions(ctx context.Context, tx *sql.Tx, items []*transition) error {
	byAccount := map[int64][]*transition{}
	for _, tr := range items {
		if tr.sent != nil { // the sent status that waited for this receipt, first
			tr.sent.changedKind = ""
			byAccount[tr.accountID] = append(byAccount[tr.accountID], tr.sent)
		}
		tr.changedKind = "" // a retried transaction decides again
		byAccount[tr.accountID] = append(byAccount[tr.accountID], tr)
	}
	var events []webhook.Event
	now := db.NowMillis()
	for acct, trs := range byAccount {
		app, err := s.settings.Get(ctx, acct)
		if err != nil {
			return err
		}
		want := map[int]bool{StatusSent: app.SentEnabled(), StatusDelivered: app.Webhooks.Message.Delivered,
			StatusRead: app.Webhooks.Message.Read, StatusFailed: true}
		if app.Webhooks.Cloud() {
			// Cloud sends every status, whatever the on-prem switches say.
			want = map[int]bool{StatusSent: true, StatusDelivered: true, StatusRead: true, StatusFailed: true}
		}
		ids := make([]any, 0, len(trs))
		seen := map[string]bool{}
		for _, tr := range trs {
			if !seen[tr.id] {
				seen[tr.id] = true
				ids = append(ids, tr.id)
			}
		}
		type row struct {
			peer   string
			status int
			code   int
			conv   []byte // the stored conversation
			cb     sql.NullString
			kind   string
			// newConv: the ack's conversation, stored with the status.
			newConv []byte
		}
		state := map[string]*row{}
		q, err := tx.QueryContext(ctx, "SELECT id, peer, status, conversation, callback_data, kind FROM outbound_messages WHERE account_id = ? AND id IN ("+db.Placeholders(len(ids))+") FOR UPDATE",
			append([]any{acct}, ids...)...)
		if err != nil {
			return err
		}
		for q.Next() {
			var id string
			r := &row{}
			if err := q.Scan(&id, &r.peer, &r.status, &r.conv, &r.cb, &r.kind); err != nil {
				q.Close()
				return err
			}
			state[id] = r
		}
		q.Close()
		if err := q.Err(); err != nil {
			return err
		}
		changed := map[string]bool{}
		lateConv := map[string]bool{} // a late ack's conversation, stored without a status change
		for _, tr := range trs {
			r := state[tr.id]
			switch {
			case r == nil, tr.peer != "" && tr.peer != r.peer:
				continue // unknown here, or a receipt from someone else
			case tr.status == StatusFailed && r.status >= StatusDelivered:
				continue
			case tr.status == StatusSent && r.status > StatusSent && r.status != StatusFailed && tr.conv != nil && len(r.conv) == 0:
				// The ack came after the customer's receipt (both race over
				// the same connection). The status stays where it is, but the
				// sent event is the one that carries the conversation and
				// pricing, so it is stored and sent all the same. The empty
				// stored conversation keeps a replayed ack (chatd answers a
				// resent message with its first ack) from sending it twice;
				// an ack without a conversation (to another business) is
				// not sent late.
				b, err := proto.Marshal(tr.conv)
				if err != nil {
					return err
				}
				r.conv, r.newConv = b, b
				lateConv[tr.id] = true
				if want[StatusSent] {
					events = append(events, webhook.StatusEvent(acct, statusEvent(tr, r.peer, r.cb.String, r.conv)))
				}
				continue
			case tr.status != StatusFailed && (r.status >= tr.status):
				continue
			}
			r.status = tr.status
			if tr.err != nil {
				r.code = int(tr.err.Code)
			}
			if tr.conv != nil {
				b, err := proto.Marshal(tr.conv)
				if err != nil {
					return err
				}
				r.conv, r.newConv = b, b
			}
			changed[tr.id] = true
			tr.changedKind = cmp.Or(r.kind, "unknown") // counted once committed (submit)
			if want[tr.status] {
				events = append(events, webhook.StatusEvent(acct, statusEvent(tr, r.peer, r.cb.String, r.conv)))
			}
		}
		// One update per (status, error code) group, carrying the acks'
		// conversations too (a CASE on the id): a message's sent status and
		// its conversation are one row change, not two.
		groups := map[[2]int][]string{}
		var late []string
		for id, r := range state {
			switch {
			case changed[id]:
				k := [2]int{r.status, r.code}
				groups[k] = append(groups[k], id)
			case lateConv[id] && r.newConv != nil:
				late = append(late, id)
			}
		}
		convOf := func(id string) []byte { return state[id].newConv }
		for k, gids := range groups {
			if err := updateRows(ctx, tx, acct, gids, convOf, "status = ?, error_code = ?, updated_at = ?", k[0], k[1], now); err != nil {
				return err
			}
		}
		if len(late) > 0 {
			if err := updateRows(ctx, tx, acct, late, convOf, ""); err != nil {
				return err
			}
		}
	}
	return webhook.Enqueue(tx, events...)
}
