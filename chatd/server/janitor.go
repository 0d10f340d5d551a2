package server

import (
	"context"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// janitorInterval is how often expired rows are cleaned up.
const janitorInterval = time.Minute

// janitor expires undelivered stanzas (telling the sender of an expired
// message), purges old stanza ids and stale registration codes, and deletes
// expired media blobs.
func (s *Server) janitor(ctx context.Context) {
	t := time.NewTicker(janitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.expire(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("janitor: expiring the queue failed", "err", err)
		}
		now := time.Now()
		if _, err := s.db.ExecContext(ctx, "DELETE FROM stanza_ids WHERE t < ? LIMIT 10000", now.Add(-s.cfg.QueueTTL-24*time.Hour).Unix()); err != nil && ctx.Err() == nil {
			s.log.Error("janitor: purging stanza ids failed", "err", err)
		}
		if _, err := s.db.ExecContext(ctx, "DELETE FROM registrations WHERE expires_at < ?", now.UnixMilli()); err != nil && ctx.Err() == nil {
			s.log.Error("janitor: purging registrations failed", "err", err)
		}
		if err := s.expireMedia(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("janitor: deleting expired media failed", "err", err)
		}
	}
}

type expired struct {
	seq       uint64
	recipient string
	sender    string
	kind      int
	id        string
}

// expireBatch is how many queue rows expire reads at a time.
const expireBatch = 1000

// expire deletes queue rows past their TTL and queues a MESSAGE_EXPIRED
// notification for the sender of each expired message, in transactions
// on the queue writer. A row expires QueueTTL after it was queued, under
// the TTL in force now (a changed WA_CHATD_QUEUE_TTL applies to what is
// queued already). The queue has a single writer, so its rows were queued
// in seq order: expire reads from the lowest seq and stops at the first
// row that is not due, with no index but the primary key (a row queued
// under a clock set ahead holds back the rows after it until it is due).
func (s *Server) expire(ctx context.Context) error {
	for ctx.Err() == nil {
		n, err := s.expireHead(ctx)
		if err != nil || n < expireBatch {
			return err
		}
	}
	return ctx.Err()
}

// expireHead expires the due rows among the expireBatch lowest seqs and
// reports how many it expired.
func (s *Server) expireHead(ctx context.Context) (int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT seq, recipient, sender, kind, stanza_id, created_at FROM queue ORDER BY seq LIMIT ?", expireBatch)
	if err != nil {
		return 0, err
	}
	due := time.Now().Add(-s.cfg.QueueTTL).UnixMilli()
	var batch []expired
	for rows.Next() {
		var e expired
		var created int64
		if err := rows.Scan(&e.seq, &e.recipient, &e.sender, &e.kind, &e.id, &created); err != nil {
			rows.Close()
			return 0, err
		}
		if created >= due {
			break
		}
		batch = append(batch, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(batch) == 0 {
		return 0, err
	}
	var items []*storeItem
	for _, e := range batch {
		if e.kind != kindMessage {
			// Expired receipts and notices are just dropped, through the
			// queue writer like every other change of the queue.
			items = append(items, &storeItem{expireSeq: e.seq})
			continue
		}
		n := &chatdv1.Notification{Id: s.newID(), Type: chatdv1.NotificationType_NOTIFICATION_TYPE_MESSAGE_EXPIRED,
			MessageIds: []string{e.id}, Peer: e.recipient, T: time.Now().Unix()}
		payload, err := proto.Marshal(&chatdv1.Stanza{Body: &chatdv1.Stanza_Notification{Notification: n}})
		if err != nil {
			return 0, err
		}
		// Queued on the sender's first slot; senders with several slots get
		// it on shard 0.
		items = append(items, &storeItem{expireSeq: e.seq, kind: kindNotification, id: n.Id, t: n.T, recipient: e.sender, payload: payload})
	}
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		s.queue.Go(it, func(err error) { errs[i] = err; wg.Done() })
	}
	wg.Wait()
	for i, it := range items {
		if errs[i] != nil {
			return 0, errs[i]
		}
		// Like a routed stanza, a committed notice is offered to the
		// sender's live connection.
		if !it.skipped && it.payload != nil {
			s.deliver(it.recipient, it.shard, it.seq, it.payload)
		}
	}
	return len(batch), nil
}
