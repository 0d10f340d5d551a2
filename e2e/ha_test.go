package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/chatd/shard"
	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/e2e/stack"
)

// The high-availability chaos tests: three coreapps and two webapps on one
// database, several phones, a steady send load through both webapps, and a
// node killed, cut off or restarted in the middle. Every test is bounded by
// the waits it makes (each has a limit) and by the package's -timeout.

// haFailoverLimit bounds the gap in deliveries a failover may cause in a
// test. The target with the default settings (heartbeat_interval 1 s,
// unhealthy_interval 3 s) is 5 s; the slack covers a loaded CI machine
// running everything under the race detector. make bench measures the real
// figure.
const haFailoverLimit = 15 * time.Second

// haEnv is a registered business on a multi-node stack, with phones that
// have each received a warm-up message (their Signal sessions exist) and a
// webhook receiver.
type haEnv struct {
	t      testing.TB
	s      *stack.Stack
	tok    string
	hook   *stack.Webhook
	db     *sql.DB
	phones []*stack.Phone
	shards int
}

// slotLease is one row of slot_leases.
type slotLease struct {
	Owner     string
	Epoch     int64
	Connected bool
}

func newHA(t testing.TB, o stack.Options, shards, phones int) *haEnv {
	t.Helper()
	if o.Coreapps == 0 {
		o.Coreapps = 3
	}
	if o.Webapps == 0 {
		o.Webapps = 2
	}
	s := stack.New(t, o)
	h := &haEnv{t: t, s: s, tok: s.Login(), db: dbtest.Open(t, s.CoreDB), shards: 1}
	s.Register(h.tok, bizCC, bizPhone)
	s.WaitHealth(h.tok, "connected", 30*time.Second)
	h.hook = stack.NewWebhook(t)
	r := s.Do("PATCH", "/v1/settings/application", bearer(h.tok), map[string]any{
		"webhooks":                  map[string]any{"url": h.hook.URL},
		"callback_backoff_delay_ms": 200, "max_callback_backoff_delay_ms": 1000,
	})
	if r.Status != 200 {
		t.Fatalf("PATCH settings = %d %s", r.Status, r.Raw)
	}
	if shards != 1 {
		h.setShards(shards)
	}
	h.waitSlots(30 * time.Second)
	for i := range phones {
		h.phones = append(h.phones, s.NewPhone(fmt.Sprintf("1555300%04d", i), fmt.Sprintf("Customer %d", i)))
	}
	for _, p := range h.phones {
		p.OpenWindow(bizWaID)
	}
	// Warm up every Signal session before any chaos, so what the tests cut is
	// the messages' path.
	var ids []string
	for _, p := range h.phones {
		ids = append(ids, sendTexts(t, s, h.tok, p.Number(), "warm-up "+p.Number(), 1)[0])
	}
	for i, p := range h.phones {
		p.WaitFor(30*time.Second, "warm-up", func(e waphone.Event) bool { return e.Event == "message" && e.ID == ids[i] })
	}
	return h
}

// assertHealth checks GET /v1/health through every webapp: the on-prem
// multi-node shape, one entry per live coreapp keyed "<hostname>:<node id>"
// with gateway_status and role, exactly one primary master, and the
// business connected on at least one node.
func (h *haEnv) assertHealth(nodes int) {
	h.t.Helper()
	host, _ := os.Hostname()
	for _, w := range h.s.Webs {
		if w.Proc.Exited() {
			continue
		}
		r := w.Do("GET", "/v1/health", bearer(h.tok), nil)
		health, _ := r.Body["health"].(map[string]any)
		if r.Status != 200 || len(health) != nodes {
			h.t.Errorf("web%d: GET /v1/health = %d %s, want %d node entries", w.Index+1, r.Status, r.Raw, nodes)
			continue
		}
		primaries, connected := 0, 0
		for key, v := range health {
			n, _ := v.(map[string]any)
			node, ok := strings.CutPrefix(key, host+":")
			if !ok || h.core(node) == nil || !h.core(node).Running() {
				h.t.Errorf("web%d: health entry %q is not \"<hostname>:<node id>\" of a running coreapp", w.Index+1, key)
			}
			switch n["role"] {
			case "primary_master":
				primaries++
			case "secondary_master", "coreapp":
			default:
				h.t.Errorf("web%d: health entry %q has role %v", w.Index+1, key, n["role"])
			}
			switch n["gateway_status"] {
			case "connected":
				connected++
			case "disconnected", "connecting":
			default:
				h.t.Errorf("web%d: health entry %q has gateway_status %v", w.Index+1, key, n["gateway_status"])
			}
		}
		if primaries != 1 || connected == 0 {
			h.t.Errorf("web%d: health has %d primary masters and %d connected nodes, want 1 and some: %s", w.Index+1, primaries, connected, r.Raw)
		}
	}
}

