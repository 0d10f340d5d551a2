package server

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/shard"
	"github.com/openwaba/openwaba/chatd/wire"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

func setShardsIQ(shards uint32) *chatdv1.IQ {
	return &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_SetShards{SetShards: &chatdv1.SetShards{Shards: shards}}}
}

// setShards sends SetShards on a registration connection for number with
// key and returns the count chatd answered.
func (n *testNet) setShards(t *testing.T, number string, key wire.KeyPair, shards uint32) (uint32, error) {
	t.Helper()
	var got uint32
	err := n.registration(t, number, key, func(iq iqFunc) error {
		res, err := iq(t.Context(), setShardsIQ(shards))
		if err != nil {
			return err
		}
		if res.GetSetShardsResult() == nil {
			return fmt.Errorf("SetShards answered %v, want SetShardsResult", res)
		}
		got = res.GetSetShardsResult().Shards
		return nil
	})
	return got, err
}

// mustSetShards is setShards that fails the test unless chatd answered shards.
func (n *testNet) mustSetShards(t *testing.T, number string, key wire.KeyPair, shards uint32) {
	t.Helper()
	got, err := n.setShards(t, number, key, shards)
	if err != nil || got != shards {
		t.Fatalf("SetShards(%d) for %s = %d, %v; want %d", shards, number, got, err, shards)
	}
}

// logLine is one parsed line of the server's text log.
type logLine map[string]string

var logAttr = regexp.MustCompile(`([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)`)

// logLines parses everything the server logged so far, in order.
func (n *testNet) logLines(t *testing.T) []logLine {
	t.Helper()
	var out []logLine
	for _, text := range strings.Split(n.logs.String(), "\n") {
		if text == "" {
			continue
		}
		l := logLine{}
		for _, m := range logAttr.FindAllStringSubmatch(text, -1) {
			v := m[2]
			if strings.HasPrefix(v, `"`) {
				u, err := strconv.Unquote(v)
				if err != nil {
					t.Fatalf("log line %q: value %s: %v", text, v, err)
				}
				v = u
			}
			l[m[1]] = v
		}
		out = append(out, l)
	}
	return out
}

// find returns the index of the first line from start on that has every
// key=value of kv, or -1.
func find(lines []logLine, start int, kv ...string) int {
	for i := start; i < len(lines); i++ {
		ok := true
		for j := 0; j+1 < len(kv); j += 2 {
			ok = ok && lines[i][kv[j]] == kv[j+1]
		}
		if ok {
			return i
		}
	}
	return -1
}

// waitLine waits until the server logged a line with every key=value of kv
// and returns its index among n.logLines.
func (n *testNet) waitLine(t *testing.T, kv ...string) int {
	t.Helper()
	i := -1
	waitFor(t, fmt.Sprintf("a log line with %q", kv), func() bool {
		i = find(n.logLines(t), 0, kv...)
		return i >= 0
	})
	return i
}

// TestSetShardsRefused: SetShards only changes a registered business
// account whose registered key is the connection's, and only to a power of
// two up to 32; nothing changes when it is refused.
func TestSetShardsRefused(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const business, consumer = "15550004001", "15550004002"
	kb := n.register(t, business, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	kc := n.register(t, consumer, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)

	tests := []struct {
		name   string
		number string
		key    wire.KeyPair
		iq     *chatdv1.IQ
		want   uint32
	}{
		{"unknown account", "15550004099", newKey(t), setShardsIQ(2), 404},
		{"consumer account", consumer, kc, setShardsIQ(2), 403},
		{"wrong static key", business, newKey(t), setShardsIQ(2), 403},
		{"zero", business, kb, setShardsIQ(0), 400},
		{"not a power of two", business, kb, setShardsIQ(3), 400},
		{"too many", business, kb, setShardsIQ(64), 400},
		{"get", business, kb, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_SetShards{SetShards: &chatdv1.SetShards{Shards: 2}}}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := n.registration(t, tt.number, tt.key, func(iq iqFunc) error {
				_, err := iq(t.Context(), tt.iq)
				return err
			})
			if got := iqCode(t, err); got != tt.want {
				t.Errorf("SetShards: IQ error code %d (%v), want %d", got, err, tt.want)
			}
		})
	}

	t.Run("on a session connection", func(t *testing.T) {
		c := n.dial(t, business, kb, clientOpts{epoch: 1}).connected(t)
		_, err := c.iq(t, setShardsIQ(2))
		if got := iqCode(t, err); got != 400 {
			t.Errorf("SetShards on a session: IQ error code %d (%v), want 400", got, err)
		}
		c.stop(t)
	})

	if got := count(t, n.db, "SELECT COUNT(*) FROM accounts WHERE shards <> 1"); got != 0 {
		t.Errorf("accounts with shards <> 1 after refused requests: %d, want 0", got)
	}
	if i := find(n.logLines(t), 0, "msg", "shards set"); i >= 0 {
		t.Errorf("a refused SetShards logged %v", n.logLines(t)[i])
	}
}

