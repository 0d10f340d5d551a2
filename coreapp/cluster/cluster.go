// Package cluster is what coreapp nodes know of each other through the
// shared database: every node registers itself in `nodes` and heartbeats
// every heartbeat_interval (in the database's clock); a node whose heartbeat
// is older than unhealthy_interval, or that stopped cleanly, is dead. One
// node holds the `master` lease in `cluster_leases` (the primary master: it
// balances slots, and runs the calls that must run once, such as shard
// changes and media garbage collection). A node also tells the owner of a
// slot, over gRPC (Wake), that work for that slot was committed elsewhere.
//
// A node whose heartbeat has not reached the database for two thirds of
// unhealthy_interval counts itself cut off (DBContext is canceled): the API
// refuses calls on it with Unavailable, so the webapps retry them on another
// node instead of waiting for a database that does not answer.
//
// A Cluster is safe for concurrent use; Run owns its goroutines.
package cluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/db"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// Roles of a node (GET /v1/health).
const (
	RolePrimary   = "primary_master"
	RoleSecondary = "secondary_master"
	RoleCoreapp   = "coreapp"
)

// Config wires a Cluster.
type Config struct {
	DB       *sql.DB
	Log      *slog.Logger
	Settings *settings.Store
	// Node is this node's id (WA_NODE_ID), Hostname its host name, and
	// Advertise the gRPC address other nodes reach it on.
	Node, Hostname, Advertise string
	// Dial returns a client of another node's gRPC server.
	Dial func(addr string) (corev1.CoreClient, func() error, error)
	// OnWake is called for the slots other nodes wake on this one.
	OnWake func(slots []*corev1.WakeSlot)
}

// Timings are the cluster's timing settings: heartbeat_interval and
// unhealthy_interval of /v1/settings/application (of the deployment's
// default account). Heartbeat is at most half of Unhealthy, so a lease
// renewed every heartbeat survives one lost renewal.
type Timings struct {
	Heartbeat, Unhealthy time.Duration
}

// Node is a coreapp node as seen through the database.
type Node struct {
	ID, Hostname, Addr string
	StartedAt          int64
	ChatOK             bool
	Alive              bool
}

// Key is the node's name in GET /v1/health: "<hostname>:<node id>".
func (n Node) Key() string { return n.Hostname + ":" + n.ID }

// View is the latest picture of the cluster.
type View struct {
	Self   string
	Master string // the node holding the master lease ("" when none)
	Nodes  []Node // every node, alive first, by start time
	Now    int64  // the database clock when the view was taken (ms)
}

// Alive reports whether node is alive.
func (v View) Alive(node string) bool {
	for _, n := range v.Nodes {
		if n.ID == node {
			return n.Alive
		}
	}
	return false
}

// Eligible returns the nodes that may own slots: alive and able to reach
// the chat network (all alive nodes when none can).
func (v View) Eligible() []string {
	var ok, alive []string
	for _, n := range v.Nodes {
		if !n.Alive {
			continue
		}
		alive = append(alive, n.ID)
		if n.ChatOK {
			ok = append(ok, n.ID)
		}
	}
	if len(ok) == 0 {
		return alive
	}
	return ok
}

// Role is a node's role.
func (v View) Role(node string) string {
	if node == v.Master {
		return RolePrimary
	}
	for _, n := range v.Nodes { // alive first, oldest first
		if n.Alive && n.ID != v.Master {
			if n.ID == node {
				return RoleSecondary
			}
			break
		}
	}
	return RoleCoreapp
}

// Cluster is this node's membership.
type Cluster struct {
	cfg     Config
	log     *slog.Logger
	started int64

	mu          sync.Mutex // guards the fields below
	view        View
	timings     Timings
	master      bool
	masterUntil time.Time // local clock: act as master until then
	chatOK      bool
	chatBadTill time.Time
	wakes       map[string]map[[2]int64]*corev1.WakeSlot // node → slot → flags
	peers       map[string]*peer
	signal      chan struct{}
	tick        chan struct{}
	// dbOK is when the last successful heartbeat started; dbCtx is canceled
	// while the node counts itself cut from the database.
	dbOK     time.Time
	dbCtx    context.Context
	dbCancel context.CancelFunc
}

type peer struct {
	addr   string
	client corev1.CoreClient
	close  func() error
}

