package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/openwaba/openwaba/chatd/wire"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// pair registers two consumer accounts A and B.
func pair(t *testing.T, n *testNet) (a, b string, ka, kb wire.KeyPair) {
	t.Helper()
	a, b = "15550002001", "15550002002"
	return a, b, n.register(t, a, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER), n.register(t, b, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
}

func queueRows(t *testing.T, n *testNet, recipient string) int {
	t.Helper()
	return count(t, n.db, "SELECT COUNT(*) FROM queue WHERE recipient = ?", recipient)
}

// TestDelivery follows one message through the durable queue: the sender's
// ack comes after the commit and carries the server time, the offline
// recipient gets it from the backlog (offline, then OfflineComplete), an
// unacked push is pushed again on the next connection, the ack deletes the
// row, and a resend of the same id is acked again without a second delivery.
func TestDelivery(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	A, B, ka, kb := pair(t, n)

	// When A reads the ack, the row must already be committed.
	rowsAtAck := make(chan int, 10)
	a := n.dial(t, A, ka, clientOpts{autoAck: true, onStanza: func(st *chatdv1.Stanza) {
		if ack := st.GetAck(); ack != nil && ack.Id == "m-1" {
			var c int
			err := n.db.QueryRow("SELECT COUNT(*) FROM queue WHERE sender = ? AND stanza_id = ? AND recipient = ?", A, "m-1", B).Scan(&c)
			if err != nil {
				c = -1
			}
			rowsAtAck <- c
		}
	}}).connected(t)

	before := time.Now().Unix()
	a.send(t, textMessage("m-1", B, "hello B"))
	ack := a.awaitAck(t, "m-1")
	after := time.Now().Unix()
	if ack.Error != "" || ack.Class != chatdv1.AckClass_ACK_CLASS_MESSAGE {
		t.Fatalf("ack of m-1 = %v, want a message ack without error", ack)
	}
	if ack.T < before || ack.T > after {
		t.Errorf("ack time %d, want the server time in [%d, %d]", ack.T, before, after)
	}
	if got := <-rowsAtAck; got != 1 {
		t.Fatalf("queue rows for m-1 when A read its ack = %d, want 1 (committed before the ack)", got)
	}

	// B comes online: the message arrives from the backlog.
	b := n.dial(t, B, kb, clientOpts{}).connected(t)
	first := b.recv(t)
	m := first.GetMessage()
	if m == nil {
		t.Fatalf("B's first stanza = %v, want the message", first)
	}
	want := &chatdv1.Message{Id: "m-1", From: A, To: B, T: ack.T, Kind: "text", Offline: true, QueueSeq: m.QueueSeq,
		Enc: &chatdv1.Enc{Type: chatdv1.EncType_ENC_TYPE_MSG, V: 2, Ciphertext: []byte("hello B")}, PushName: "name of " + A}
	if diff := cmp.Diff(want, m, protocmp.Transform()); diff != "" {
		t.Errorf("pushed message mismatch (-want +got):\n%s", diff)
	}
	if m.QueueSeq == 0 {
		t.Errorf("pushed message has no queue_seq")
	}
	if diff := cmp.Diff(&chatdv1.OfflineComplete{Count: 1}, b.recv(t).GetOfflineComplete(), protocmp.Transform()); diff != "" {
		t.Errorf("after the backlog (-want +got):\n%s", diff)
	}

	// B leaves without acking: the row stays and is pushed again.
	b.stop(t)
	if got := queueRows(t, n, B); got != 1 {
		t.Fatalf("queue rows for B after an unacked push = %d, want 1", got)
	}
	b = n.dial(t, B, kb, clientOpts{}).connected(t)
	again := b.recv(t).GetMessage()
	if again.GetId() != "m-1" || again.GetQueueSeq() != m.QueueSeq || !again.GetOffline() {
		t.Fatalf("B's first stanza on reconnect = %v, want m-1 again with queue_seq %d, offline", again, m.QueueSeq)
	}
	if got := b.recv(t).GetOfflineComplete(); got.GetCount() != 1 {
		t.Errorf("OfflineComplete = %v, want count 1", got)
	}
	b.send(t, ackStanza(again.QueueSeq, chatdv1.AckClass_ACK_CLASS_MESSAGE))
	waitFor(t, "B's ack to delete the row", func() bool { return queueRows(t, n, B) == 0 })

	// A resends m-1 (it never saw the ack, say): acked again with the
	// original time, not delivered again. m-2 follows it on the same path, so
	// a second copy would reach B before m-2.
	a.send(t, textMessage("m-1", B, "hello B"))
	if dup := a.awaitAck(t, "m-1"); dup.Error != "" || dup.T != ack.T {
		t.Errorf("ack of the resent m-1 = %v, want the original ack (t=%d)", dup, ack.T)
	}
	a.send(t, textMessage("m-2", B, "second"))
	if got := a.awaitAck(t, "m-2"); got.Error != "" {
		t.Fatalf("ack of m-2 = %v", got)
	}
	next := b.recv(t).GetMessage()
	if next.GetId() != "m-2" || next.GetOffline() {
		t.Fatalf("B received %v after the resend, want live m-2 (and no second m-1)", next)
	}
	if got := count(t, n.db, "SELECT COUNT(*) FROM stanza_ids WHERE sender = ?", A); got != 2 {
		t.Errorf("stanza ids remembered for A = %d, want 2", got)
	}
}

// TestNacks: stanzas chatd refuses are nacked with a reason and not queued.
func TestNacks(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	A, B, ka, _ := pair(t, n)
	a := n.dial(t, A, ka, clientOpts{autoAck: true}).connected(t)
	msg := func(id, to string) *chatdv1.Stanza { return textMessage(id, to, "x") }
	tests := []struct {
		name string
		st   *chatdv1.Stanza
		id   string
		want string
	}{
		{"unknown recipient", msg("n-1", "15559990001"), "n-1", "unknown_recipient"},
		{"to oneself", msg("n-2", A), "n-2", "bad_recipient"},
		{"malformed recipient", msg("n-3", "12"), "n-3", "bad_recipient"},
		{"id too long", msg(strings.Repeat("x", MaxStanzaID+1), B), strings.Repeat("x", MaxStanzaID+1), "bad_id"},
		{"no payload", &chatdv1.Stanza{Body: &chatdv1.Stanza_Message{Message: &chatdv1.Message{Id: "n-5", To: B}}}, "n-5", "no_payload"},
		{"receipt without ids", &chatdv1.Stanza{Body: &chatdv1.Stanza_Receipt{Receipt: &chatdv1.Receipt{Id: "n-6", To: B, Type: chatdv1.ReceiptType_RECEIPT_TYPE_READ}}}, "n-6", "bad_ids"},
		{"receipt without type", &chatdv1.Stanza{Body: &chatdv1.Stanza_Receipt{Receipt: &chatdv1.Receipt{Id: "n-7", To: B, MessageIds: []string{"m"}}}}, "n-7", "bad_type"},
		{"receipt to a stranger", &chatdv1.Stanza{Body: &chatdv1.Stanza_Receipt{Receipt: &chatdv1.Receipt{Id: "n-8", To: "15559990001", MessageIds: []string{"m"}, Type: chatdv1.ReceiptType_RECEIPT_TYPE_READ}}}, "n-8", "unknown_recipient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.send(t, tt.st)
			if got := a.awaitAck(t, tt.id).Error; got != tt.want {
				t.Errorf("nack reason = %q, want %q", got, tt.want)
			}
		})
	}
	if got := count(t, n.db, "SELECT COUNT(*) FROM queue"); got != 0 {
		t.Errorf("queue rows after refused stanzas = %d, want 0", got)
	}
}

