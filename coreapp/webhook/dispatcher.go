package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openwaba/openwaba/api/graph"
	"github.com/openwaba/openwaba/api/webhooksign"
	"github.com/openwaba/openwaba/coreapp/egress"
	"github.com/openwaba/openwaba/coreapp/metrics"
	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/keystore"
)

// Dispatcher tunables.
const (
	// MaxBatch is the most events in one POST.
	MaxBatch = 50
	// claimTTL is how long a claimed delivery is hidden from other
	// claimers; longer than any delivery attempt. The claims of deliveries
	// waiting in a lane are renewed (extendEvery), so this is also how long
	// what a crashed node held waits before another node (or its restart)
	// takes it.
	claimTTL = 30 * time.Second
	// requestTimeout bounds one POST.
	requestTimeout = 10 * time.Second
	// pollInterval is the backstop when nobody wakes the dispatcher.
	pollInterval = time.Second
	// noURLRetry is how often deliveries wait for a webhook URL to be set.
	noURLRetry = 5 * time.Second
	// maxInFlight caps concurrent POSTs across endpoints on one node.
	maxInFlight = 256
	// claimLimit is the most events fanned out, and deliveries claimed, in
	// one round.
	claimLimit = 2048
	// MaxAttemptsKept is how many attempts the log keeps per delivery.
	MaxAttemptsKept = 20
	// ResponseKept is how much of a receiver's answer the log keeps.
	ResponseKept = 256
	// pruneInterval is how often delivered and dead rows are pruned.
	pruneInterval = time.Minute
	// pruneBatch is the most rows one prune statement deletes.
	pruneBatch = 1000
)

// never is the next_attempt_at of rows nobody is to pick up again.
const never = math.MaxInt64

// Delivery states, as stored and as the API names them (StateNames).
const (
	StatePending   = 0
	StateDelivered = 1
	StateFailing   = 2
	StateDead      = 3
)

// StateNames names the states.
var StateNames = []string{"pending", "delivered", "failing", "dead"}

// Defaults of Options.
const (
	DefaultDeadAfter     = 7 * 24 * time.Hour
	DefaultRetention     = 3 * 24 * time.Hour
	DefaultDeadRetention = 30 * 24 * time.Hour
)

// Dispatcher delivers the outbox. It is safe for concurrent use; Run owns
// every goroutine it starts.
type Dispatcher struct {
	db       *sql.DB
	settings *settings.Store
	log      *slog.Logger
	// clients post to the URLs the admin set and to those a tenant set
	// (public addresses only), trusting the system's CAs and the webhook CA
	// bundle (ca.go swaps them when it changes).
	clients                   atomic.Pointer[clientPair]
	adminPolicy, tenantPolicy egress.Policy
	ks                        *keystore.Keystore
	wake                      chan struct{}
	started                   int64
	opts                      Options
	results                   *db.Batcher[result]

	mu    sync.Mutex // guards the fields below
	lanes map[endpointKey]*lane
	held  map[int64]bool // deliveries queued or being sent on this node
	// queuedTotal is how many deliveries all lanes hold.
	queuedTotal int
	// laneCap and laneDefer are the constants of those names (tests make
	// them small and long).
	laneCap   int
	laneDefer time.Duration
	backoffs  map[endpointKey]backoff
	nextDue   time.Time // earliest retry this node scheduled

	// postsOK and postsFailed count this node's POSTs by result (Posts).
	postsOK, postsFailed atomic.Int64

	caPEM []byte // the webhook CA bundle in use (caLoop's)
}

// clientPair is the Dispatcher's HTTP clients of the moment.
type clientPair struct{ admin, tenant *http.Client }

// endpointKey names one endpoint of one number.
type endpointKey struct{ account, endpoint int64 }

// backoff holds an endpoint's deliveries back after a failed POST, so a
// failing receiver is retried at the backoff pace, not at the event rate.
type backoff struct {
	until    time.Time
	failures int
	url      string // the URL that failed: a new URL starts afresh
}

// Options tune a Dispatcher.
type Options struct {
	// AllowPrivate lets webhook URLs set by tenants reach loopback, private
	// and other non-public addresses (WA_WEBHOOK_ALLOW_PRIVATE: an install
	// inside a private network).
	AllowPrivate bool
	// Keystore opens the app secrets of Cloud-format webhooks and the
	// signing secrets (required for them: without it their deliveries
	// wait).
	Keystore *keystore.Keystore
	// DeadAfter is how long a delivery is retried before it is dead
	// (DefaultDeadAfter, as Cloud).
	DeadAfter time.Duration
	// Retention is how long delivered rows stay listed
	// (DefaultRetention); DeadRetention the same for dead ones
	// (DefaultDeadRetention).
	Retention, DeadRetention time.Duration
}

// MaxRedirects is how many redirects a webhook POST follows.
const MaxRedirects = 3

