// Package slot owns the connection slots of the accounts this node serves.
// A slot (account, shard) is held through a lease row in slot_leases with an
// epoch that rises on every change of owner; the owner logs in to chatd with
// that epoch, so chatd refuses an older owner and drops it when a newer one
// logs in: two nodes never speak for one slot at once.
//
// Every heartbeat (cluster.Timings) the Manager renews its leases (for
// unhealthy_interval, in the database's clock), stops a slot before its
// lease could expire when it cannot renew (self-fencing), hands over the
// slots the primary master moved to another live node, gives up slots it
// cannot connect while another node can, and takes the slots assigned to
// it, or left without a live owner, up to its fair share. The primary
// master balances: it assigns every slot to a live node, keeping current
// owners while the shares stay within one of each other.
//
// The Manager is safe for concurrent use; Run owns every runner and returns
// only after all have stopped.
package slot

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/coreapp/account"
	"github.com/openwaba/openwaba/coreapp/cluster"
	"github.com/openwaba/openwaba/coreapp/e2e"
	"github.com/openwaba/openwaba/coreapp/medialib"
	"github.com/openwaba/openwaba/coreapp/metrics"
	"github.com/openwaba/openwaba/coreapp/receive"
	"github.com/openwaba/openwaba/coreapp/send"
	"github.com/openwaba/openwaba/coreapp/templates"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// Key names a slot.
type Key struct {
	AccountID int64
	Shard     uint32
}

// Config wires a Manager.
type Config struct {
	DB        *sql.DB
	Log       *slog.Logger
	Node      string // this node's id (WA_NODE_ID); unique per running process
	Cluster   *cluster.Cluster
	Accounts  *account.Store
	Send      *send.Store
	Receive   *receive.Store
	Committer *db.Committer
	Sealer    e2e.Sealer
	Media     *medialib.Store
	Templates *templates.Cache
	// Profiles is what the numbers publish (nil: nothing).
	Profiles Profiles
	// WebhookWake is called after a commit that enqueued webhooks.
	WebhookWake func()
	ChatAddrs   []string
	// Session tunes the chatd sessions (timeouts, backoff); tests shorten it.
	Session session.Config
}

// Manager runs this node's slots.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}
	// runCtx is Run's context, which the runners and resumed shard changes
	// live in (a reconcile's own context is bounded in time).
	runCtx context.Context

	wg sync.WaitGroup // runners and resumed shard changes

	mu         sync.Mutex // guards the fields below
	runners    map[Key]*runner
	owners     map[Key]string // live owner of every slot, as of the last reconcile
	resharding map[int64]bool // shard changes being resumed here
}

// New returns a Manager; Run starts it.
func New(cfg Config) *Manager {
	return &Manager{cfg: cfg, log: cfg.Log, kick: make(chan struct{}, 1), runners: map[Key]*runner{}, owners: map[Key]string{},
		resharding: map[int64]bool{}}
}

// Reconcile makes the manager look at the accounts now (after a
// registration).
func (m *Manager) Reconcile() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run manages slots until ctx ends, then stops every runner and releases
// their leases, so other nodes take them at once.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	m.runCtx = ctx
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		for _, r := range m.runners {
			r.cancel()
		}
		m.mu.Unlock()
		m.wg.Wait()
		m.releaseAll()
	}()
	// Fencing needs no database: it runs on its own clock, so that a
	// reconcile stuck on a database that stopped answering cannot delay it.
	m.wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.fence()
			}
		}
	})
	for {
		rctx, cancel := context.WithTimeout(ctx, m.cfg.Cluster.Timings().Unhealthy)
		err := m.reconcile(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			m.log.Error("slot reconcile failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.cfg.Cluster.Ticks():
		case <-m.kick:
		case <-time.After(m.cfg.Cluster.Timings().Heartbeat):
		}
	}
}

// lease is a slot_leases row.
type lease struct {
	owner      string
	epoch      uint64
	expires    int64
	assignedTo string
}