// peersPerShard returns two consumer numbers for each of shards slots.
func peersPerShard(t *testing.T, shards int) []string {
	t.Helper()
	per := map[uint32]int{}
	var out []string
	for i := range 100 {
		p := fmt.Sprintf("155500050%02d", i)
		if sh := shard.For(p, shards); per[sh] < 2 {
			per[sh]++
			out = append(out, p)
		}
	}
	if len(out) != 2*shards {
		t.Fatalf("found %d peers for %d shards, want 2 each", len(out), shards)
	}
	return out
}

// backlog reads a session's backlog up to OfflineComplete and returns the
// message ids per sender, in arrival order, checking queue_seq increases.
func backlog(t *testing.T, c *client) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	var last uint64
	for {
		st := c.recv(t)
		if oc := st.GetOfflineComplete(); oc != nil {
			return got
		}
		m := st.GetMessage()
		if m == nil {
			t.Fatalf("%s backlog: got %v, want messages then OfflineComplete", c.number, st)
		}
		if m.QueueSeq <= last {
			t.Fatalf("%s backlog: queue_seq %d after %d", c.number, m.QueueSeq, last)
		}
		last = m.QueueSeq
		got[m.From] = append(got[m.From], m.Id)
	}
}

// TestSetShardsRemap takes a business account from 1 slot to 4: what is
// queued for it (pushed but unacked included) moves to slot
// shard.For(peer, 4) in order per peer, its live session is closed and logs
// in again, slots 0 to 3 then work and slot 4 is refused; new traffic goes
// to the new slots.
func TestSetShardsRemap(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const biz = "15550004101"
	kb := n.register(t, biz, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	peers := peersPerShard(t, 4)
	clients := map[string]*client{}
	for _, p := range peers {
		clients[p] = n.dial(t, p, n.register(t, p, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER), clientOpts{autoAck: true}).connected(t)
	}

	// The business is online on its one slot and does not ack.
	live := n.dial(t, biz, kb, clientOpts{epoch: 3}).connected(t)
	const perPeer = 5
	want := map[string][]string{}
	for i := range perPeer {
		for _, p := range peers {
			id := fmt.Sprintf("%s-%d", p, i)
			clients[p].send(t, textMessage(id, biz, id))
			want[p] = append(want[p], id)
		}
	}
	for _, p := range peers {
		for _, id := range want[p] {
			if ack := clients[p].awaitAck(t, id); ack.Error != "" {
				t.Fatalf("ack of %s = %v", id, ack)
			}
		}
	}
	pushed := 0
	for pushed < len(peers)*perPeer {
		if live.recv(t).GetMessage() != nil {
			pushed++
		}
	}

	n.mustSetShards(t, biz, kb, 4)

	// The live session was ended and logged in again (RESTART).
	ended := n.waitLine(t, "msg", "session ended", "account", biz, "shard", "0", "epoch", "3", "reason", "set_shards")
	n.waitLine(t, "msg", "shards set", "account", biz, "old_shards", "1", "new_shards", "4")
	waitFor(t, "the closed session to log in again", func() bool {
		return find(n.logLines(t), ended+1, "msg", "login", "account", biz, "shard", "0", "epoch", "3") >= 0
	})
	live.stop(t)

	moved := 0
	for _, p := range peers {
		if shard.For(p, 4) != 0 {
			moved += perPeer
		}
	}
	lines := n.logLines(t)
	if i := find(lines, 0, "msg", "shards set", "account", biz); lines[i]["remapped"] != fmt.Sprint(moved) {
		t.Errorf("shards set line %v, want remapped=%d", lines[i], moved)
	}
	if got := count(t, n.db, "SELECT shards FROM accounts WHERE number = ?", biz); got != 4 {
		t.Errorf("accounts.shards = %d, want 4", got)
	}
	rows, err := n.db.Query("SELECT sender, shard FROM queue WHERE recipient = ?", biz)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var sender string
		var sh uint32
		if err := rows.Scan(&sender, &sh); err != nil {
			t.Fatal(err)
		}
		if want := shard.For(sender, 4); sh != want {
			t.Errorf("queued row from %s on shard %d, want %d", sender, sh, want)
		}
	}
	rows.Close()

	// Each slot gets its peers' backlog, in order per peer.
	slots := make([]*client, 4)
	for sh := range slots {
		slots[sh] = n.dial(t, biz, kb, clientOpts{shard: uint64(sh), epoch: 3, autoAck: true}).connected(t)
		got := backlog(t, slots[sh])
		wantHere := map[string][]string{}
		for _, p := range peers {
			if shard.For(p, 4) == uint32(sh) {
				wantHere[p] = want[p]
			}
		}
		if diff := cmp.Diff(wantHere, got); diff != "" {
			t.Errorf("backlog of shard %d mismatch (-want +got):\n%s", sh, diff)
		}
	}
	if err := n.dial(t, biz, kb, clientOpts{shard: 4, epoch: 3}).end(t); !refusal(err, chatdv1.FailureReason_FAILURE_REASON_BAD_REQUEST) {
		t.Errorf("login to shard 4 of 4 = %v, want ErrRefused BAD_REQUEST", err)
	}

	// New traffic is routed by the new count, live.
	for _, p := range peers {
		id := p + "-live"
		clients[p].send(t, textMessage(id, biz, id))
		m := slots[shard.For(p, 4)].await(t, id, func(st *chatdv1.Stanza) bool { return st.GetMessage() != nil }).GetMessage()
		if m.Id != id || m.Offline {
			t.Errorf("shard %d received %v, want live %s", shard.For(p, 4), m, id)
		}
	}
	waitFor(t, "the business's acks to empty its queue", func() bool { return queueRows(t, n, biz) == 0 })
}

