package server

import (
	"testing"
	"time"

	"github.com/openwaba/openwaba/api/errcode"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

func blockIQ(number string, blocked bool) *chatdv1.IQ {
	return &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Block{Block: &chatdv1.Block{Number: number, Blocked: blocked}}}
}

// TestBlock: a business blocks a customer who wrote in the last 24 hours;
// the customer's messages are then acked and never delivered, the
// business's are refused; after an unblock both flow again.
func TestBlock(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{EnforceWindow: true})
	B, B2, C, C2 := "15550005001", "15550005003", "15550005002", "15550005004"
	kb := n.register(t, B, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	n.register(t, B2, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	kc := n.register(t, C, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	n.register(t, C2, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	b := n.dial(t, B, kb, clientOpts{autoAck: true}).connected(t)
	c := n.dial(t, C, kc, clientOpts{autoAck: true}).connected(t)

	// Only a customer who wrote can be blocked; never another business.
	for _, tt := range []struct {
		number string
		code   errcode.Code
	}{{C, errcode.NotEngaged}, {C2, errcode.NotEngaged}, {"15550005999", errcode.NotEngaged}, {B2, errcode.Invalid}, {B, errcode.Invalid}, {"x", errcode.Invalid}} {
		if _, err := b.iq(t, blockIQ(tt.number, true)); iqCode(t, err) != uint32(tt.code) {
			t.Errorf("block %s = %v, want %d", tt.number, err, tt.code)
		}
	}
	if _, err := c.iq(t, blockIQ(B, true)); iqCode(t, err) != uint32(errcode.AccessDenied) {
		t.Errorf("a consumer's block = %v, want %d", err, errcode.AccessDenied)
	}

	c.send(t, textMessage("c-1", B, "hi"))
	c.awaitAck(t, "c-1")
	b.await(t, "the customer's first message", func(st *chatdv1.Stanza) bool { return st.GetMessage().GetId() == "c-1" })
	for range 2 { // blocking twice is one block
		if _, err := b.iq(t, blockIQ(C, true)); err != nil {
			t.Fatalf("block: %v", err)
		}
	}
	c.send(t, textMessage("c-2", B, "are you there?"))
	if ack := c.awaitAck(t, "c-2"); ack.Error != "" {
		t.Errorf("a blocked customer's message was refused (%q): it should look sent", ack.Error)
	}
	b.send(t, textMessage("b-1", C, "hello"))
	if ack := b.awaitAck(t, "b-1"); ack.Error != nackBlocked {
		t.Errorf("a message to a blocked customer: ack %v, want nack %q", ack, nackBlocked)
	}
	if q := count(t, n.db, "SELECT COUNT(*) FROM queue WHERE stanza_id = 'c-2'"); q != 0 {
		t.Errorf("the blocked customer's message is queued (%d rows)", q)
	}

	if _, err := b.iq(t, blockIQ(C, false)); err != nil {
		t.Fatalf("unblock: %v", err)
	}
	if _, err := b.iq(t, blockIQ(C2, false)); err != nil {
		t.Errorf("unblocking someone never blocked = %v, want success", err)
	}
	c.send(t, textMessage("c-3", B, "now?"))
	c.awaitAck(t, "c-3")
	got := b.await(t, "the message after the unblock", func(st *chatdv1.Stanza) bool {
		id := st.GetMessage().GetId()
		return id == "c-3" || id == "c-2"
	})
	if got.GetMessage().GetId() != "c-3" {
		t.Errorf("the business got %s; the message sent while blocked must never arrive", got.GetMessage().GetId())
	}
	b.send(t, textMessage("b-2", C, "welcome back"))
	if ack := b.awaitAck(t, "b-2"); ack.Error != "" {
		t.Errorf("a message after the unblock: ack %v", ack)
	}
	c.await(t, "the business's message after the unblock", func(st *chatdv1.Stanza) bool { return st.GetMessage().GetId() == "b-2" })

	// The 24 hours: a customer whose last message is older cannot be blocked.
	if _, err := n.db.Exec("UPDATE windows SET last_inbound = ? WHERE business = ? AND customer = ?", time.Now().Add(-25*time.Hour).Unix(), B, C); err != nil {
		t.Fatal(err)
	}
	if _, err := b.iq(t, blockIQ(C, true)); iqCode(t, err) != uint32(errcode.NotEngaged) {
		t.Errorf("block after 25 hours = %v, want %d", err, errcode.NotEngaged)
	}
}