// readLeases returns every lease row and the database clock.
func (m *Manager) readLeases(ctx context.Context) (map[Key]lease, int64, error) {
	rows, err := m.cfg.DB.QueryContext(ctx, "SELECT account_id, shard, owner, epoch, expires_at, assigned_to, "+db.NowSQL+" FROM slot_leases")
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := map[Key]lease{}
	var now int64
	for rows.Next() {
		var k Key
		var l lease
		if err := rows.Scan(&k.AccountID, &k.Shard, &l.owner, &l.epoch, &l.expires, &l.assignedTo, &now); err != nil {
			return nil, 0, err
		}
		out[k] = l
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if now == 0 {
		if err := m.cfg.DB.QueryRowContext(ctx, "SELECT "+db.NowSQL).Scan(&now); err != nil {
			return nil, 0, err
		}
	}
	return out, now, nil
}

func (m *Manager) reconcile(ctx context.Context) error {
	t := m.cfg.Cluster.Timings()
	m.fence()
	accts, err := m.cfg.Accounts.Verified(ctx)
	if err != nil {
		return err
	}
	want := map[Key]account.Account{}
	for _, a := range accts {
		if a.ReshardingTo != 0 {
			continue // every slot of the account stays stopped during a shard change
		}
		for sh := 0; sh < max(a.Shards, 1); sh++ {
			want[Key{a.ID, uint32(sh)}] = a
		}
	}
	leases, now, err := m.readLeases(ctx)
	if err != nil {
		return err
	}
	view := m.cfg.Cluster.View()
	if m.cfg.Cluster.IsMaster() {
		if err := m.balance(ctx, want, leases, view, now); err != nil {
			m.log.Warn("slot balancing failed", "err", err)
		}
		m.resumeReshards(ctx, accts)
	}
	eligible := view.Eligible()
	isEligible := func(n string) bool { return slices.Contains(eligible, n) }
	live := func(l lease) bool { return l.owner != "" && l.expires > now }

	owners := map[Key]string{}
	for k, l := range leases {
		if live(l) {
			owners[k] = l.owner
		}
	}
	m.mu.Lock()
	m.owners = owners
	m.mu.Unlock()

	// Stop what this node must not run any more.
	otherCanChat := false
	for _, n := range eligible {
		otherCanChat = otherCanChat || n != m.cfg.Node
	}
	m.mu.Lock()
	var stop []*runner
	for k, r := range m.runners {
		l := leases[k]
		reason := ""
		switch {
		case r.stopped():
			reason = "stopped"
		case want[k].ID == 0:
			reason = "the account's slots changed"
		case l.assignedTo != "" && l.assignedTo != m.cfg.Node && view.Alive(l.assignedTo) && isEligible(l.assignedTo):
			reason = "handed over to " + l.assignedTo
		case otherCanChat && r.disconnectedFor() > t.Unhealthy/2:
			// Its session noticed the loss within ⅔ unhealthy_interval
			// (keepalive); half of it more without a reconnection means
			// the path is down, and another node can chat.
			reason = "cannot reach the chat network"
			m.cfg.Cluster.SetChatOK(false)
		}
		if reason != "" {
			if reason != "stopped" {
				m.log.Info("giving up slot", "wa_id", r.acct.WaID, "shard", k.Shard, "reason", reason)
			}
			r.release.Store(true)
			stop = append(stop, r)
			delete(m.runners, k)
		}
	}
	held := len(m.runners)
	m.mu.Unlock()
	for _, r := range stop {
		r.cancel()
	}

	// Renew what runs.
	m.mu.Lock()
	running := make([]*runner, 0, len(m.runners))
	for _, r := range m.runners {
		running = append(running, r)
	}
	m.mu.Unlock()
	for _, r := range running {
		if err := m.renew(ctx, r, t); err != nil {
			m.log.Warn("lease renewal failed", "wa_id", r.acct.WaID, "shard", r.key.Shard, "err", err)
		}
	}

	// Take what is assigned here, or has no live owner and no live
	// assignee, up to a fair share.
	if !m.cfg.Cluster.ChatOK() || !isEligible(m.cfg.Node) {
		return nil
	}
	fair := (len(want) + len(eligible) - 1) / max(len(eligible), 1)
	keys := make([]Key, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b Key) int {
		if a.AccountID != b.AccountID {
			return int(a.AccountID - b.AccountID)
		}
		return int(a.Shard) - int(b.Shard)
	})
	for _, k := range keys {
		if m.runner(k) != nil {
			continue
		}
		l := leases[k]
		if live(l) && l.owner != m.cfg.Node {
			continue
		}
		mine := l.assignedTo == m.cfg.Node
		orphan := l.assignedTo == "" || !view.Alive(l.assignedTo) || !isEligible(l.assignedTo)
		if !mine && !(orphan && held < fair) {
			continue
		}
		epoch, ok, err := m.acquire(ctx, k, t)
		if err != nil {
			m.log.Warn("lease acquisition failed", "wa_id", want[k].WaID, "shard", k.Shard, "err", err)
			continue
		}
		if !ok {
			continue
		}
		if err := m.start(ctx, want[k], k, epoch, t); err != nil {
			m.log.Error("starting slot failed", "wa_id", want[k].WaID, "shard", k.Shard, "err", err)
			continue
		}
		held++
	}
	return nil
}