// receiveOrdered reads count messages at c and checks that they are A's
// ids in send order, with increasing queue_seq and the given offline flag.
func receiveOrdered(t *testing.T, c *client, ids []string, offline bool) {
	t.Helper()
	var got []string
	var lastSeq uint64
	for len(got) < len(ids) {
		st := c.recv(t)
		m := st.GetMessage()
		if m == nil {
			t.Fatalf("after %d messages B received %v, want message %s", len(got), st, ids[len(got)])
		}
		if m.Offline != offline {
			t.Fatalf("message %s offline = %v, want %v", m.Id, m.Offline, offline)
		}
		if m.QueueSeq <= lastSeq {
			t.Fatalf("message %s queue_seq %d after %d, want increasing", m.Id, m.QueueSeq, lastSeq)
		}
		lastSeq = m.QueueSeq
		got = append(got, m.Id)
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Fatalf("received order mismatch (-want +got):\n%s", diff)
	}
}

// TestOrdering sends bursts A→B and checks they arrive in send order without
// gaps or duplicates: live, and as a backlog larger than the push window.
func TestOrdering(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	A, B, ka, kb := pair(t, n)
	a := n.dial(t, A, ka, clientOpts{autoAck: true}).connected(t)
	sendAll := func(prefix string, count int) []string {
		ids := make([]string, count)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s-%04d", prefix, i)
			a.send(t, textMessage(ids[i], B, ids[i]))
		}
		return ids
	}
	awaitAcks := func(ids []string) {
		for _, id := range ids { // acks come in commit order, which is send order
			if ack := a.awaitAck(t, id); ack.Error != "" {
				t.Fatalf("ack of %s = %v", id, ack)
			}
		}
	}

	t.Run("live", func(t *testing.T) {
		b := n.dial(t, B, kb, clientOpts{autoAck: true}).connected(t)
		if got := b.recv(t).GetOfflineComplete(); got == nil || got.Count != 0 {
			t.Fatalf("B's first stanza = %v, want OfflineComplete{0}", got)
		}
		ids := sendAll("live", 500)
		receiveOrdered(t, b, ids, false)
		awaitAcks(ids)
		waitFor(t, "B's acks to empty the queue", func() bool { return queueRows(t, n, B) == 0 })
		b.stop(t)
	})

	t.Run("backlog", func(t *testing.T) {
		const total = 2*Window + 100
		ids := sendAll("backlog", total)
		awaitAcks(ids)
		if got := queueRows(t, n, B); got != total {
			t.Fatalf("queue rows for offline B = %d, want %d", got, total)
		}
		b := n.dial(t, B, kb, clientOpts{autoAck: true}).connected(t)
		receiveOrdered(t, b, ids, true)
		if got := b.recv(t).GetOfflineComplete(); got == nil || got.Count != total {
			t.Fatalf("after the backlog B got %v, want OfflineComplete{%d}", got, total)
		}
		waitFor(t, "B's acks to empty the queue", func() bool { return queueRows(t, n, B) == 0 })
	})
}

