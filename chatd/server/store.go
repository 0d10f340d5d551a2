package server

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/chatd/shard"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// storeItem is one stanza to commit to a recipient's queue.
type storeItem struct {
	kind      int
	sender    string // "" for the server's own notifications (not deduplicated)
	id        string
	t         int64 // server time given to the stanza, unix seconds
	recipient string
	shard     uint32 // the recipient's slot; flushStore sets it again for a business recipient
	payload   []byte // nil: store nothing (only expire expireSeq)
	// expireSeq, when set, is a row the janitor expires in the same
	// transaction; the item is stored only if that row was still queued.
	expireSeq uint64
	// ackSeq, when set, is a row its recipient acked: the item only
	// deletes it (with the batch's other acked rows, in one statement).
	ackSeq uint64
	// precond, when set, runs first in the transaction (a change the
	// stanza reports, such as a template's new status); the item is stored
	// only if it returns true.
	precond func(ctx context.Context, tx *sql.Tx) (bool, error)
	// A message between a business and a customer: the window and the
	// conversations apply (see applyWindow).
	dir        direction
	stanzaKind string
	templateID string

	// Results, overwritten on every flush.
	dup     bool   // the sender used this id before; firstT is the first time
	skipped bool   // expireSeq was delivered meanwhile, or precond said no: nothing stored
	firstT  int64  // the time to ack with
	seq     uint64 // the queue row
	nack    string // refused (the window, the template, a block): nothing stored
	// dropped: a blocked customer's message, acked as accepted and not
	// stored or delivered.
	dropped bool
	// conv is the conversation a business's message opened or joined (of
	// the first send, for a resend).
	conv *chatdv1.Conversation
}

// deduplicated reports whether a resend of the stanza's id is recognised
// (acked as the first time, not queued again): a client's messages and
// notifications. Receipts are not: a receipt only moves a message's state
// forward, so a second copy changes nothing, and not recording their ids
// saves a row per receipt (PROTOCOL.md; docs/performance.md). The
// server's own notifications have no sender and are not either.
func deduplicated(it *storeItem) bool {
	return it.sender != "" && it.kind != kindReceipt
}

type stanzaKey struct {
	sender string
	kind   int
	id     string
}