// New returns a Cluster; Run starts it.
func New(cfg Config) *Cluster {
	c := &Cluster{cfg: cfg, log: cfg.Log, chatOK: true, timings: Timings{Heartbeat: time.Second, Unhealthy: 3 * time.Second},
		view: View{Self: cfg.Node}, wakes: map[string]map[[2]int64]*corev1.WakeSlot{}, peers: map[string]*peer{},
		signal: make(chan struct{}, 1), tick: make(chan struct{}, 1), dbOK: time.Now()}
	c.dbCtx, c.dbCancel = context.WithCancel(context.Background())
	return c
}

// DBContext returns a context that is canceled when this node counts itself
// cut from the database (already canceled while it does).
func (c *Cluster) DBContext() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dbCtx
}

// beatOK records a heartbeat that started at start and reached the
// database.
func (c *Cluster) beatOK(start time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dbOK = start
	if c.dbCtx.Err() != nil {
		c.dbCtx, c.dbCancel = context.WithCancel(context.Background())
		c.log.Info("this node reaches the database again; it serves API calls")
	}
}

// watchDB cancels DBContext once no heartbeat got through for two thirds
// of unhealthy_interval (when the slots fence themselves too).
func (c *Cluster) watchDB(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		if c.dbCtx.Err() == nil && time.Since(c.dbOK) > c.timings.Unhealthy*2/3 {
			c.dbCancel()
			c.log.Warn("this node cannot reach the database; it refuses API calls until it can", "since", c.dbOK)
		}
		c.mu.Unlock()
	}
}

// Timings returns the current timings.
func (c *Cluster) Timings() Timings {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timings
}

// View returns the latest view.
func (c *Cluster) View() View {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.view
	v.Nodes = slices.Clone(v.Nodes)
	// This node's own chat state is fresher here than in the database
	// (written at the next heartbeat): the master must not give slots back
	// to itself right after it lost the chat network.
	for i := range v.Nodes {
		if v.Nodes[i].ID == c.cfg.Node && !c.chatOK && time.Now().Before(c.chatBadTill) {
			v.Nodes[i].ChatOK = false
		}
	}
	return v
}

// IsMaster reports whether this node holds the master lease (and has
// renewed it recently enough to act on it).
func (c *Cluster) IsMaster() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.master && time.Now().Before(c.masterUntil)
}

// SetChatOK records whether this node can reach the chat network. A node
// that cannot is not given slots for a while (3 × unhealthy_interval).
func (c *Cluster) SetChatOK(ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		c.chatOK = false
		c.chatBadTill = time.Now().Add(3 * c.timings.Unhealthy)
	}
}

// ChatOK reports whether this node counts itself able to reach the chat
// network.
func (c *Cluster) ChatOK() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.chatOK && time.Now().After(c.chatBadTill) {
		c.chatOK = true
	}
	return c.chatOK
}

// Ticks returns a channel that receives after every heartbeat.
func (c *Cluster) Ticks() <-chan struct{} { return c.tick }

// Run heartbeats, holds or contends for the master lease and sends wakes
// until ctx ends; then it marks this node stopped, so the others take its
// slots at once.
func (c *Cluster) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { c.wakeLoop(ctx) })
	wg.Go(func() { c.watchDB(ctx) })
	defer wg.Wait()
	defer c.closePeers()
	for {
		start := time.Now()
		bctx, cancel := context.WithTimeout(ctx, c.Timings().Unhealthy)
		err := c.beat(bctx)
		cancel()
		switch {
		case err == nil:
			c.beatOK(start)
		case ctx.Err() == nil:
			c.log.Warn("cluster heartbeat failed", "err", err)
		}
		select {
		case c.tick <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			c.leave()
			return nil
		case <-time.After(c.Timings().Heartbeat - time.Since(start)):
		}
	}
}

