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

// expire deletes queue rows past their TTL and queues a MESSAGE_EXPIRED
// notification for the sender of each expired message, in one transaction
// on the queue writer.
func (s *Server) expire(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, "SELECT seq, recipient, sender, kind, stanza_id FROM queue WHERE expires_at < ? LIMIT 1000", time.Now().UnixMilli())
	if err != nil {
		return err
	}
	var batch []expired
	for rows.Next() {
		var e expired
		if err := rows.Scan(&e.seq, &e.recipient, &e.sender, &e.kind, &e.id); err != nil {
			rows.Close()
			return err
		}
		batch = append(batch, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(batch) == 0 {
		return err
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
			return err
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
			return errs[i]
		}
		// Like a routed stanza, a committed notice is offered to the
		// sender's live connection.
		if !it.skipped && it.payload != nil {
			s.deliver(it.recipient, it.shard, it.seq, it.payload)
		}
	}
	return nil
}
