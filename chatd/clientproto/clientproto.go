// Package clientproto is what every client of the chatd network does the
// same way, whichever side it is on: the business's coreapp slots and the
// customer's phones (waphone, the web phone). It holds the pre-key pool
// policy, the retry-receipt limits and the shapes of the stanzas a client
// answers with (acks, receipts), so that both sides follow one protocol.
package clientproto

import (
	"context"

	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// The one-time pre-key pool: a client publishes FirstPreKeys when chatd has
// none of its keys, and TopUpPreKeys more when fewer than LowPreKeys are left
// (chatd also notifies PREKEYS_LOW then).
const (
	FirstPreKeys = 200
	TopUpPreKeys = 100
	LowPreKeys   = 20
)

// MaxRetries is how many retry receipts a client sends for a message it
// cannot decrypt (then it gives up on it: an unknown message, an error
// event), and the highest retry count a sender answers (then the message
// fails).
const MaxRetries = 5

// RebuildFrom is the retry count from which a sender answering a retry
// receipt drops its session and starts a new one from a fresh bundle (the
// first retry re-encrypts on the same session).
const RebuildFrom = 2

// IQFunc sends an IQ and returns the answer (session.Session.IQ).
type IQFunc func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)

// EnsurePreKeys asks chatd how many of the client's one-time pre-keys are
// left and, when it has none published or the pool is low, has generate
// make an upload of n keys and sends it. It returns how many were published
// (0: none were needed) and whether they were the first.
func EnsurePreKeys(ctx context.Context, iq IQFunc, generate func(n int) (*chatdv1.PreKeyUpload, error)) (n int, first bool, err error) {
	res, err := iq(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_PrekeyCount{PrekeyCount: &chatdv1.PreKeyCount{}}})
	if err != nil {
		return 0, false, err
	}
	c := res.GetPrekeyCount()
	switch {
	case !c.GetPublished():
		n, first = FirstPreKeys, true
	case c.GetCount() < LowPreKeys:
		n = TopUpPreKeys
	default:
		return 0, false, nil
	}
	up, err := generate(n)
	if err != nil {
		return 0, first, err
	}
	if _, err := iq(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_PrekeyUpload{PrekeyUpload: up}}); err != nil {
		return 0, first, err
	}
	return n, first, nil
}

// Ack acknowledges what chatd pushed at queue position seq (it deletes it
// from the client's queue).
func Ack(seq uint64, class chatdv1.AckClass) *chatdv1.Stanza {
	return &chatdv1.Stanza{Body: &chatdv1.Stanza_Ack{Ack: &chatdv1.Ack{QueueSeq: seq, Class: class}}}
}

// Receipt is a delivered, read or played receipt with id for messages of to.
func Receipt(id, to string, typ chatdv1.ReceiptType, messageIDs ...string) *chatdv1.Stanza {
	return &chatdv1.Stanza{Body: &chatdv1.Stanza_Receipt{Receipt: &chatdv1.Receipt{Id: id, To: to, Type: typ, MessageIds: messageIDs}}}
}

// RetryReceipt asks to, the sender of messageID, to encrypt it again: the
// count-th retry; registrationID is the client's (0 when it has none to
// tell).
func RetryReceipt(id, to, messageID string, count, registrationID uint32) *chatdv1.Stanza {
	return &chatdv1.Stanza{Body: &chatdv1.Stanza_Receipt{Receipt: &chatdv1.Receipt{Id: id, To: to, Type: chatdv1.ReceiptType_RECEIPT_TYPE_RETRY,
		MessageIds: []string{messageID}, Retry: &chatdv1.Retry{Count: count, RegistrationId: registrationID}}}}
}