// flushStore commits a batch of stanzas with a few statements: delete the
// rows their recipients acked (an ack costs no transaction of its own:
// docs/performance.md), expire the janitor's rows, read the business
// recipients' shard counts, find ids the senders used before, apply the
// window to messages between businesses and customers, record the new ids,
// and insert the queue rows. It runs on the
// queue's single writer, so queue rows are numbered consecutively and
// commit in seq order.
func (s *Server) flushStore(ctx context.Context, tx *sql.Tx, items []*storeItem) error {
	var acked []uint64
	for _, it := range items {
		if it.ackSeq != 0 {
			acked = append(acked, it.ackSeq)
		}
	}
	if len(acked) > 0 {
		if err := flushAcks(ctx, tx, acked); err != nil {
			return err
		}
	}
	for _, it := range items {
		it.dup, it.skipped, it.firstT, it.seq, it.nack, it.conv, it.dropped = false, false, it.t, 0, "", nil, false
		if it.precond != nil {
			ok, err := it.precond(ctx, tx)
			if err != nil {
				return err
			}
			it.skipped = !ok
		}
		if it.expireSeq == 0 || it.skipped {
			continue
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM queue WHERE seq = ?", it.expireSeq)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			it.skipped = true
		}
	}

	if err := s.resolveShards(ctx, tx, items); err != nil {
		return err
	}

	// Ids used before (in earlier batches, or earlier in this one).
	type used struct {
		t    int64
		meta []byte
	}
	stored := map[stanzaKey]used{}
	var keys []any
	nKeys := 0
	for _, it := range items {
		if deduplicated(it) && !it.skipped && it.payload != nil {
			keys = append(keys, it.sender, it.kind, it.id)
			nKeys++
		}
	}
	if nKeys > 0 {
		err := queryRows(ctx, tx, "SELECT sender, kind, stanza_id, t, meta FROM stanza_ids WHERE (sender, kind, stanza_id) IN ("+db.Rows("(?,?,?)", nKeys)+")", keys,
			func(r *sql.Rows) error {
				var k stanzaKey
				var u used
				if err := r.Scan(&k.sender, &k.kind, &k.id, &u.t, &u.meta); err != nil {
					return err
				}
				stored[k] = u
				return nil
			})
		if err != nil {
			return err
		}
	}
	// A resend of a stored stanza is acked as it was; a second copy within
	// the batch is acked as the first copy is.
	firstOf := map[stanzaKey]*storeItem{}
	copyOf := map[*storeItem]*storeItem{}
	for _, it := range items {
		if it.skipped || it.payload == nil || !deduplicated(it) {
			continue
		}
		k := stanzaKey{it.sender, it.kind, it.id}
		if u, ok := stored[k]; ok {
			it.dup, it.firstT = true, u.t
			if len(u.meta) > 0 {
				c := new(chatdv1.Conversation)
				if proto.Unmarshal(u.meta, c) == nil {
					c.Opened = false // it opened the conversation the first time
					it.conv = c
				}
			}
			continue
		}
		if f, ok := firstOf[k]; ok {
			it.dup = true
			copyOf[it] = f
			continue
		}
		firstOf[k] = it
	}
	fresh := func(it *storeItem) bool { return !it.skipped && it.payload != nil && !it.dup }
	if err := s.applyWindow(ctx, tx, items, fresh); err != nil {
		return err
	}
	for it, f := range copyOf {
		it.firstT, it.nack, it.conv, it.dropped = f.firstT, f.nack, f.conv, f.dropped
	}

	now, expires := time.Now().UnixMilli(), time.Now().Add(s.cfg.QueueTTL).UnixMilli()
	var idRows, queueRows []any
	var queued []*storeItem
	for _, it := range items {
		if !fresh(it) || it.nack != "" || it.dropped {
			continue // nothing to store: an expired row only dropped, a resend, a refusal, a block
		}
		if deduplicated(it) {
			var meta []byte
			if it.conv != nil {
				var err error
				if meta, err = proto.Marshal(it.conv); err != nil {
					return err
				}
			}
			idRows = append(idRows, it.sender, it.kind, it.id, it.t, meta)
		}
		queueRows = append(queueRows, it.recipient, it.shard, it.sender, it.kind, it.id, it.payload, now, expires)
		queued = append(queued, it)
	}
	if len(idRows) > 0 {
		if _, err := tx.ExecContext(ctx, "INSERT INTO stanza_ids (sender, kind, stanza_id, t, meta) VALUES "+db.Rows("(?,?,?,?,?)", len(idRows)/5), idRows...); err != nil {
			return err
		}
	}
	if len(queued) == 0 {
		return nil
	}
	res, err := tx.ExecContext(ctx, "INSERT INTO queue (recipient, shard, sender, kind, stanza_id, payload, created_at, expires_at) VALUES "+
		db.Rows("(?,?,?,?,?,?,?,?)", len(queued)), queueRows...)
	if err != nil {
		return err
	}
	firstSeq, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != int64(len(queued)) {
		return fmt.Errorf("queue insert stored %d of %d rows", n, len(queued))
	}
	// One writer and one multi-row insert: the rows got consecutive ids.
	for i, it := range queued {
		it.seq = uint64(firstSeq) + uint64(i)*s.seqStep
	}
	return nil
}

// flushAcks deletes acked rows with one statement.
func flushAcks(ctx context.Context, tx *sql.Tx, seqs []uint64) error {
	args := make([]any, len(seqs))
	for i, s := range seqs {
		args[i] = s
	}
	_, err := tx.ExecContext(ctx, "DELETE FROM queue WHERE seq IN ("+db.Placeholders(len(seqs))+")", args...)
	return err
}

// resolveShards sets the slot of every stanza for a business account from
// its shard count as committed, read under a shared lock on the account
// row. A SetShards (which locks that row first) therefore commits either
// before this batch, which then uses the new count, or after it, and then
// re-maps these rows: no row is ever left on a slot of the old mapping,
// whatever count the routing chatd had cached. The server's own
// notifications (no sender) stay on the slot they were given.
func (s *Server) resolveShards(ctx context.Context, tx *sql.Tx, items []*storeItem) error {
	seen := map[string]bool{}
	var numbers []any
	for _, it := range items {
		if it.sender == "" || it.skipped || it.payload == nil || seen[it.recipient] {
			continue
		}
		seen[it.recipient] = true
		numbers = append(numbers, it.recipient)
	}
	if len(numbers) == 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, "SELECT number, kind, shards FROM accounts WHERE number IN ("+db.Placeholders(len(numbers))+") LOCK IN SHARE MODE", numbers...)
	if err != nil {
		return err
	}
	shards := map[string]int{} // business recipients only
	for rows.Next() {
		var number string
		var kind int32
		var n int
		if err := rows.Scan(&number, &kind, &n); err != nil {
			rows.Close()
			return err
		}
		if chatdv1.AccountKind(kind) == chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS {
			shards[number] = n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, it := range items {
		if n, ok := shards[it.recipient]; ok && it.sender != "" {
			it.shard = shard.For(it.sender, n)
		}
	}
	return nil
}
