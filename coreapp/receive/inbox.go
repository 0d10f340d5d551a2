package receive

import (
	"context"
	"crypto/rand"
	"log/slog"
	"sync"

	"github.com/openwaba/openwaba/chatd/clientproto"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// MaxRetries is how many retry receipts a message that cannot be decrypted
// gets before it is stored as an unsupported ("unknown") message, so that
// the business still learns of it (the network's rule, package clientproto).
const MaxRetries = clientproto.MaxRetries

// Inbox handles the messages chatd pushes on one slot's connection: each is
// stored (Store.Message); then a delivered receipt and the ack go back on
// the connection, in that order, after the commit. A message that cannot be
// decrypted gets a retry receipt (the sender encrypts it again), and after
// MaxRetries is stored as unknown. The slot owns one Inbox per connection
// runner; it is safe for concurrent use.
type Inbox struct {
	store     *Store
	log       *slog.Logger
	accountID int64
	shard     uint32
	// Reply queues stanzas for the connection (in order).
	Reply func(...*chatdv1.Stanza)
	// Later runs a task on the runner's task goroutine (not the reader's).
	Later func(context.Context, func(context.Context))

	mu      sync.Mutex        // guards retries
	retries map[string]uint32 // "peer id" → retry receipts sent for an undecryptable message
}

// NewInbox returns the inbox of the account's shard; reply and later come
// from the slot's runner.
func NewInbox(s *Store, log *slog.Logger, accountID int64, shard uint32, reply func(...*chatdv1.Stanza), later func(context.Context, func(context.Context))) *Inbox {
	return &Inbox{store: s, log: log, accountID: accountID, shard: shard, Reply: reply, Later: later, retries: map[string]uint32{}}
}

// Message stores a pushed message and answers chatd after the commit.
func (in *Inbox) Message(ctx context.Context, msg *chatdv1.Message) { in.message(ctx, msg, false) }

func (in *Inbox) message(ctx context.Context, msg *chatdv1.Message, forceUnknown bool) {
	in.store.Message(in.accountID, in.shard, msg, forceUnknown, func(out Outcome, err error) {
		if err != nil {
			in.log.Error("storing an inbound message failed; chatd will push it again", "from", msg.From, "id", msg.Id, "err", err)
			return
		}
		key := msg.From + " " + msg.Id
		if out == Undecryptable {
			in.mu.Lock()
			in.retries[key]++
			n := in.retries[key]
			if len(in.retries) > 10_000 {
				clear(in.retries)
			}
			in.mu.Unlock()
			if n > MaxRetries {
				in.Later(ctx, func(ctx context.Context) { in.message(ctx, msg, true) })
				return
			}
			in.Reply(clientproto.RetryReceipt("rr."+rand.Text(), msg.From, msg.Id, n, 0), ack(msg.QueueSeq))
			return
		}
		in.mu.Lock()
		delete(in.retries, key)
		in.mu.Unlock()
		// The delivered receipt goes first: the ack after it means both
		// reached chatd in order on this connection.
		in.Reply(clientproto.Receipt("dr."+rand.Text(), msg.From, chatdv1.ReceiptType_RECEIPT_TYPE_DELIVERED, msg.Id), ack(msg.QueueSeq))
	})
}

func ack(seq uint64) *chatdv1.Stanza { return clientproto.Ack(seq, chatdv1.AckClass_ACK_CLASS_MESSAGE) }