// balance (primary master) records the assignment of every wanted slot
// (assignSlots) in slot_leases.assigned_to.
func (m *Manager) balance(ctx context.Context, want map[Key]account.Account, leases map[Key]lease, view cluster.View, now int64) error {
	keys := make([]Key, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	assign := assignSlots(keys, leases, view.Eligible(), now)
	for _, k := range keys {
		if assign[k] == "" {
			continue
		}
		if l, ok := leases[k]; ok && l.assignedTo == assign[k] {
			continue
		}
		if _, err := m.cfg.DB.ExecContext(ctx, `INSERT INTO slot_leases (account_id, shard, owner, epoch, expires_at, assigned_to) VALUES (?, ?, '', 0, 0, ?)
			ON DUPLICATE KEY UPDATE assigned_to = VALUES(assigned_to)`, k.AccountID, k.Shard, assign[k]); err != nil {
			return err
		}
		l := leases[k]
		l.assignedTo = assign[k]
		leases[k] = l
		m.log.Debug("slot assigned", "account", k.AccountID, "shard", k.Shard, "node", assign[k])
		if l.owner == "" || l.expires <= now {
			// A free slot: wake the assignee now rather than at its next
			// heartbeat (failover time).
			m.cfg.Cluster.Wake(assign[k], k.AccountID, k.Shard, false, false)
		}
	}
	return nil
}

// assignSlots assigns every slot to one of nodes so that the counts differ
// by at most one, moving as few slots as it can: a slot keeps its assignee,
// else its live owner, while that node is under the fair share; nodes above
// the lower share give slots to nodes below it; the rest go to the least
// loaded nodes.
func assignSlots(keys []Key, leases map[Key]lease, nodes []string, now int64) map[Key]string {
	assign := map[Key]string{}
	if len(nodes) == 0 {
		return assign
	}
	nodes = slices.Sorted(slices.Values(nodes))
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b Key) int {
		if a.AccountID != b.AccountID {
			return int(a.AccountID - b.AccountID)
		}
		return int(a.Shard) - int(b.Shard)
	})
	ceil := (len(keys) + len(nodes) - 1) / len(nodes)
	floor := len(keys) / len(nodes)
	count := map[string]int{}
	keep := func(k Key, n string) bool {
		if n == "" || !slices.Contains(nodes, n) || count[n] >= ceil {
			return false
		}
		assign[k] = n
		count[n]++
		return true
	}
	for _, k := range keys {
		l := leases[k]
		if !keep(k, l.assignedTo) && l.owner != "" && l.expires > now {
			keep(k, l.owner)
		}
	}
	// Nodes above the floor give slots to nodes below it.
	for {
		lo, hi := "", ""
		for _, n := range nodes {
			if count[n] < floor && (lo == "" || count[n] < count[lo]) {
				lo = n
			}
			if count[n] > floor && (hi == "" || count[n] > count[hi]) {
				hi = n
			}
		}
		if lo == "" || hi == "" {
			break
		}
		for i := len(keys) - 1; i >= 0; i-- {
			if assign[keys[i]] == hi {
				assign[keys[i]] = lo
				count[hi]--
				count[lo]++
				break
			}
		}
	}
	for _, k := range keys {
		if assign[k] != "" {
			continue
		}
		best := ""
		for _, n := range nodes {
			if best == "" || count[n] < count[best] {
				best = n
			}
		}
		assign[k] = best
		count[best]++
	}
	return assign
}

// acquire takes the lease of k when it is free, expired, or held by this
// node id (a restart of this node), raising the epoch.
func (m *Manager) acquire(ctx context.Context, k Key, t cluster.Timings) (uint64, bool, error) {
	var epoch uint64
	var ok, takeover bool
	start := time.Now()
	err := db.Tx(ctx, m.cfg.DB, func(tx *sql.Tx) error {
		ok, takeover = false, false
		var owner string
		var cur uint64
		var expires, now int64
		err := tx.QueryRowContext(ctx, "SELECT owner, epoch, expires_at, "+db.NowSQL+" FROM slot_leases WHERE account_id = ? AND shard = ? FOR UPDATE", k.AccountID, k.Shard).
			Scan(&owner, &cur, &expires, &now)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			epoch = 1
			_, err = tx.ExecContext(ctx, "INSERT INTO slot_leases (account_id, shard, owner, epoch, expires_at) VALUES (?, ?, ?, 1, "+db.NowSQL+" + ?)",
				k.AccountID, k.Shard, m.cfg.Node, t.Unhealthy.Milliseconds())
			ok = err == nil
			return err
		case err != nil:
			return err
		case owner != "" && owner != m.cfg.Node && expires > now:
			return nil // held by a live node
		}
		epoch = cur + 1
		// An expired lease of another node: a failover.
		takeover = owner != "" && owner != m.cfg.Node
		_, err = tx.ExecContext(ctx, "UPDATE slot_leases SET owner = ?, epoch = ?, expires_at = "+db.NowSQL+" + ?, connected = 0 WHERE account_id = ? AND shard = ?",
			m.cfg.Node, epoch, t.Unhealthy.Milliseconds(), k.AccountID, k.Shard)
		ok = err == nil
		return err
	})
	if ok {
		m.log.Debug("lease acquired", "account", k.AccountID, "shard", k.Shard, "epoch", epoch, "took", time.Since(start))
		if takeover {
			metrics.SlotTakeovers.Inc()
		}
	}
	return epoch, ok, err
}