// numbers are the phones' numbers.
func (h *haEnv) numbers() []string {
	var out []string
	for _, p := range h.phones {
		out = append(out, p.Number())
	}
	return out
}

// setShards changes the business's shard count through the API and waits
// until every new slot is owned and connected.
func (h *haEnv) setShards(n int) {
	h.t.Helper()
	r := h.s.Do("POST", "/v1/account/shards", bearer(h.tok), map[string]any{"cc": bizCC, "phone_number": bizPhone, "shards": n})
	if r.Status != 201 {
		h.t.Fatalf("POST /v1/account/shards %d = %d %s", n, r.Status, r.Raw)
	}
	r = h.s.Do("GET", "/v1/account/shards", bearer(h.tok), nil)
	if got := fmt.Sprint(r.Body["account"]); r.Status != 200 || got != fmt.Sprintf("map[shards:%d]", n) {
		h.t.Fatalf("GET /v1/account/shards = %d %s, want shards %d", r.Status, r.Raw, n)
	}
	h.shards = n
	h.waitSlots(30 * time.Second)
}

// slots reads the business's slot leases that are live in the database's
// clock.
func (h *haEnv) slots() map[uint32]slotLease {
	h.t.Helper()
	rows, err := h.db.Query(`SELECT l.shard, l.owner, l.epoch, l.connected FROM slot_leases l
		JOIN accounts a ON a.id = l.account_id
		WHERE a.wa_id = ? AND l.expires_at > CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)`, bizWaID)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	out := map[uint32]slotLease{}
	for rows.Next() {
		var sh uint32
		var l slotLease
		if err := rows.Scan(&sh, &l.Owner, &l.Epoch, &l.Connected); err != nil {
			h.t.Fatal(err)
		}
		out[sh] = l
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// waitSlots waits until every slot of the business is leased to a running
// node and connected, and returns the leases.
func (h *haEnv) waitSlots(within time.Duration) map[uint32]slotLease {
	h.t.Helper()
	return h.waitSlotsOff("", within)
}

// waitSlotsOff is waitSlots that also waits until no slot is leased to
// node.
func (h *haEnv) waitSlotsOff(node string, within time.Duration) map[uint32]slotLease {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := h.slots()
		ok := len(got) == h.shards
		for sh, l := range got {
			c := h.core(l.Owner)
			if int(sh) >= h.shards || !l.Connected || c == nil || !c.Running() || l.Owner == node {
				ok = false
			}
		}
		if ok {
			return got
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d slots not all leased and connected within %s: %+v", h.shards, within, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// core returns the coreapp with the node id, or nil.
func (h *haEnv) core(node string) *stack.Core {
	for _, c := range h.s.Cores {
		if c.NodeID == node {
			return c
		}
	}
	return nil
}

// busiestSlot returns the shard that the most phones map to, and the phones
// on it.
func (h *haEnv) busiestSlot() (uint32, []*stack.Phone) {
	by := map[uint32][]*stack.Phone{}
	for _, p := range h.phones {
		sh := shard.For(p.Number(), h.shards)
		by[sh] = append(by[sh], p)
	}
	var best uint32
	for sh, ps := range by {
		if len(ps) > len(by[best]) || len(ps) == len(by[best]) && sh < best {
			best = sh
		}
	}
	return best, by[best]
}

// startLoad sends rate messages per second to every phone through both
// webapps, retrying failures with the same request id.
func (h *haEnv) startLoad(prefix string, rate float64) *stack.Load {
	return h.s.StartLoad(stack.LoadOptions{Auth: bearer(h.tok), To: h.numbers(), Rate: rate, Retry: true, Prefix: prefix})
}

// assertDelivered waits until every message the load got accepted reached
// its phone, then checks that each phone showed each of them exactly once,
// in the order the API accepted them, and no body twice.
func (h *haEnv) assertDelivered(res stack.LoadResult, within time.Duration) {
	h.t.Helper()
	total := 0
	for _, p := range h.phones {
		ids := res.Accepted[p.Number()]
		total += len(ids)
		want := map[string]bool{}
		for _, id := range ids {
			want[id] = true
		}
		p.WaitCount(within, "accepted messages", len(ids), func(e waphone.Event) bool { return e.Event == "message" && want[e.ID] })
		var order []string
		count, bodies := map[string]int{}, map[string]int{}
		for _, e := range p.Events() {
			if e.Event != "message" {
				continue
			}
			count[e.ID]++
			bodies[e.Text]++
			if want[e.ID] && count[e.ID] == 1 {
				order = append(order, e.ID)
			}
		}
		for id, n := range count {
			if n != 1 {
				h.t.Errorf("%s: message %s shown %d times, want once", p, id, n)
			}
		}
		for body, n := range bodies {
			if n != 1 {
				h.t.Errorf("%s: body %q shown %d times (a retried send was sent twice)", p, body, n)
			}
		}
		if i := firstDiff(order, ids); i >= 0 {
			h.t.Errorf("%s: of %d messages, #%d arrived out of order: got %q, want %q", p, len(ids), i,
				bodiesOf(res, order[i:min(i+5, len(order))]), bodiesOf(res, ids[i:min(i+5, len(ids))]))
		}
	}
	if total == 0 {
		h.t.Fatal("the load got no message accepted")
	}
	h.t.Logf("%d messages accepted and delivered exactly once, in order (%d failed attempts retried)", total, len(res.Errors))
}

// firstDiff returns the first index where a and b differ, or -1.
func firstDiff(a, b []string) int {
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			return i
		}
	}
	return -1
}

// bodiesOf maps message ids to the bodies the load sent.
func bodiesOf(res stack.LoadResult, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = res.Texts[id]
	}
	return out
}

// kill is what killBusiest did.
type kill struct {
	victim        *stack.Core
	slot          uint32
	phones        []*stack.Phone // the phones on the slot
	before, after slotLease
	at            time.Time
	took          time.Duration // from the kill to chatd's login of the slot from another node
}

// killBusiest kills -9 the owner of the busiest slot and waits until
// another node owns it, connected.
func (h *haEnv) killBusiest() kill {
	h.t.Helper()
	busiest, phones := h.busiestSlot()
	before := h.waitSlots(30 * time.Second)[busiest]
	victim := h.core(before.Owner)
	at := time.Now()
	h.s.KillCore(victim.Index)
	after := h.waitSlotsOff(victim.NodeID, 60*time.Second)[busiest]
	return kill{victim: victim, slot: busiest, phones: phones, before: before, after: after, at: at,
		took: h.loginAt(busiest, after.Epoch).Sub(at)}
}

// deliveryGap is the longest time after since in which none of the phones
// received a message of the load (prefix), up to the last one they
// received.
func deliveryGap(phones []*stack.Phone, prefix string, since time.Time) time.Duration {
	times := []time.Time{since}
	for _, p := range phones {
		for _, a := range p.Arrivals() {
			if a.Event.Event == "message" && strings.HasPrefix(a.Text, prefix+" ") && a.At.After(since) {
				times = append(times, a.At)
			}
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	for i := 1; i < len(times); i++ {
		gap = max(gap, times[i].Sub(times[i-1]))
	}
	return gap
}

// loginAt returns when chatd logged the login of the business's slot with
// epoch (zero if it did not).
func (h *haEnv) loginAt(sh uint32, epoch int64) time.Time {
	for _, e := range h.s.ChatdSessionsOf(bizWaID) {
		if e.Event == "login" && e.Shard == sh && e.Epoch == uint64(epoch) {
			return e.Time
		}
	}
	return time.Time{}
}

// assertSessionsDisjoint checks chatd's own log: for every slot of the
// business, a login never came while another session of the slot was
// live, and epochs never went down.
func (h *haEnv) assertSessionsDisjoint() []stack.ChatdSession {
	h.t.Helper()
	sessions := h.s.ChatdSessionsOf(bizWaID)
	live := map[uint32]uint64{} // shard → epoch of its live session
	last := map[uint32]uint64{}
	logins := 0
	for _, e := range sessions {
		switch e.Event {
		case "login":
			logins++
			if ep, ok := live[e.Shard]; ok {
				h.t.Errorf("slot %d: epoch %d logged in at %s while epoch %d was live", e.Shard, e.Epoch, e.Time.Format(time.StampMilli), ep)
			}
			if e.Epoch < last[e.Shard] {
				h.t.Errorf("slot %d: epoch went down from %d to %d", e.Shard, last[e.Shard], e.Epoch)
			}
			live[e.Shard], last[e.Shard] = e.Epoch, e.Epoch
		case "session ended":
			if ep, ok := live[e.Shard]; ok && ep == e.Epoch {
				delete(live, e.Shard)
			}
		}
	}
	if logins < 2 {
		h.t.Errorf("chatd logged %d logins of %s, want several: %+v", logins, bizWaID, sessions)
	}
	return sessions
}

// TestFailoverKill: under a steady load, kill -9 the node that owns the
// busiest slot. A live node takes the slot over; every accepted message
// reaches its phone exactly once and in order, and the gap in deliveries
// on that slot stays within the failover target (with slack).
func TestFailoverKill(t *testing.T) {
	h := newHA(t, stack.Options{}, 4, 8)
	h.assertHealth(3)
	load := h.startLoad("kill", 60)
	load.WaitAccepted(100, 30*time.Second)

	k := h.killBusiest()
	busiest, phones, before, after, victim, killed, took := k.slot, k.phones, k.before, k.after, k.victim, k.at, k.took
	if after.Owner == before.Owner || after.Epoch <= before.Epoch {
		t.Errorf("slot %d: owner %s epoch %d after the kill, want another node with a higher epoch than %s's %d",
			busiest, after.Owner, after.Epoch, before.Owner, before.Epoch)
	}
	accepted := load.Accepted()
	load.WaitAccepted(accepted+100, 30*time.Second)
	res := load.Stop()
	h.assertDelivered(res, 60*time.Second)

	h.assertHealth(2)
	// The new owner counted the failover.
	if c := h.core(after.Owner); getMetrics(t, h.s.Client, fmt.Sprintf("http://127.0.0.1:%d/metrics", c.MetricsPort), nil).sum("openwaba_slot_takeovers_total") < 1 {
		t.Errorf("%s took slot %d over but counts no takeover", after.Owner, busiest)
	}
	gap := deliveryGap(phones, "kill", killed)
	t.Logf("killed %s (slot %d, %d phones): slot logged in from %s after %s; longest delivery gap %s",
		victim.NodeID, busiest, len(phones), after.Owner, took.Round(time.Millisecond), gap.Round(time.Millisecond))
	if gap > haFailoverLimit {
		t.Errorf("deliveries on slot %d stopped for %s after the kill, want under %s", busiest, gap, haFailoverLimit)
	}
	h.assertSessionsDisjoint()
}

// TestPartitionFromDB: the owner of the busiest slot is cut from MySQL (its
// connections stall). It must stop using its slots by itself before its
// leases can expire (chatd's log shows its sessions ended by the node, not
// replaced by the next owner), another node takes over, and nothing is lost
// or duplicated.
func TestPartitionFromDB(t *testing.T) {
	h := newHA(t, stack.Options{ProxyDB: true}, 4, 6)
	load := h.startLoad("dbcut", 40)
	load.WaitAccepted(60, 30*time.Second)

	busiest, _ := h.busiestSlot()
	before := h.waitSlots(10 * time.Second)
	victim := h.core(before[busiest].Owner)
	var mine []uint32
	for sh, l := range before {
		if l.Owner == victim.NodeID {
			mine = append(mine, sh)
		}
	}
	cut := time.Now()
	victim.DBProxy.Hold(true, true)
	after := h.waitSlotsOff(victim.NodeID, 30*time.Second)
	for _, sh := range mine {
		if after[sh].Owner == victim.NodeID {
			t.Errorf("slot %d still owned by %s, which is cut from the database", sh, victim.NodeID)
		}
	}
	t.Logf("cut %s from MySQL: its slots %v moved within %s", victim.NodeID, mine, time.Since(cut).Round(time.Millisecond))
	accepted := load.Accepted()
	load.WaitAccepted(accepted+60, 60*time.Second)
	victim.DBProxy.Release()
	res := load.Stop()
	h.assertDelivered(res, 60*time.Second)

	sessions := h.assertSessionsDisjoint()
	for _, sh := range mine {
		ep := uint64(before[sh].Epoch)
		for _, e := range sessions {
			if e.Event == "session ended" && e.Shard == sh && e.Epoch == ep && e.Reason == "replaced" {
				t.Errorf("slot %d: %s's session (epoch %d) was still live when the next owner logged in; it should have fenced itself", sh, victim.NodeID, ep)
			}
		}
	}
}

// TestPartitionFromChat: the owner of the busiest slot is cut from chatd
// (both directions stall). Another node takes its slots over, chatd never
// has two live sessions for one slot, and nothing is lost or duplicated.
func TestPartitionFromChat(t *testing.T) {
	h := newHA(t, stack.Options{ProxyChat: true}, 4, 6)
	load := h.startLoad("chatcut", 40)
	load.WaitAccepted(60, 30*time.Second)

	busiest, phones := h.busiestSlot()
	before := h.waitSlots(10 * time.Second)
	victim := h.core(before[busiest].Owner)
	cut := time.Now()
	victim.ChatProxy.Hold(true, true)
	after := h.waitSlotsOff(victim.NodeID, 30*time.Second)
	moved := h.loginAt(busiest, after[busiest].Epoch).Sub(cut)
	if after[busiest].Owner == victim.NodeID {
		t.Errorf("slot %d still owned by %s, which is cut from chatd", busiest, victim.NodeID)
	}
	accepted := load.Accepted()
	load.WaitAccepted(accepted+60, 60*time.Second)
	victim.ChatProxy.DropAll()
	victim.ChatProxy.Release()
	res := load.Stop()
	h.assertDelivered(res, 60*time.Second)
	gap := deliveryGap(phones, "chatcut", cut)
	t.Logf("cut %s from chatd: slot %d logged in from %s after %s; longest delivery gap %s", victim.NodeID, busiest,
		after[busiest].Owner, moved.Round(time.Millisecond), gap.Round(time.Millisecond))
	if gap > haFailoverLimit {
		t.Errorf("deliveries on slot %d stopped for %s after the cut, want under %s", busiest, gap, haFailoverLimit)
	}
	h.assertSessionsDisjoint()
}

// TestRollingRestart restarts every coreapp (SIGTERM: clean handover) and
// then every webapp, one by one, under load: nothing is lost, duplicated or
// reordered.
func TestRollingRestart(t *testing.T) {
	h := newHA(t, stack.Options{}, 4, 6)
	load := h.startLoad("rolling", 40)
	load.WaitAccepted(40, 30*time.Second)
	for i, c := range h.s.Cores {
		h.s.StopCore(i)
		h.waitSlots(30 * time.Second)
		h.s.StartCore(i)
		load.WaitAccepted(load.Accepted()+30, 30*time.Second)
		t.Logf("restarted %s", c.NodeID)
	}
	// The restarted nodes take their share back.
	deadline := time.Now().Add(30 * time.Second)
	for {
		owners := map[string]bool{}
		for _, l := range h.waitSlots(30 * time.Second) {
			owners[l.Owner] = true
		}
		if len(owners) == len(h.s.Cores) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after the rolling restart the slots sit on %d nodes, want %d", len(owners), len(h.s.Cores))
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i := range h.s.Webs {
		h.s.StopWeb(i)
		load.WaitAccepted(load.Accepted()+20, 30*time.Second)
		h.s.StartWeb(i)
	}
	load.WaitAccepted(load.Accepted()+30, 30*time.Second)
	res := load.Stop()
	h.assertDelivered(res, 60*time.Second)
	h.assertSessionsDisjoint()
}

// TestInboundFailover: phones keep writing to the business while the owner
// of the busiest slot is killed. Every message reaches the webhook at least
// once, under the id the phone gave it.
func TestInboundFailover(t *testing.T) {
	h := newHA(t, stack.Options{}, 4, 6)
	busiest, _ := h.busiestSlot()
	victim := h.core(h.waitSlots(10 * time.Second)[busiest].Owner)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var sent []string
	for round := range 30 {
		if round == 10 {
			h.s.KillCore(victim.Index)
		}
		for _, p := range h.phones {
			id, err := p.SendText(ctx, bizWaID, fmt.Sprintf("inbound %s #%d", p.Number(), round), "", "")
			if err != nil {
				t.Fatalf("%s: send #%d: %v", p, round, err)
			}
			sent = append(sent, id)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ps := h.hook.Wait(60*time.Second, "every inbound message", func(ps []stack.Payload) bool {
		got := stack.InboundIDs(ps)
		for _, id := range sent {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	dups := 0
	for _, n := range stack.InboundIDs(ps) {
		if n > 1 {
			dups++
		}
	}
	t.Logf("%d inbound messages reached the webhook across the kill of %s (%d delivered more than once)", len(sent), victim.NodeID, dups)
}

// TestReshardUnderLoad changes the shard count 1 → 4 → 2 while messages
// flow: nothing is lost, duplicated or reordered, and the slots follow.
func TestReshardUnderLoad(t *testing.T) {
	h := newHA(t, stack.Options{}, 1, 6)
	load := h.startLoad("reshard", 40)
	load.WaitAccepted(40, 30*time.Second)
	for _, n := range []int{4, 2} {
		h.setShards(n)
		load.WaitAccepted(load.Accepted()+40, 30*time.Second)
		if got := len(h.slots()); got != n {
			t.Errorf("%d live slots after changing to %d shards", got, n)
		}
	}
	res := load.Stop()
	h.assertDelivered(res, 60*time.Second)
	h.assertSessionsDisjoint()
}