// Policies are how webhooks are posted: to the URLs the admin set (the
// admin's rules: https anywhere, plain http to loopback, no address check)
// and to those a tenant set (public addresses only unless allowPrivate);
// both through the environment's proxy, following MaxRedirects redirects.
// The webhook CA bundle goes into RootCAs (ca.go).
func Policies(allowPrivate bool) (admin, tenant egress.Policy) {
	admin = egress.Policy{AllowPrivate: true, Timeout: requestTimeout, MaxRedirects: MaxRedirects, Proxy: http.ProxyFromEnvironment, KeepAlive: true}
	tenant = admin
	tenant.AllowPrivate = allowPrivate
	return admin, tenant
}

// NewDispatcher returns a Dispatcher; Run starts it.
func NewDispatcher(d *sql.DB, s *settings.Store, log *slog.Logger, o Options) *Dispatcher {
	// The admin's URLs keep the admin's rules (https anywhere, plain http to
	// loopback): no address check. A tenant's URLs are checked at every
	// connection and redirect (package egress) unless AllowPrivate.
	admin, tenant := Policies(o.AllowPrivate)
	if o.DeadAfter <= 0 {
		o.DeadAfter = DefaultDeadAfter
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.DeadRetention <= 0 {
		o.DeadRetention = DefaultDeadRetention
	}
	disp := &Dispatcher{
		db: d, settings: s, log: log, wake: make(chan struct{}, 1), started: db.NowMillis(),
		ks: o.Keystore, opts: o,
		lanes: map[endpointKey]*lane{}, held: map[int64]bool{}, backoffs: map[endpointKey]backoff{},
		laneCap: laneCap, laneDefer: laneDefer,
	}
	disp.adminPolicy, disp.tenantPolicy = admin, tenant
	disp.clients.Store(&clientPair{admin: admin.Client(), tenant: tenant.Client()})
	disp.results = db.NewBatcher(d, log, db.BatchOptions{MaxBatch: 512, Workers: 2, Name: "webhook_results"}, disp.flush)
	return disp
}

// URLChanged makes the first endpoint's waiting deliveries due now: they
// waited for a URL that failed, and a new one starts afresh (on every node:
// the backoff each node keeps belongs to the URL). Deliveries in flight may
// be posted again (delivery is at least once).
func (d *Dispatcher) URLChanged(ctx context.Context, accountID int64) error {
	d.resetBackoff(accountID, DefaultEndpoint)
	return d.releaseWaiting(ctx, accountID, DefaultEndpoint)
}

func (d *Dispatcher) resetBackoff(accountID, endpoint int64) {
	d.mu.Lock()
	delete(d.backoffs, endpointKey{accountID, endpoint})
	d.mu.Unlock()
}

// releaseWaiting makes an endpoint's failing deliveries due now.
func (d *Dispatcher) releaseWaiting(ctx context.Context, accountID, endpoint int64) error {
	now := db.NowMillis()
	if _, err := d.db.ExecContext(ctx, "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE account_id = ? AND endpoint_id = ? AND state = ? AND next_attempt_at > ?",
		now, accountID, endpoint, StateFailing, now); err != nil {
		return err
	}
	d.Wake()
	return nil
}

// Wake makes the dispatcher look for due work now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// delivery is one claimed delivery with its event.
type delivery struct {
	id, event, account, endpoint int64
	attempts                     int
	batch                        int64
	created                      int64 // the start of its dead age: the event's creation or the last replay
	kind                         string
	payload                      []byte
	claim                        int64 // the next_attempt_at this node's claim wrote (0: unknown)
}

// Run delivers until ctx ends; POSTs in flight are finished and their
// outcomes written first.
func (d *Dispatcher) Run(ctx context.Context) error {
	if err := d.dropVolatile(ctx); err != nil && ctx.Err() == nil {
		d.log.Error("webhook: dropping non-persistent callbacks failed", "err", err)
	}
	resultsCtx, stopResults := context.WithCancel(context.WithoutCancel(ctx))
	var owned sync.WaitGroup
	owned.Go(func() { d.results.Run(resultsCtx) })
	var senders sync.WaitGroup
	defer func() {
		senders.Wait()
		d.drainLanes(context.WithoutCancel(ctx))
		stopResults() // flushes what the POSTs reported
		owned.Wait()
	}()
	owned.Go(func() { d.pruneLoop(ctx) })
	owned.Go(func() { d.caLoop(ctx) })
	inflight := make(chan struct{}, maxInFlight)
	lastExtend := time.Now()
	for {
		fresh, err := d.fanOut(ctx, claimLimit)
		if err != nil && ctx.Err() == nil {
			d.log.Error("webhook: fanning out events failed", "err", err)
		}
		var due []delivery
		if full, none := d.fullLanes(); !none {
			if due, err = d.claim(ctx, claimLimit, full); err != nil && ctx.Err() == nil {
				d.log.Error("webhook: claiming deliveries failed", "err", err)
			}
		}
		all := append(fresh, due...)
		over := d.enqueue(ctx, map[endpointKey]*target{}, all, inflight, &senders)
		if len(over) > 0 {
			d.deferBack(over)
		}
		if time.Since(lastExtend) >= extendEvery {
			d.extendClaims(ctx)
			lastExtend = time.Now()
		}
		if len(all) > len(over) && ctx.Err() == nil {
			continue // there may be more due
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-time.After(min(d.untilNextDue(), extendEvery)):
		}
	}
}

// untilNextDue is how long to sleep: until the earliest retry this node
// scheduled, at most pollInterval (events of other nodes, lost wake-ups).
func (d *Dispatcher) untilNextDue() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	wait := pollInterval
	if !d.nextDue.IsZero() {
		if w := time.Until(d.nextDue); w < wait {
			wait = max(w, time.Millisecond)
		}
		if wait < pollInterval {
			d.nextDue = time.Time{}
		}
	}
	return wait
}