// renew extends r's lease by unhealthy_interval from the database's now.
// The runner may act on it until its local clock passes the time the
// renewal started plus two thirds of that (self-fencing margin).
func (m *Manager) renew(ctx context.Context, r *runner, t cluster.Timings) error {
	start := time.Now()
	res, err := m.cfg.DB.ExecContext(ctx, "UPDATE slot_leases SET expires_at = "+db.NowSQL+" + ?, connected = ? WHERE account_id = ? AND shard = ? AND owner = ? AND epoch = ?",
		t.Unhealthy.Milliseconds(), r.sess.State() == session.Connected, r.key.AccountID, r.key.Shard, m.cfg.Node, r.epoch)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// Rows affected is 0 both when the lease was lost and when nothing
		// changed (same millisecond, same state); check which.
		var owner string
		var epoch uint64
		if err := m.cfg.DB.QueryRowContext(ctx, "SELECT owner, epoch FROM slot_leases WHERE account_id = ? AND shard = ?", r.key.AccountID, r.key.Shard).Scan(&owner, &epoch); err != nil {
			return err
		}
		if owner != m.cfg.Node || epoch != r.epoch {
			m.log.Warn("lease lost to another node; stopping the slot", "wa_id", r.acct.WaID, "shard", r.key.Shard, "owner", owner, "epoch", epoch)
			r.cancel()
			return nil
		}
	}
	r.renewed(start.Add(t.Unhealthy - fenceMargin(t)))
	return nil
}

// fenceMargin is how long before its lease could expire a runner stops
// when it cannot renew: a third of unhealthy_interval.
func fenceMargin(t cluster.Timings) time.Duration { return t.Unhealthy / 3 }

// fence stops runners whose lease may expire before a renewal succeeds.
func (m *Manager) fence() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.runners {
		if time.Now().After(r.leaseUntil()) && !r.stopped() {
			m.log.Warn("cannot renew the lease in time; stopping the slot (self-fencing)", "wa_id", r.acct.WaID, "shard", r.key.Shard)
			r.cancel()
		}
	}
}

// releaseAll gives up this node's leases at a clean shutdown so another node
// can take them at once.
func (m *Manager) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := m.cfg.DB.ExecContext(ctx, "UPDATE slot_leases SET expires_at = 0, connected = 0 WHERE owner = ?", m.cfg.Node); err != nil {
		m.log.Warn("releasing leases failed; they expire on their own", "err", err)
	}
}

func (m *Manager) start(ctx context.Context, a account.Account, k Key, epoch uint64, t cluster.Timings) error {
	key, err := m.cfg.Accounts.ChatKey(ctx, a.ID)
	if err != nil {
		return err
	}
	r := newRunner(m, a, k, epoch, key, time.Now().Add(t.Unhealthy-fenceMargin(t)))
	m.mu.Lock()
	m.runners[k] = r
	m.mu.Unlock()
	m.log.Info("slot acquired", "wa_id", a.WaID, "shard", k.Shard, "epoch", epoch)
	m.mu.Lock()
	runCtx := m.runCtx
	m.mu.Unlock()
	m.wg.Go(func() {
		err := r.run(runCtx)
		if err != nil && runCtx.Err() == nil && !errors.Is(err, context.Canceled) {
			m.log.Warn("slot stopped", "wa_id", a.WaID, "shard", k.Shard, "err", err)
		}
		if r.release.Load() {
			// Handed over: the session is closed; free the lease now
			// instead of letting it expire.
			rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			if _, err := m.cfg.DB.ExecContext(rctx, "UPDATE slot_leases SET expires_at = 0, connected = 0 WHERE account_id = ? AND shard = ? AND owner = ? AND epoch = ?",
				k.AccountID, k.Shard, m.cfg.Node, epoch); err != nil {
				m.log.Warn("releasing a lease failed; it expires on its own", "err", err)
			}
			cancel()
		}
		m.Reconcile()
	})
	return nil
}