// TestSetShardsEpochs: shrinking the count keeps the epochs of every slot,
// so a stale owner stays fenced when the count grows again; the same count
// again is answered and changes nothing.
func TestSetShardsEpochs(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const biz = "15550004201"
	kb := n.register(t, biz, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	n.mustSetShards(t, biz, kb, 4)
	for _, s := range []struct{ shard, epoch uint64 }{{1, 5}, {3, 9}} {
		n.dial(t, biz, kb, clientOpts{shard: s.shard, epoch: s.epoch}).connected(t).stop(t)
	}

	n.mustSetShards(t, biz, kb, 2)
	if got := count(t, n.db, "SELECT COUNT(*) FROM slots WHERE number = ? AND ((shard = 1 AND epoch = 5) OR (shard = 3 AND epoch = 9))", biz); got != 2 {
		t.Errorf("slot rows kept after 4 → 2: %d, want 2", got)
	}
	if err := n.dial(t, biz, kb, clientOpts{shard: 1, epoch: 4}).end(t); !refusal(err, chatdv1.FailureReason_FAILURE_REASON_STALE_EPOCH) {
		t.Errorf("login to shard 1 with epoch 4 < 5 = %v, want ErrRefused STALE_EPOCH", err)
	}
	if err := n.dial(t, biz, kb, clientOpts{shard: 3, epoch: 10}).end(t); !refusal(err, chatdv1.FailureReason_FAILURE_REASON_BAD_REQUEST) {
		t.Errorf("login to shard 3 of 2 = %v, want ErrRefused BAD_REQUEST", err)
	}
	s1 := n.dial(t, biz, kb, clientOpts{shard: 1, epoch: 5}).connected(t)
	s1Login := -1
	for i, l := range n.logLines(t) {
		if l["msg"] == "login" && l["shard"] == "1" && l["epoch"] == "5" {
			s1Login = i // the last one: s1's
		}
	}

	// The same count: answered, the session stays.
	n.mustSetShards(t, biz, kb, 2)
	n.waitLine(t, "msg", "shards set", "account", biz, "old_shards", "2", "new_shards", "2", "sessions_closed", "0")
	if _, err := s1.iq(t, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_Ping{Ping: &chatdv1.Ping{}}}); err != nil {
		t.Errorf("ping on shard 1 after SetShards(2) again: %v", err)
	}
	if i := find(n.logLines(t), s1Login, "msg", "session ended", "account", biz, "shard", "1", "epoch", "5"); i >= 0 {
		t.Errorf("SetShards to the same count ended a session: %v", n.logLines(t)[i])
	}
	s1.stop(t)

	// Growing again: shard 3 continues from its epoch.
	n.mustSetShards(t, biz, kb, 4)
	if err := n.dial(t, biz, kb, clientOpts{shard: 3, epoch: 8}).end(t); !refusal(err, chatdv1.FailureReason_FAILURE_REASON_STALE_EPOCH) {
		t.Errorf("login to shard 3 with epoch 8 < 9 = %v, want ErrRefused STALE_EPOCH", err)
	}
	n.dial(t, biz, kb, clientOpts{shard: 3, epoch: 9}).connected(t)
}