// beat refreshes the timings, writes the heartbeat, renews or takes the
// master lease and reads the view.
func (c *Cluster) beat(ctx context.Context) error {
	if err := c.loadTimings(ctx); err != nil {
		c.log.Warn("reading the cluster timings failed; keeping the last ones", "err", err)
	}
	t := c.Timings()
	if c.started == 0 {
		c.started = db.NowMillis()
	}
	chatOK := c.ChatOK()
	if _, err := c.cfg.DB.ExecContext(ctx, `INSERT INTO nodes (id, hostname, grpc_addr, started_at, heartbeat_at, chat_ok, stopped)
		VALUES (?, ?, ?, ?, `+db.NowSQL+`, ?, 0)
		ON DUPLICATE KEY UPDATE hostname = VALUES(hostname), grpc_addr = VALUES(grpc_addr), started_at = VALUES(started_at),
		heartbeat_at = VALUES(heartbeat_at), chat_ok = VALUES(chat_ok), stopped = 0`,
		c.cfg.Node, c.cfg.Hostname, c.cfg.Advertise, c.started, chatOK); err != nil {
		return err
	}
	leaseStart := time.Now()
	master, err := c.masterLease(ctx, t)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if master == c.cfg.Node {
		if !c.master {
			c.log.Info("this node is the primary master")
		}
		c.master = true
		c.masterUntil = leaseStart.Add(t.Unhealthy - t.Unhealthy/3)
	} else {
		if c.master {
			c.log.Warn("this node lost the master lease", "master", master)
		}
		c.master = false
	}
	c.mu.Unlock()
	return c.loadView(ctx, t, master)
}

// loadTimings reads heartbeat_interval and unhealthy_interval, the
// deployment-wide settings (account 0).
func (c *Cluster) loadTimings(ctx context.Context) error {
	app, err := c.cfg.Settings.Get(ctx, 0)
	if err != nil {
		return err
	}
	t := Timings{Heartbeat: time.Duration(app.HeartbeatInterval) * time.Second, Unhealthy: time.Duration(app.UnhealthyInterval) * time.Second}
	t.Unhealthy = max(t.Unhealthy, time.Second)
	t.Heartbeat = min(max(t.Heartbeat, 100*time.Millisecond), t.Unhealthy/2)
	c.mu.Lock()
	c.timings = t
	c.mu.Unlock()
	return nil
}

// masterLease renews the master lease when this node holds it, takes it
// when it is free or expired, and returns its holder.
func (c *Cluster) masterLease(ctx context.Context, t Timings) (string, error) {
	var owner string
	err := db.Tx(ctx, c.cfg.DB, func(tx *sql.Tx) error {
		var epoch, expires, now int64
		err := tx.QueryRowContext(ctx, "SELECT owner, epoch, expires_at, "+db.NowSQL+" FROM cluster_leases WHERE name = 'master' FOR UPDATE").
			Scan(&owner, &epoch, &expires, &now)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			owner = c.cfg.Node
			_, err = tx.ExecContext(ctx, "INSERT INTO cluster_leases (name, owner, epoch, expires_at) VALUES ('master', ?, 1, "+db.NowSQL+" + ?)",
				c.cfg.Node, t.Unhealthy.Milliseconds())
			return err
		case err != nil:
			return err
		case owner != c.cfg.Node && expires > now:
			return nil // held by another live node
		}
		if owner != c.cfg.Node {
			epoch++
			owner = c.cfg.Node
		}
		_, err = tx.ExecContext(ctx, "UPDATE cluster_leases SET owner = ?, epoch = ?, expires_at = "+db.NowSQL+" + ? WHERE name = 'master'",
			c.cfg.Node, epoch, t.Unhealthy.Milliseconds())
		return err
	})
	return owner, err
}