func (m *Manager) runner(k Key) *runner {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runners[k]
}

// owner returns the live owner of k as of the last reconcile.
func (m *Manager) owner(k Key) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.owners[k]
}

// Enqueue hands a message committed on this node to its slot's sender when
// this node runs the slot, and otherwise wakes the node that does (which
// also finds it on its next scan).
func (m *Manager) Enqueue(accountID int64, msg send.Message) {
	k := Key{accountID, msg.Shard}
	if r := m.runner(k); r != nil {
		r.sender.Enqueue(msg)
		return
	}
	m.cfg.Cluster.Wake(m.owner(k), accountID, msg.Shard, true, false)
}

// ReceiptsPending tells the slot's sender that receipts were queued.
func (m *Manager) ReceiptsPending(accountID int64, shard uint32) {
	k := Key{accountID, shard}
	if r := m.runner(k); r != nil {
		r.sender.ReceiptsPending()
		return
	}
	m.cfg.Cluster.Wake(m.owner(k), accountID, shard, false, true)
}

// Woken handles wakes from other nodes (cluster.Config.OnWake).
func (m *Manager) Woken(slots []*corev1.WakeSlot) {
	for _, w := range slots {
		r := m.runner(Key{w.AccountId, w.Shard})
		if r == nil {
			// Not run here: the master may just have assigned it to us.
			m.Reconcile()
			continue
		}
		if w.Messages {
			r.sender.Rescan()
		}
		if w.Receipts {
			r.sender.ReceiptsPending()
		}
	}
}

// ErrNotConnected is returned when no live session can serve a request.
var ErrNotConnected = errors.New("the account is not connected to the chat network")

// CheckContacts asks the network which numbers are registered.
func (m *Manager) CheckContacts(ctx context.Context, accountID int64, numbers []string) (map[string]bool, error) {
	r := m.connectedRunner(accountID)
	if r == nil {
		return nil, ErrNotConnected
	}
	res, err := r.sess.IQ(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_ContactCheck{ContactCheck: &chatdv1.ContactCheck{Numbers: numbers}}})
	if err != nil {
		if errors.Is(err, session.ErrNotConnected) {
			return nil, ErrNotConnected
		}
		return nil, fmt.Errorf("contact check: %w", err)
	}
	out := map[string]bool{}
	for _, c := range res.GetContactCheckResult().GetContacts() {
		out[c.Number] = c.Registered
	}
	return out, nil
}

// connectedRunner returns a connected slot of the account on this node
// (the lowest shard), or nil.
func (m *Manager) connectedRunner(accountID int64) *runner {
	m.mu.Lock()
	defer m.mu.Unlock()
	var best *runner
	for k, r := range m.runners {
		if k.AccountID != accountID || r.stopped() || r.sess.State() != session.Connected {
			continue
		}
		if best == nil || k.Shard < best.key.Shard {
			best = r
		}
	}
	return best
}

// MediaNet returns access to the media server for an account through one
// of its connected slots on this node (medialib.Store.NetFor).
func (m *Manager) MediaNet(ctx context.Context, accountID int64) (medialib.Net, error) {
	r := m.connectedRunner(accountID)
	if r == nil {
		return nil, ErrNotConnected
	}
	return r.media, nil
}

// TemplateIQ returns a way to send template requests to chatd over one of
// the account's connected slots on this node, and the node's template
// packs.
func (m *Manager) TemplateIQ(accountID int64) (templates.IQ, *templates.Cache, error) {
	r := m.connectedRunner(accountID)
	if r == nil || m.cfg.Templates == nil {
		return nil, nil, ErrNotConnected
	}
	return r.sess.IQ, m.cfg.Templates, nil
}

// ConnectedAccounts returns the accounts with a connected slot on this node.
func (m *Manager) ConnectedAccounts() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[int64]bool{}
	var out []int64
	for k, r := range m.runners {
		if !seen[k.AccountID] && !r.stopped() && r.sess.State() == session.Connected {
			seen[k.AccountID] = true
			out = append(out, k.AccountID)
		}
	}
	return out
}

// Counts returns how many slots this node runs and how many of them are
// connected to the chat network (metrics).
func (m *Manager) Counts() (owned, connected int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.runners {
		if r.stopped() {
			continue
		}
		owned++
		if r.sess.State() == session.Connected {
			connected++
		}
	}
	return owned, connected
}
