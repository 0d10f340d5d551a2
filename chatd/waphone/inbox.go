package waphone

import (
	"context"
	"sync"

	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// inbox hands what the session's reader receives to one goroutine that acts
// on it in arrival order, so the reader never waits: not for an attachment
// download, not for a full Events channel. It never blocks the reader, and
// it stays bounded: chatd pushes at most its window of unacked stanzas per
// connection, and a stanza pushed again (after a reconnect) while its first
// copy still waits here is dropped (the first copy's ack covers it). A copy
// that arrives while the first one is being handled is kept: if the first
// gives up (the connection went away mid-download), it is tried again.
type inbox struct {
	wake chan struct{} // one-slot: something was pushed

	mu      sync.Mutex // guards the fields below
	items   []*chatdv1.Stanza
	waiting map[uint64]bool // queue_seq of the queued stanzas that have one
}

func newInbox() *inbox {
	return &inbox{wake: make(chan struct{}, 1), waiting: map[uint64]bool{}}
}

// push queues st; it never blocks.
func (q *inbox) push(st *chatdv1.Stanza) {
	seq := queueSeq(st)
	q.mu.Lock()
	if seq != 0 && q.waiting[seq] {
		q.mu.Unlock()
		return
	}
	if seq != 0 {
		q.waiting[seq] = true
	}
	q.items = append(q.items, st)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// maxBatch is the most stanzas taken from the inbox at once.
const maxBatch = 256

// run calls handle for every queued stanza, in order, until ctx ends. The
// stanzas queued together are first given to prepare together (the phone
// decrypts them and stores its keys once for all).
func (q *inbox) run(ctx context.Context, prepare func(context.Context, []*chatdv1.Stanza), handle func(context.Context, *chatdv1.Stanza)) {
	for {
		q.mu.Lock()
		n := min(len(q.items), maxBatch)
		batch := make([]*chatdv1.Stanza, n)
		copy(batch, q.items)
		for i := range n {
			q.items[i] = nil
			delete(q.waiting, queueSeq(batch[i]))
		}
		q.items = q.items[n:]
		q.mu.Unlock()
		if n == 0 {
			select {
			case <-q.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		if prepare != nil && n > 1 {
			prepare(ctx, batch)
		}
		for _, st := range batch {
			if ctx.Err() != nil {
				return
			}
			handle(ctx, st)
		}
	}
}

// queueSeq is the queue row of a pushed stanza, 0 for others.
func queueSeq(st *chatdv1.Stanza) uint64 {
	switch b := st.Body.(type) {
	case *chatdv1.Stanza_Message:
		return b.Message.QueueSeq
	case *chatdv1.Stanza_Receipt:
		return b.Receipt.QueueSeq
	case *chatdv1.Stanza_Notification:
		return b.Notification.QueueSeq
	}
	return 0
}
