package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/openwaba/openwaba/chatd/wire"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// rawConn opens a registration connection (the Noise handshake, no session)
// and reads Success.
func rawConn(t *testing.T, n *testNet) *wire.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", n.addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	login := &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_REGISTER, Account: "15550003001", ClientVersion: "raw/1"}
	c, err := wire.ClientHandshake(t.Context(), nc, wire.ClientConfig{Static: newKey(t), RootKey: n.rootKey, Login: login})
	if err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(wait)) // far beyond the idle timeout
	if st, err := c.ReadStanza(); err != nil || st.GetSuccess() == nil {
		t.Fatalf("first stanza = %v, %v; want Success", st, err)
	}
	return c
}

// expectClosed waits for chatd to close a silent connection.
func expectClosed(t *testing.T, c *wire.Conn, idle time.Duration) {
	t.Helper()
	silent := time.Now()
	st, err := c.ReadStanza()
	if err == nil {
		t.Fatalf("silent connection received %v, want it closed", st)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("silent connection still open after %v (our read timed out)", time.Since(silent))
	}
	if el := time.Since(silent); el > 10*idle {
		t.Errorf("silent connection closed after %v, want about %v", el, idle)
	}
}

// TestIdleTimeout: a connection that stays silent after the handshake is
// closed by chatd; one that keeps talking stays up past the idle timeout
// until it too falls silent. Not parallel: the ping cadence must not be
// starved by the other tests.
func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	n := startNet(t, Config{IdleTimeout: idle})

	expectClosed(t, rawConn(t, n), idle)

	talker := rawConn(t, n)
	// Talking: a ping every idle/6 for twice the idle timeout.
	tick := time.NewTicker(idle / 6)
	defer tick.Stop()
	start := time.Now()
	for i := 0; time.Since(start) < 2*idle; i++ {
		<-tick.C
		id := fmt.Sprint("ping-", i)
		if err := talker.WriteStanza(&chatdv1.Stanza{Body: &chatdv1.Stanza_Iq{Iq: &chatdv1.IQ{Id: id, Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}}}}); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		if err := talker.Flush(); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		st, err := talker.ReadStanza()
		if err != nil {
			t.Fatalf("ping %d after %v: %v (closed while talking)", i, time.Since(start), err)
		}
		want := &chatdv1.IQ{Id: id, Type: chatdv1.IQType_IQ_TYPE_RESULT, Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}}
		if diff := cmp.Diff(want, st.GetIq(), protocmp.Transform()); diff != "" {
			t.Fatalf("ping %d reply mismatch (-want +got):\n%s", i, diff)
		}
	}
	expectClosed(t, talker, idle)
}

// TestExpiry: an undelivered message past the queue TTL is removed by the
// janitor's expire pass and its sender, online, is told MESSAGE_EXPIRED.
func TestExpiry(t *testing.T) {
	t.Parallel()
	const ttl = 1500 * time.Millisecond
	n := startNet(t, Config{QueueTTL: ttl})
	A, B, ka, kb := pair(t, n)
	a := n.dial(t, A, ka, clientOpts{autoAck: true}).connected(t)
	if got := a.recv(t).GetOfflineComplete(); got == nil {
		t.Fatalf("A is not live yet")
	}

	a.send(t, textMessage("x-1", B, "too late"))
	if ack := a.awaitAck(t, "x-1"); ack.Error != "" {
		t.Fatalf("ack of x-1 = %v", ack)
	}
	if err := n.srv.expire(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := queueRows(t, n, B); got != 1 {
		t.Fatalf("queue rows for B right after sending = %d, want 1 (not yet expired)", got)
	}
	waitFor(t, "x-1 to expire", func() bool {
		if err := n.srv.expire(context.Background()); err != nil {
			t.Fatalf("expire: %v", err)
		}
		return queueRows(t, n, B) == 0
	})

	st := a.await(t, "MESSAGE_EXPIRED", func(st *chatdv1.Stanza) bool { return st.GetNotification() != nil })
	want := &chatdv1.Notification{Type: chatdv1.NotificationType_NOTIFICATION_TYPE_MESSAGE_EXPIRED, MessageIds: []string{"x-1"}, Peer: B}
	if diff := cmp.Diff(want, st.GetNotification(), protocmp.Transform(), protocmp.IgnoreFields(&chatdv1.Notification{}, "id", "queue_seq", "t")); diff != "" {
		t.Errorf("notification mismatch (-want +got):\n%s", diff)
	}
	if nt := st.GetNotification(); nt.Id == "" || nt.QueueSeq == 0 {
		t.Errorf("notification without id or queue_seq: %v", nt)
	}
	waitFor(t, "A's ack to delete the notification", func() bool { return queueRows(t, n, A) == 0 })

	// B never gets the expired message.
	b := n.dial(t, B, kb, clientOpts{}).connected(t)
	if first := b.recv(t); first.GetOfflineComplete() == nil || first.GetOfflineComplete().Count != 0 {
		t.Errorf("B's first stanza = %v, want OfflineComplete{0}", first)
	}
}

// TestExpiryByAge: the janitor expires rows by age under the TTL in force,
// from the lowest seq, more than one batch in a pass, and stops at the
// first row that is not due: a fresh row holds back an old one queued
// after it (a clock set back), which expires once the fresh one is due.
func TestExpiryByAge(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{QueueTTL: time.Hour})
	const recipient, old = "15550009001", 2*expireBatch + 10
	now := time.Now()
	insert := func(count int, created time.Time) {
		t.Helper()
		for start := 0; start < count; start += 500 {
			rows := min(500, count-start)
			q := "INSERT INTO queue (recipient, shard, sender, kind, stanza_id, payload, created_at, expires_at) VALUES (?,0,'15550009002',?,?,?,?,?)" +
				strings.Repeat(",(?,0,'15550009002',?,?,?,?,?)", rows-1)
			var args []any
			for i := range rows {
				args = append(args, recipient, kindReceipt, fmt.Sprintf("r-%d-%d", created.UnixNano(), start+i), []byte{1}, created.UnixMilli(), created.Add(time.Hour).UnixMilli())
			}
			if _, err := n.db.ExecContext(t.Context(), q, args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert(old, now.Add(-2*time.Hour))
	insert(1, now)                   // fresh
	insert(1, now.Add(-3*time.Hour)) // old, but queued after the fresh one
	if err := n.srv.expire(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := queueRows(t, n, recipient); got != 2 {
		t.Fatalf("rows left = %d, want 2 (the %d due ones before the fresh one expired in one pass)", got, old)
	}
	var fresh int64
	if err := n.db.QueryRowContext(t.Context(), "SELECT MIN(created_at) FROM queue WHERE recipient = ? AND created_at >= ?", recipient, now.UnixMilli()).Scan(&fresh); err != nil || fresh != now.UnixMilli() {
		t.Fatalf("the fresh row is gone (%d, %v)", fresh, err)
	}
}