// TestReceipts: B's delivered and read receipts reach A with from=B, live
// and from A's backlog.
func TestReceipts(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	A, B, ka, kb := pair(t, n)
	a := n.dial(t, A, ka, clientOpts{autoAck: true}).connected(t)
	b := n.dial(t, B, kb, clientOpts{autoAck: true}).connected(t)

	a.send(t, textMessage("r-msg", B, "read me"))
	b.await(t, "the message", func(st *chatdv1.Stanza) bool { return st.GetMessage().GetId() == "r-msg" })

	receipt := func(id string, typ chatdv1.ReceiptType) *chatdv1.Stanza {
		return &chatdv1.Stanza{Body: &chatdv1.Stanza_Receipt{Receipt: &chatdv1.Receipt{Id: id, MessageIds: []string{"r-msg"}, To: A, Type: typ}}}
	}
	check := func(got *chatdv1.Receipt, id string, typ chatdv1.ReceiptType, offline bool) {
		t.Helper()
		want := &chatdv1.Receipt{Id: id, MessageIds: []string{"r-msg"}, From: B, To: A, Type: typ, Offline: offline}
		if diff := cmp.Diff(want, got, protocmp.Transform(), protocmp.IgnoreFields(&chatdv1.Receipt{}, "t", "queue_seq")); diff != "" {
			t.Errorf("receipt at A mismatch (-want +got):\n%s", diff)
		}
		if got.QueueSeq == 0 || got.T == 0 {
			t.Errorf("receipt at A without queue_seq or time: %v", got)
		}
	}
	isReceipt := func(id string) func(*chatdv1.Stanza) bool {
		return func(st *chatdv1.Stanza) bool { return st.GetReceipt().GetId() == id }
	}

	for _, r := range []struct {
		id  string
		typ chatdv1.ReceiptType
	}{{"r-1", chatdv1.ReceiptType_RECEIPT_TYPE_DELIVERED}, {"r-2", chatdv1.ReceiptType_RECEIPT_TYPE_READ}} {
		b.send(t, receipt(r.id, r.typ))
		if ack := b.awaitAck(t, r.id); ack.Error != "" || ack.Class != chatdv1.AckClass_ACK_CLASS_RECEIPT {
			t.Fatalf("ack of receipt %s = %v", r.id, ack)
		}
		check(a.await(t, "receipt "+r.id, isReceipt(r.id)).GetReceipt(), r.id, r.typ, false)
	}
	// A resent receipt (B never saw the ack, say) is delivered again, not
	// lost: receipt ids are not remembered (PROTOCOL.md).
	b.send(t, receipt("r-2", chatdv1.ReceiptType_RECEIPT_TYPE_READ))
	if ack := b.awaitAck(t, "r-2"); ack.Error != "" {
		t.Fatalf("ack of the resent receipt = %v", ack)
	}
	check(a.await(t, "the resent receipt", isReceipt("r-2")).GetReceipt(), "r-2", chatdv1.ReceiptType_RECEIPT_TYPE_READ, false)

	// A is offline: the receipt waits in A's queue (once A's acks landed).
	waitFor(t, "A's acks of r-1 and r-2", func() bool { return queueRows(t, n, A) == 0 })
	a.stop(t)
	b.send(t, receipt("r-3", chatdv1.ReceiptType_RECEIPT_TYPE_PLAYED))
	b.awaitAck(t, "r-3")
	a = n.dial(t, A, ka, clientOpts{autoAck: true}).connected(t)
	check(a.recv(t).GetReceipt(), "r-3", chatdv1.ReceiptType_RECEIPT_TYPE_PLAYED, true)
	waitFor(t, "A's ack to empty its queue", func() bool { return queueRows(t, n, A) == 0 })
}

func TestContactCheck(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	A, B, ka, _ := pair(t, n)
	a := n.dial(t, A, ka, clientOpts{}).connected(t)

	res, err := a.iq(t, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_ContactCheck{ContactCheck: &chatdv1.ContactCheck{
		Numbers: []string{B, "15559990002", A, "not a number", B}}}})
	if err != nil {
		t.Fatal(err)
	}
	want := &chatdv1.ContactCheckResult{Contacts: []*chatdv1.ContactStatus{
		{Number: B, Registered: true},
		{Number: "15559990002"},
		{Number: A, Registered: true},
		{Number: "not a number"},
		{Number: B, Registered: true},
	}}
	if diff := cmp.Diff(want, res.GetContactCheckResult(), protocmp.Transform()); diff != "" {
		t.Errorf("contact check mismatch (-want +got):\n%s", diff)
	}

	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf("1555%07d", i)
	}
	_, err = a.iq(t, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_ContactCheck{ContactCheck: &chatdv1.ContactCheck{Numbers: many}}})
	if got := iqCode(t, err); got != 400 {
		t.Errorf("contact check of 1001 numbers: IQ error code %d (%v), want 400", got, err)
	}
}