// TestSessionEndedOrder: a login with a higher epoch ends the slot's
// session before it logs in: the old connection's "session ended" line
// (with the count of stanzas chatd took from it, exactly what reached the
// queue) comes before the new one's "login", and after it chatd takes
// nothing more from the old connection. Closing and stopping log it too.
func TestSessionEndedOrder(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const biz, peer = "15550004301", "15550004302"
	kb := n.register(t, biz, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	n.register(t, peer, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)

	c5 := n.dial(t, biz, kb, clientOpts{epoch: 5}).connected(t)

	// c5 sends as fast as it can, 100 unacked at most, until it is
	// replaced.
	var acked atomic.Int64
	ctx, cancel := context.WithCancel(t.Context())
	blast := make(chan struct{})
	go func() {
		defer close(blast)
		for sent := 0; ; {
			if sent-int(acked.Load()) < 100 {
				id := fmt.Sprintf("e5-%06d", sent)
				if c5.sess.Send(ctx, textMessage(id, peer, id)) != nil {
					return
				}
				sent++
				continue
			}
			select {
			case st := <-c5.stanzas:
				if st.GetAck() != nil {
					acked.Add(1)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	waitFor(t, "c5's first acks", func() bool { return acked.Load() >= 20 })

	c7 := n.dial(t, biz, kb, clientOpts{epoch: 7, autoAck: true}).connected(t)
	if err := c5.end(t); !errors.Is(err, session.ErrReplaced) {
		t.Fatalf("epoch 5 session ended with %v, want ErrReplaced\n%s", err, n.logs.String())
	}
	cancel()
	<-blast
	t.Logf("c5 got %d acks", acked.Load())
	c7.send(t, textMessage("e7-1", peer, "after"))
	if ack := c7.awaitAck(t, "e7-1"); ack.Error != "" {
		t.Fatalf("ack of e7-1 = %v", ack)
	}

	lines := n.logLines(t)
	login5 := find(lines, 0, "msg", "login", "account", biz, "shard", "0", "epoch", "5")
	ended5 := find(lines, 0, "msg", "session ended", "account", biz, "shard", "0", "epoch", "5")
	login7 := find(lines, 0, "msg", "login", "account", biz, "shard", "0", "epoch", "7")
	if login5 < 0 || ended5 < 0 || login7 < 0 {
		t.Fatalf("log lines: login epoch 5 at %d, session ended epoch 5 at %d, login epoch 7 at %d; want all\n%s", login5, ended5, login7, n.logs.String())
	}
	if !(login5 < ended5 && ended5 < login7) {
		t.Errorf("log order: login 5 at %d, session ended 5 at %d, login 7 at %d; want in that order", login5, ended5, login7)
	}
	if got := lines[ended5]["reason"]; got != "replaced" {
		t.Errorf("session ended reason = %q, want replaced", got)
	}
	// Nothing of c5's was accepted after its end: the count it logged is
	// every row it got into the queue.
	stored := count(t, n.db, "SELECT COUNT(*) FROM queue WHERE sender = ? AND stanza_id LIKE 'e5-%'", biz)
	if got := lines[ended5]["messages"]; got != fmt.Sprint(stored) {
		t.Errorf("session ended messages=%s, want %d (the rows c5 queued)", got, stored)
	}
	if stored < 20 {
		t.Errorf("c5 queued %d messages, want at least the 20 acked before the replacement", stored)
	}
	if got := lines[ended5]["receipts"]; got != "0" {
		t.Errorf("session ended receipts=%s, want 0", got)
	}
	if i := find(lines, 0, "msg", "session ended", "epoch", "7"); i >= 0 {
		t.Errorf("the new session logged an end while live: %v", lines[i])
	}

	// Closed by the client, then a server stop.
	c7.stop(t)
	ended7 := n.waitLine(t, "msg", "session ended", "account", biz, "epoch", "7")
	if got := n.logLines(t)[ended7]; got["reason"] != "closed_by_client" || got["messages"] != "1" {
		t.Errorf("session ended line of c7 = %v, want reason=closed_by_client messages=1", got)
	}
	c8 := n.dial(t, biz, kb, clientOpts{epoch: 8}).connected(t)
	n.stop()
	n.waitLine(t, "msg", "session ended", "account", biz, "epoch", "8", "reason", "server_stop", "messages", "0")
	c8.stop(t)

	// One "session ended" per login, none for registration connections.
	lines = n.logLines(t)
	var logins, ends []string
	for _, l := range lines {
		switch l["msg"] {
		case "login":
			logins = append(logins, l["account"]+"/"+l["epoch"])
		case "session ended":
			ends = append(ends, l["account"]+"/"+l["epoch"])
		}
	}
	slices.Sort(logins)
	slices.Sort(ends)
	if diff := cmp.Diff(logins, ends); diff != "" {
		t.Errorf("sessions logged in vs ended (-login +ended):\n%s", diff)
	}
}

// TestSetShardsOtherChatd: a chatd that routed to the account before the
// change (and cached its one slot) still queues on the new slots: the slot
// is decided when the row commits.
func TestSetShardsOtherChatd(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	other := startNet(t, Config{DB: n.db})
	const biz = "15550004401"
	kb := n.register(t, biz, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	var peer string
	for i := range 100 {
		if p := fmt.Sprintf("155500044%02d", 50+i); shard.For(p, 4) != 0 {
			peer = p
			break
		}
	}
	kp := n.register(t, peer, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	c := other.dial(t, peer, kp, clientOpts{autoAck: true}).connected(t)
	c.send(t, textMessage("o-1", biz, "before"))
	c.awaitAck(t, "o-1")

	n.mustSetShards(t, biz, kb, 4)
	c.send(t, textMessage("o-2", biz, "after"))
	c.awaitAck(t, "o-2")

	want := shard.For(peer, 4)
	for _, id := range []string{"o-1", "o-2"} {
		if got := count(t, n.db, "SELECT shard FROM queue WHERE recipient = ? AND stanza_id = ?", biz, id); got != int(want) {
			t.Errorf("%s queued on shard %d, want %d", id, got, want)
		}
	}
}