// dropVolatile deletes what was pending from before this start for numbers
// with callback_persist off: such callbacks do not survive a restart.
func (d *Dispatcher) dropVolatile(ctx context.Context) error {
	accounts, err := d.accountsWithWork(ctx)
	if err != nil {
		return err
	}
	for _, a := range accounts {
		app, err := d.settings.Get(ctx, a)
		if err != nil {
			return err
		}
		if app.CallbackPersist {
			continue
		}
		var n int64
		err = db.Tx(ctx, d.db, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, "DELETE FROM webhook_events WHERE account_id = ? AND created_at < ? AND next_attempt_at < ?", a, d.started, int64(never))
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
			res, err = tx.ExecContext(ctx, "DELETE FROM webhook_deliveries WHERE account_id = ? AND created_at < ? AND state IN (?, ?)", a, d.started, StatePending, StateFailing)
			if err != nil {
				return err
			}
			m, _ := res.RowsAffected()
			n += m
			return nil
		})
		if err != nil {
			return err
		}
		d.log.Warn("webhook: callback_persist is off; dropped callbacks pending from before the restart", "account_id", a, "dropped", n)
	}
	return nil
}

func (d *Dispatcher) accountsWithWork(ctx context.Context) ([]int64, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT DISTINCT account_id FROM webhook_events WHERE next_attempt_at < ? UNION SELECT DISTINCT account_id FROM webhook_deliveries WHERE state IN (?, ?)",
		int64(never), StatePending, StateFailing)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var a int64
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// route is an endpoint an account's events fan out to.
type route struct {
	endpoint int64
	events   []string
}