func (c *Cluster) loadView(ctx context.Context, t Timings, master string) error {
	rows, err := c.cfg.DB.QueryContext(ctx, "SELECT id, hostname, grpc_addr, started_at, heartbeat_at, chat_ok, stopped, "+db.NowSQL+" FROM nodes")
	if err != nil {
		return err
	}
	defer rows.Close()
	v := View{Self: c.cfg.Node, Master: master}
	for rows.Next() {
		var n Node
		var beat, now int64
		var stopped bool
		if err := rows.Scan(&n.ID, &n.Hostname, &n.Addr, &n.StartedAt, &beat, &n.ChatOK, &stopped, &now); err != nil {
			return err
		}
		v.Now = now
		n.Alive = !stopped && beat >= now-t.Unhealthy.Milliseconds()
		v.Nodes = append(v.Nodes, n)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	slices.SortFunc(v.Nodes, func(a, b Node) int {
		switch {
		case a.Alive != b.Alive:
			if a.Alive {
				return -1
			}
			return 1
		case a.StartedAt != b.StartedAt:
			return int(a.StartedAt - b.StartedAt)
		}
		return compare(a.ID, b.ID)
	})
	c.mu.Lock()
	c.view = v
	c.mu.Unlock()
	return nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// leave marks this node stopped and gives up the master lease, so the
// other nodes act at once instead of after unhealthy_interval.
func (c *Cluster) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := c.cfg.DB.ExecContext(ctx, "UPDATE nodes SET stopped = 1 WHERE id = ?", c.cfg.Node); err != nil {
		c.log.Warn("marking this node stopped failed; the others notice after unhealthy_interval", "err", err)
	}
	if _, err := c.cfg.DB.ExecContext(ctx, "UPDATE cluster_leases SET expires_at = 0 WHERE name = 'master' AND owner = ?", c.cfg.Node); err != nil {
		c.log.Warn("releasing the master lease failed", "err", err)
	}
}

// Wake tells node that work for slot (account, shard) was committed: new
// messages, or read receipts to send. Wakes are coalesced and sent by Run;
// a lost wake costs only latency (the owner also scans the database).
func (c *Cluster) Wake(node string, accountID int64, shard uint32, messages, receipts bool) {
	if node == "" || node == c.cfg.Node {
		return
	}
	c.mu.Lock()
	m := c.wakes[node]
	if m == nil {
		m = map[[2]int64]*corev1.WakeSlot{}
		c.wakes[node] = m
	}
	k := [2]int64{accountID, int64(shard)}
	w := m[k]
	if w == nil {
		w = &corev1.WakeSlot{AccountId: accountID, Shard: shard}
		m[k] = w
	}
	w.Messages = w.Messages || messages
	w.Receipts = w.Receipts || receipts
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// HandleWake passes wakes from another node to OnWake.
func (c *Cluster) HandleWake(slots []*corev1.WakeSlot) {
	if c.cfg.OnWake != nil {
		c.cfg.OnWake(slots)
	}
}

// wakeLoop sends the pending wakes, one call per node at a time.
func (c *Cluster) wakeLoop(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	busy := map[string]bool{}
	done := make(chan string, 16)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.signal:
		case n := <-done:
			delete(busy, n)
		}
		c.mu.Lock()
		batch := map[string][]*corev1.WakeSlot{}
		for node, m := range c.wakes {
			if busy[node] || len(m) == 0 {
				continue
			}
			for _, w := range m {
				batch[node] = append(batch[node], w)
			}
			delete(c.wakes, node)
		}
		addrs := map[string]string{}
		for _, n := range c.view.Nodes {
			addrs[n.ID] = n.Addr
		}
		c.mu.Unlock()
		for node, slots := range batch {
			cl, err := c.peer(node, addrs[node])
			if err != nil {
				c.log.Debug("cannot wake node", "node", node, "err", err)
				continue
			}
			busy[node] = true
			wg.Go(func() {
				defer func() {
					select {
					case done <- node:
					case <-ctx.Done():
					}
				}()
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				if _, err := cl.Wake(cctx, &corev1.WakeRequest{Slots: slots}); err != nil && ctx.Err() == nil {
					c.log.Debug("waking a node failed; it finds the work on its next scan", "node", node, "err", err)
				}
			})
		}
	}
}

// Peer returns a client of node, a live node of the latest view.
func (c *Cluster) Peer(node string) (corev1.CoreClient, error) {
	for _, n := range c.View().Nodes {
		if n.ID == node && n.Alive {
			return c.peer(node, n.Addr)
		}
	}
	return nil, fmt.Errorf("node %s is not alive", node)
}

// peer returns a client of node, dialling it on first use or when its
// address changed.
func (c *Cluster) peer(node, addr string) (corev1.CoreClient, error) {
	if addr == "" {
		return nil, errors.New("unknown node address")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.peers[node]; p != nil {
		if p.addr == addr {
			return p.client, nil
		}
		p.close()
		delete(c.peers, node)
	}
	if c.cfg.Dial == nil {
		return nil, errors.New("no dialer")
	}
	cl, closeFn, err := c.cfg.Dial(addr)
	if err != nil {
		return nil, err
	}
	c.peers[node] = &peer{addr: addr, client: cl, close: closeFn}
	return cl, nil
}

func (c *Cluster) closePeers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, p := range c.peers {
		p.close()
		delete(c.peers, n)
	}
}