// routes loads the endpoints of accounts: the first endpoint when it has a
// URL or is the account's only one (its events then wait for a URL, as
// on-prem's do), and every other.
func (d *Dispatcher) routes(ctx context.Context, tx *sql.Tx, accounts []int64) (map[int64][]route, error) {
	args := make([]any, len(accounts))
	for i, a := range accounts {
		args[i] = a
	}
	rows, err := tx.QueryContext(ctx, "SELECT id, account_id, is_default, events FROM webhook_endpoints WHERE account_id IN (?"+strings.Repeat(",?", len(accounts)-1)+") ORDER BY id", args...)
	if err != nil {
		return nil, err
	}
	defaults := map[int64][]string{}
	others := map[int64][]route{}
	for rows.Next() {
		var (
			id, account int64
			isDefault   bool
			events      []byte
			r           route
		)
		if err := rows.Scan(&id, &account, &isDefault, &events); err != nil {
			rows.Close()
			return nil, err
		}
		if err := json.Unmarshal(events, &r.events); err != nil && len(events) > 0 {
			d.log.Error("webhook: an endpoint's events filter is not a JSON list; it takes everything", "endpoint_id", id, "err", err)
		}
		if isDefault {
			defaults[account] = r.events
			continue
		}
		r.endpoint = id
		others[account] = append(others[account], r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make(map[int64][]route, len(accounts))
	for _, a := range accounts {
		app, err := d.settings.Get(ctx, a)
		if err != nil {
			return nil, err
		}
		if app.Webhooks.URL != "" || len(others[a]) == 0 {
			out[a] = append(out[a], route{DefaultEndpoint, defaults[a]})
		}
		out[a] = append(out[a], others[a]...)
	}
	return out, nil
}

// fanOut takes up to limit new events, creates their deliveries (claimed by
// this node already) and marks them fanned out, in one transaction.
func (d *Dispatcher) fanOut(ctx context.Context, limit int) ([]delivery, error) {
	var out []delivery
	err := db.Tx(ctx, d.db, func(tx *sql.Tx) error {
		out = out[:0]
		now := db.NowMillis()
		rows, err := tx.QueryContext(ctx,
			"SELECT id, account_id, kind, topic, payload, created_at FROM webhook_events WHERE next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ? FOR UPDATE SKIP LOCKED",
			now, limit)
		if err != nil {
			return err
		}
		type ev struct {
			delivery
			topic string
		}
		var events []ev
		var accounts []int64
		for rows.Next() {
			var e ev
			if err := rows.Scan(&e.event, &e.account, &e.kind, &e.topic, &e.payload, &e.created); err != nil {
				rows.Close()
				return err
			}
			if e.topic == "" { // an event from before topics
				e.topic, _ = topicOf(e.kind, e.payload)
			}
			events = append(events, e)
			if !slices.Contains(accounts, e.account) {
				accounts = append(accounts, e.account)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(events) == 0 {
			return err
		}
		routes, err := d.routes(ctx, tx, accounts)
		if err != nil {
			return err
		}
		ids := make([]int64, len(events))
		for i, e := range events {
			ids[i] = e.event
			for _, r := range routes[e.account] {
				if Matches(r.events, e.topic) {
					dl := e.delivery
					dl.endpoint = r.endpoint
					out = append(out, dl)
				}
			}
		}
		prePin(out)
		const perInsert = 500
		for start := 0; start < len(out); start += perInsert {
			part := out[start:min(start+perInsert, len(out))]
			args := make([]any, 0, 8*len(part))
			for i := range part {
				part[i].claim = now + claimTTL.Milliseconds()
				dl := part[i]
				args = append(args, dl.event, dl.account, dl.endpoint, dl.batch, dl.claim, dl.created, now, dl.created)
			}
			res, err := tx.ExecContext(ctx, "INSERT INTO webhook_deliveries (event_id, account_id, endpoint_id, state, attempts, batch, next_attempt_at, created_at, updated_at, retry_since) VALUES "+
				db.Rows("(?,?,?,0,0,?,?,?,?,?)", len(part)), args...)
			if err != nil {
				return err
			}
			first, err := res.LastInsertId()
			if err != nil {
				return err
			}
			for i := range part {
				part[i].id = first + int64(i) // the rows of one INSERT get consecutive ids
			}
		}
		return execIDs(ctx, tx, "UPDATE webhook_events SET next_attempt_at = ? WHERE id IN (%s)", ids, int64(never))
	})
	if err != nil {
		return nil, err // rolled back: none of out exists
	}
	return out, nil
}

// prePin pins new deliveries into their POSTs as they are created, where a
// round brings a whole POST's worth: each run of MaxBatch deliveries of one
// kind to one endpoint becomes a pinned group, so its POST needs no pinning
// write before it is sent (deliver) and goes out, and is retried, with
// those events under one webhook-id. The rest stay unpinned, to fill up
// with later rounds' behind a slow receiver (lane.go) and be pinned when
// their POST is sent. Pins made here are the negated event id of a group's
// first delivery, so they never meet the pins deliver writes (a delivery
// id).
func prePin(out []delivery) {
	type groupOf struct {
		endpointKey
		kind string
	}
	runs := map[groupOf][]int{} // indexes into out
	for i, dl := range out {
		g := groupOf{endpointKey{dl.account, dl.endpoint}, dl.kind}
		runs[g] = append(runs[g], i)
	}
	for _, idx := range runs {
		for start := 0; start+MaxBatch <= len(idx); start += MaxBatch {
			pin := -out[idx[start]].event
			for _, i := range idx[start : start+MaxBatch] {
				out[i].batch = pin
			}
		}
	}
}

// claim takes up to limit due deliveries, hides them from other claimers
// for claimTTL and loads their events. Deliveries of the endpoints in full
// are left out (their lanes on this node have no room). A pinned group is
// not split at the limit: one that reaches it is left for the next round
// (the rows are read in (next_attempt_at, batch, id) order, migration
// 00030).
func (d *Dispatcher) claim(ctx context.Context, limit int, full []endpointKey) ([]delivery, error) {
	var out []delivery
	err := db.Tx(ctx, d.db, func(tx *sql.Tx) error {
		out = out[:0]
		now := db.NowMillis()
		q := "SELECT id, event_id, account_id, endpoint_id, attempts, batch, retry_since FROM webhook_deliveries WHERE next_attempt_at <= ?"
		args := []any{now}
		for _, k := range full {
			q += " AND NOT (account_id = ? AND endpoint_id = ?)"
			args = append(args, k.account, k.endpoint)
		}
		rows, err := tx.QueryContext(ctx, q+" ORDER BY next_attempt_at, batch, id LIMIT ? FOR UPDATE SKIP LOCKED", append(args, limit)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var e delivery
			if err := rows.Scan(&e.id, &e.event, &e.account, &e.endpoint, &e.attempts, &e.batch, &e.created); err != nil {
				rows.Close()
				return err
			}
			out = append(out, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(out) == 0 {
			return err
		}
		if last := out[len(out)-1]; len(out) == limit && last.batch != 0 {
			// A pinned group's members share batch and next_attempt_at, so
			// they are contiguous in this order: the last one may be cut by
			// the limit, and is left whole for the next round. Every group
			// with that pin is: the groups prePin makes for two endpoints
			// from the same first event share it, and interleave.
			if kept := slices.DeleteFunc(slices.Clone(out), func(e delivery) bool {
				return e.batch == last.batch
			}); len(kept) > 0 {
				out = kept
			}
		}
		ids := make([]int64, len(out))
		exp := now + claimTTL.Milliseconds()
		for i := range out {
			ids[i], out[i].claim = out[i].id, exp
		}
		return execIDs(ctx, tx, "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id IN (%s)", ids, exp)
	})
	if err != nil || len(out) == 0 {
		return nil, err
	}
	events := make([]int64, 0, len(out))
	for _, e := range out {
		if !slices.Contains(events, e.event) {
			events = append(events, e.event)
		}
	}
	type ev struct {
		kind    string
		payload []byte
	}
	loaded := make(map[int64]ev, len(events))
	for start := 0; start < len(events); start += 1000 {
		part := events[start:min(start+1000, len(events))]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		rows, err := d.db.QueryContext(ctx, "SELECT id, kind, payload FROM webhook_events WHERE id IN (?"+strings.Repeat(",?", len(part)-1)+")", args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id int64
			var e ev
			if err := rows.Scan(&id, &e.kind, &e.payload); err != nil {
				rows.Close()
				return nil, err
			}
			loaded[id] = e
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	for i := range out {
		e, ok := loaded[out[i].event]
		if !ok { // pruned under it: nothing to send
			e.kind = ""
		}
		out[i].kind, out[i].payload = e.kind, e.payload
	}
	return out, nil
}

// target is an endpoint as one round of the dispatcher delivers to it.
type target struct {
	ep   Endpoint
	app  settings.Application
	err  error // it could not be loaded
	keys [][]byte
	// hubSecret signs the Cloud envelope (X-Hub-Signature-256).
	hubSecret string
	number    Number
}

func (d *Dispatcher) target(ctx context.Context, cache map[endpointKey]*target, k endpointKey) *target {
	if t, ok := cache[k]; ok {
		return t
	}
	t := &target{}
	cache[k] = t
	if t.app, t.err = d.settings.Get(ctx, k.account); t.err != nil {
		return t
	}
	if t.ep, t.err = d.Endpoint(ctx, k.account, k.endpoint); t.err != nil {
		return t
	}
	var current string
	if t.keys, current, t.err = d.signingKeys(t.ep, time.Now()); t.err != nil {
		return t
	}
	if t.ep.Format == settings.FormatCloud {
		t.hubSecret = current
		if k.endpoint == DefaultEndpoint {
			if d.ks == nil {
				t.err = errors.New("no keystore to open the app secret")
				return t
			}
			s, err := d.ks.Open(t.app.Webhooks.AppSecret, AppSecretContext)
			if err != nil {
				t.err = fmt.Errorf("opening the app secret: %w", err)
				return t
			}
			t.hubSecret = string(s)
		}
		t.number, t.err = d.number(ctx, k.account)
	}
	return t
}

// batch is the deliveries of one POST.
type batch struct {
	key        endpointKey
	kind       string
	pinned     int64 // the batch a failed POST pinned them to (0: none)
	deliveries []delivery
	t          *target
}

func (b batch) ids() []int64 {
	ids := make([]int64, len(b.deliveries))
	for i, dl := range b.deliveries {
		ids[i] = dl.id
	}
	return ids
}

// webhookID is the POST's idempotency key: the event's id when it carries
// one event, else a digest of its deliveries (the same set on a retry: a
// failed POST pins them together).
func (b batch) webhookID() string {
	if len(b.deliveries) == 1 {
		return "evt_" + strconv.FormatInt(b.deliveries[0].event, 10)
	}
	ids := b.ids()
	slices.Sort(ids) // a retry may list them in another order
	h := sha256.New()
	for _, id := range ids {
		h.Write(strconv.AppendInt(nil, id, 10))
		h.Write([]byte{','})
	}
	return "bat_" + hex.EncodeToString(h.Sum(nil)[:12])
}

func (d *Dispatcher) deliver(ctx context.Context, b batch) {
	t := b.t
	if t.err != nil {
		if errors.Is(t.err, ErrNoEndpoint) { // deleted under us
			d.record(b, nil, StateDead, never, 0)
			return
		}
		d.log.Error("webhook: loading the endpoint failed", "account_id", b.key.account, "endpoint_id", b.key.endpoint, "err", t.err)
		d.hold(b, time.Now().Add(noURLRetry))
		return
	}
	if t.ep.URL == "" {
		d.hold(b, time.Now().Add(noURLRetry))
		return
	}
	var live []delivery // deliveries whose event is still there
	for _, dl := range b.deliveries {
		if dl.kind != "" {
			live = append(live, dl)
		}
	}
	if len(live) < len(b.deliveries) {
		gone := b
		gone.deliveries = slices.DeleteFunc(slices.Clone(b.deliveries), func(dl delivery) bool { return dl.kind != "" })
		d.record(gone, nil, StateDead, never, 0)
		if b.deliveries = live; len(live) == 0 {
			return
		}
	}
	d.mu.Lock()
	bo := d.backoffs[b.key]
	if bo.url != t.ep.URL {
		bo = backoff{}
		delete(d.backoffs, b.key)
	}
	d.mu.Unlock()
	if time.Now().Before(bo.until) {
		d.hold(b, bo.until)
		return
	}
	body, skip, err := d.render(t, b)
	if err != nil {
		d.log.Error("webhook: rendering an event failed; it is dead", "account_id", b.key.account, "err", err)
		d.record(b, &attemptLog{at: db.NowMillis(), url: t.ep.URL, err: "rendering: " + err.Error()}, StateDead, never, 0)
		return
	}
	if skip { // nothing this envelope posts (service reports in the Cloud one)
		d.record(b, nil, StateDelivered, never, 0)
		return
	}
	if t.ep.Format != settings.FormatCloud && b.pinned == 0 {
		// The POST's events are pinned together before it is sent: whatever
		// happens to it (an outcome lost in a crash too), it is retried with
		// the same events under the same webhook-id. A Cloud POST carries
		// one event and its id is the event's.
		pin := slices.Min(b.ids())
		if err := d.results.Do(ctx, result{ids: b.ids(), keep: true, next: db.NowMillis() + claimTTL.Milliseconds(), pin: pin}); err != nil {
			d.log.Warn("webhook: pinning a POST's events failed; it is sent later", "err", err)
			d.release(context.WithoutCancel(ctx), b)
			return
		}
		b.pinned = pin
	}
	a := d.send(ctx, t, b.webhookID(), body)
	if a.ok() {
		d.mu.Lock()
		delete(d.backoffs, b.key)
		d.mu.Unlock()
		d.record(b, a, StateDelivered, never, 0)
		return
	}
	if ctx.Err() != nil && a.status == 0 { // shutting down: not the receiver's fault
		d.release(context.WithoutCancel(ctx), b)
		return
	}
	d.mu.Lock()
	bo = d.backoffs[b.key]
	if bo.url != t.ep.URL {
		bo = backoff{url: t.ep.URL}
	}
	bo.failures++
	delay := min(time.Duration(bo.failures*t.app.CallbackBackoffDelayMs)*time.Millisecond,
		time.Duration(t.app.MaxCallbackBackoffDelayMs)*time.Millisecond)
	bo.until = time.Now().Add(delay)
	d.backoffs[b.key] = bo
	d.mu.Unlock()
	d.log.Warn("webhook delivery failed", "account_id", b.key.account, "endpoint_id", b.key.endpoint, "events", len(b.deliveries), "failures", bo.failures, "retry_in", delay, "err", a.describe())
	pin := b.pinned // the on-prem envelope's, pinned before the POST; 0 in the Cloud one
	d.fail(b, a, bo.until, pin)
}

// render builds the POST body of a batch in its endpoint's envelope.
func (d *Dispatcher) render(t *target, b batch) (body []byte, skip bool, err error) {
	if t.ep.Format == settings.FormatCloud {
		return CloudBody(t.number, b.kind, b.deliveries[0].payload)
	}
	payloads := make([][]byte, len(b.deliveries))
	for i, dl := range b.deliveries {
		payloads[i] = dl.payload
	}
	body, err = renderOnPrem(b.kind, payloads)
	return body, false, err
}

// number is the business number of an account, as Cloud names it.
func (d *Dispatcher) number(ctx context.Context, accountID int64) (Number, error) {
	n := Number{PhoneNumberID: graph.PhoneNumberID(accountID), WABAID: graph.WABAID(accountID)}
	err := d.db.QueryRowContext(ctx, "SELECT wa_id FROM accounts WHERE id = ?", accountID).Scan(&n.WaID)
	return n, err
}

// attemptLog is one POST as the log keeps it.
type attemptLog struct {
	at       int64
	url      string
	status   int
	latency  time.Duration
	response []byte
	err      string
}

func (a *attemptLog) ok() bool { return a.err == "" && a.status >= 200 && a.status <= 299 }

func (a *attemptLog) describe() string {
	if a.err != "" {
		return a.err
	}
	return "receiver answered " + strconv.Itoa(a.status) + " " + http.StatusText(a.status)
}

// send POSTs one body with the endpoint's headers and signatures.
func (d *Dispatcher) send(ctx context.Context, t *target, id string, body []byte) *attemptLog {
	start := time.Now()
	a := &attemptLog{at: start.UnixMilli(), url: t.ep.URL}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.ep.URL, bytes.NewReader(body))
	if err != nil {
		a.err = err.Error()
		return a
	}
	for k, v := range t.ep.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "openwaba-webhook/1")
	req.Header.Set(webhooksign.HeaderID, id)
	ts := start.Unix()
	req.Header.Set(webhooksign.HeaderTimestamp, strconv.FormatInt(ts, 10))
	if len(t.keys) > 0 {
		req.Header.Set(webhooksign.HeaderSignature, webhooksign.Header(t.keys, id, ts, body))
	}
	if t.hubSecret != "" {
		req.Header.Set("X-Hub-Signature-256", graph.Signature(t.hubSecret, body))
	}
	cs := d.clients.Load()
	c := cs.admin
	if t.ep.ByTenant {
		c = cs.tenant
	}
	resp, err := c.Do(req)
	if err != nil {
		a.latency, a.err = time.Since(start), egress.Describe(err)
		return a
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, ResponseKept))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	a.latency, a.status, a.response = time.Since(start), resp.StatusCode, head
	return a
}

// result is the outcome of one POST (or of a decision not to post) for its
// deliveries, written by flush.
type result struct {
	ids     []int64
	ns      []int // each delivery's attempt number, when attempt is set
	attempt *attemptLog
	state   int
	next    int64
	pin     int64
	// counted: the outcome is an attempt (attempts + 1).
	counted bool
	// keep: only batch (when pin is set) and next_attempt_at change (a
	// pin before a POST, a deferral); state and attempts stay.
	keep bool
}

// Posts is how many webhook POSTs this node made since it started, by
// result (/v1/stats/app).
func (d *Dispatcher) Posts() (success, failure int64) { return d.postsOK.Load(), d.postsFailed.Load() }

// record writes a batch's outcome.
func (d *Dispatcher) record(b batch, a *attemptLog, state int, next, pin int64) {
	r := result{ids: b.ids(), attempt: a, state: state, next: next, pin: pin, counted: a != nil}
	if a != nil {
		if state == StateDelivered {
			d.postsOK.Add(1)
			metrics.WebhookPosts.WithLabelValues(metrics.Endpoint(b.key.endpoint), "success").Inc()
		} else {
			d.postsFailed.Add(1)
			metrics.WebhookPosts.WithLabelValues(metrics.Endpoint(b.key.endpoint), "failure").Inc()
		}
		r.ns = make([]int, len(b.deliveries))
		for i, dl := range b.deliveries {
			r.ns[i] = dl.attempts + 1
		}
	}
	d.results.Go(r, func(err error) {
		if err != nil {
			d.log.Error("webhook: recording an outcome failed (the deliveries are retried when their claim expires)", "deliveries", len(r.ids), "err", err)
		}
	})
}

// fail records a failed attempt: the deliveries retry at next, or are dead
// when their event is older than DeadAfter.
func (d *Dispatcher) fail(b batch, a *attemptLog, next time.Time, pin int64) {
	dead, live := d.splitDead(b)
	if len(dead.deliveries) > 0 {
		d.record(dead, a, StateDead, never, pin)
	}
	if len(live.deliveries) > 0 {
		d.record(live, a, StateFailing, next.UnixMilli(), pin)
		d.scheduled(next)
	}
}

// hold puts deliveries off until at without counting an attempt (no URL
// yet, the endpoint backing off); those past DeadAfter are dead.
func (d *Dispatcher) hold(b batch, at time.Time) {
	dead, live := d.splitDead(b)
	if len(dead.deliveries) > 0 {
		d.record(dead, nil, StateDead, never, 0)
	}
	if len(live.deliveries) > 0 {
		state := StateFailing
		if live.deliveries[0].attempts == 0 {
			state = StatePending
		}
		d.results.Go(result{ids: live.ids(), state: state, next: at.UnixMilli(), pin: live.pinned}, func(err error) {
			if err != nil {
				d.log.Error("webhook: rescheduling failed (the deliveries are retried when their claim expires)", "err", err)
			}
		})
		d.scheduled(at)
	}
}

func (d *Dispatcher) splitDead(b batch) (dead, live batch) {
	dead, live = b, b
	dead.deliveries, live.deliveries = nil, nil
	limit := time.Now().Add(-d.opts.DeadAfter).UnixMilli()
	for _, dl := range b.deliveries {
		if dl.created <= limit {
			dead.deliveries = append(dead.deliveries, dl)
		} else {
			live.deliveries = append(live.deliveries, dl)
		}
	}
	return dead, live
}

func (d *Dispatcher) scheduled(at time.Time) {
	d.remember(at)
	d.Wake() // re-evaluate the sleep
}

// remember notes a retry time for the loop's next sleep, without waking it.
func (d *Dispatcher) remember(at time.Time) {
	d.mu.Lock()
	if d.nextDue.IsZero() || at.Before(d.nextDue) {
		d.nextDue = at
	}
	d.mu.Unlock()
}

// release makes claimed deliveries due again at once.
func (d *Dispatcher) release(ctx context.Context, b batch) { d.releaseIDs(ctx, b.ids()) }

func (d *Dispatcher) releaseIDs(ctx context.Context, ids []int64) {
	if len(ids) == 0 {
		return
	}
	if err := execIDs(ctx, d.db, "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id IN (%s)", ids, db.NowMillis()); err != nil {
		d.log.Warn("webhook: releasing claimed deliveries failed (they are retried when their claim expires)", "err", err)
	}
}

// flush writes outcomes: the delivered ones in one statement, the others
// one statement each, every attempt in one insert.
func (d *Dispatcher) flush(ctx context.Context, tx *sql.Tx, rs []result) error {
	now := db.NowMillis()
	var delivered []int64
	var args []any
	rowsN := 0
	// The other outcomes, one statement per distinct change (the holds of
	// a backing-off endpoint share one).
	type change struct {
		state, inc int
		pin, next  int64
		keep       bool
	}
	changes := map[change][]int64{}
	var order []change
	for _, r := range rs {
		if r.attempt != nil {
			a := r.attempt
			if a.response == nil {
				a.response = []byte{} // the column is NOT NULL
			}
			for i, id := range r.ids {
				args = append(args, id, r.ns[i], a.at, a.url, a.status, a.latency.Milliseconds(), a.response, truncate(a.err, 512))
				rowsN++
			}
		}
		if r.state == StateDelivered && r.counted && r.pin == 0 {
			delivered = append(delivered, r.ids...)
			continue
		}
		inc := 0
		if r.counted {
			inc = 1
		}
		k := change{r.state, inc, r.pin, r.next, r.keep}
		if _, ok := changes[k]; !ok {
			order = append(order, k)
		}
		changes[k] = append(changes[k], r.ids...)
		if r.attempt != nil && slices.Min(r.ns) > MaxAttemptsKept {
			if err := execIDs(ctx, tx, "DELETE FROM webhook_attempts WHERE n <= ? AND delivery_id IN (%s)", r.ids, slices.Min(r.ns)-MaxAttemptsKept); err != nil {
				return err
			}
		}
	}
	for _, k := range order {
		ids := changes[k]
		for start := 0; start < len(ids); start += 1000 {
			part := ids[start:min(start+1000, len(ids))]
			var err error
			switch {
			case k.keep && k.pin != 0:
				err = execIDs(ctx, tx, "UPDATE webhook_deliveries SET batch = ?, next_attempt_at = ? WHERE id IN (%s)", part, k.pin, k.next)
			case k.keep:
				err = execIDs(ctx, tx, "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id IN (%s)", part, k.next)
			default:
				err = execIDs(ctx, tx, "UPDATE webhook_deliveries SET state = ?, attempts = attempts + ?, batch = ?, next_attempt_at = ?, updated_at = ? WHERE id IN (%s)",
					part, k.state, k.inc, k.pin, k.next, now)
			}
			if err != nil {
				return err
			}
		}
	}
	for start := 0; start < len(delivered); start += 1000 {
		part := delivered[start:min(start+1000, len(delivered))]
		if err := execIDs(ctx, tx, "UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, next_attempt_at = ?, updated_at = ? WHERE id IN (%s)",
			part, StateDelivered, int64(never), now); err != nil {
			return err
		}
	}
	const perRow = 8
	for start := 0; start < rowsN; start += 500 {
		n := min(500, rowsN-start)
		if _, err := tx.ExecContext(ctx, "INSERT INTO webhook_attempts (delivery_id, n, at, url, http_status, latency_ms, response, error) VALUES "+db.Rows("(?,?,?,?,?,?,?,?)", n),
			args[start*perRow:(start+n)*perRow]...); err != nil {
			return err
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// pruneLoop deletes delivered rows after Retention and dead ones after
// DeadRetention, with their attempts and then their events, in batches.
func (d *Dispatcher) pruneLoop(ctx context.Context) {
	for {
		if err := d.Prune(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("webhook: pruning the delivery log failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pruneInterval):
		}
	}
}

// Prune runs one pruning pass.
func (d *Dispatcher) Prune(ctx context.Context) error {
	now := time.Now()
	for _, p := range []struct {
		state int
		keep  time.Duration
	}{{StateDelivered, d.opts.Retention}, {StateDead, d.opts.DeadRetention}} {
		for {
			ids, err := d.ids(ctx, "SELECT id FROM webhook_deliveries WHERE state = ? AND updated_at < ? LIMIT ?", p.state, now.Add(-p.keep).UnixMilli(), pruneBatch)
			if err != nil || len(ids) == 0 {
				return err
			}
			err = db.Tx(ctx, d.db, func(tx *sql.Tx) error {
				if err := execIDs(ctx, tx, "DELETE FROM webhook_attempts WHERE delivery_id IN (%s)", ids); err != nil {
					return err
				}
				return execIDs(ctx, tx, "DELETE FROM webhook_deliveries WHERE id IN (%s)", ids)
			})
			if err != nil {
				return err
			}
			if len(ids) < pruneBatch {
				break
			}
		}
	}
	// Events fanned out whose deliveries are all gone.
	for {
		ids, err := d.ids(ctx, "SELECT e.id FROM webhook_events e WHERE e.next_attempt_at = ? AND e.created_at < ? AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id) LIMIT ?",
			int64(never), now.Add(-min(d.opts.Retention, d.opts.DeadRetention)).UnixMilli(), pruneBatch)
		if err != nil || len(ids) == 0 {
			return err
		}
		if err := execIDs(ctx, d.db, "DELETE FROM webhook_events WHERE id IN (%s)", ids); err != nil {
			return err
		}
		if len(ids) < pruneBatch {
			return nil
		}
	}
}

func (d *Dispatcher) ids(ctx context.Context, q string, args ...any) ([]int64, error) {
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// execIDs runs q (with one %s for the id list) with first as its first
// arguments followed by the ids.
func execIDs(ctx context.Context, e execer, q string, ids []int64, first ...any) error {
	if len(ids) == 0 {
		return nil
	}
	args := append(first, make([]any, len(ids))...)
	for i, id := range ids {
		args[len(first)+i] = id
	}
	_, err := e.ExecContext(ctx, fmt.Sprintf(q, "?"+strings.Repeat(",?", len(ids)-1)), args...)
	return err
}
