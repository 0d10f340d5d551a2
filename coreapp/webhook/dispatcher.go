package webhook

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/openwaba/openwaba/api/graph"
	"github.com/openwaba/openwaba/coreapp/egress"
	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/keystore"
)

// Dispatcher tunables.
const (
	// MaxBatch is the most events in one POST.
	MaxBatch = 50
	// claimTTL is how long a claimed event is hidden from other claimers;
	// longer than any delivery attempt.
	claimTTL = 60 * time.Second
	// requestTimeout bounds one POST.
	requestTimeout = 10 * time.Second
	// pollInterval is the backstop when nobody wakes the dispatcher.
	pollInterval = time.Second
	// noURLRetry is how often events wait for a webhook URL to be set.
	noURLRetry = 5 * time.Second
	// maxInFlight caps concurrent POSTs across accounts on one node.
	maxInFlight = 128
)

// Dispatcher delivers the outbox. It is safe for concurrent use; Run owns
// every goroutine it starts.
type Dispatcher struct {
	db       *sql.DB
	settings *settings.Store
	log      *slog.Logger
	client   *http.Client // URLs the admin set
	guarded  *http.Client // URLs a tenant set: public addresses only
	ks       *keystore.Keystore
	wake     chan struct{}
	started  int64

	mu       sync.Mutex // guards the fields below
	sems     map[int64]chan struct{}
	backoffs map[int64]accountBackoff
	nextDue  time.Time // earliest retry this node scheduled
}

// accountBackoff holds an account's events back after a failed POST, so a
// failing receiver is retried at the backoff pace, not at the event rate.
type accountBackoff struct {
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
	// Keystore opens the app secrets of Cloud-format webhooks (required
	// for them: without it their events wait).
	Keystore *keystore.Keystore
}

// MaxRedirects is how many redirects a webhook POST follows.
const MaxRedirects = 3

// NewDispatcher returns a Dispatcher; Run starts it.
func NewDispatcher(d *sql.DB, s *settings.Store, log *slog.Logger, o Options) *Dispatcher {
	// The admin's URLs keep the admin's rules (https anywhere, plain http to
	// loopback): no address check. A tenant's URLs are checked at every
	// connection and redirect (package egress) unless AllowPrivate.
	admin := egress.Policy{AllowPrivate: true, Timeout: requestTimeout, MaxRedirects: MaxRedirects, Proxy: http.ProxyFromEnvironment, KeepAlive: true}
	tenant := admin
	tenant.AllowPrivate = o.AllowPrivate
	return &Dispatcher{
		db: d, settings: s, log: log, wake: make(chan struct{}, 1), started: db.NowMillis(),
		client: admin.Client(), guarded: tenant.Client(), ks: o.Keystore,
		sems: map[int64]chan struct{}{}, backoffs: map[int64]accountBackoff{},
	}
}

// URLChanged makes the account's waiting events due now: they waited for a
// URL that failed, and a new one starts afresh (on every node: the backoff
// each node keeps belongs to the URL). Events in flight may be posted again
// (delivery is at least once).
func (d *Dispatcher) URLChanged(ctx context.Context, accountID int64) error {
	now := db.NowMillis()
	if _, err := d.db.ExecContext(ctx, "UPDATE webhook_events SET next_attempt_at = ? WHERE account_id = ? AND attempts > 0 AND next_attempt_at > ?", now, accountID, now); err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.backoffs, accountID)
	d.mu.Unlock()
	d.Wake()
	return nil
}

// Wake makes the dispatcher look for due events now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

type event struct {
	id       int64
	account  int64
	kind     string
	payload  []byte
	attempts int
}

// Run delivers events until ctx ends; POSTs in flight are finished first.
func (d *Dispatcher) Run(ctx context.Context) error {
	if err := d.dropVolatile(ctx); err != nil && ctx.Err() == nil {
		d.log.Error("webhook: dropping non-persistent callbacks failed", "err", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	inflight := make(chan struct{}, maxInFlight)
	for {
		events, err := d.claim(ctx, maxInFlight*MaxBatch/4)
		if err != nil && ctx.Err() == nil {
			d.log.Error("webhook: claiming events failed", "err", err)
		}
		for _, b := range batches(events) {
			select {
			case inflight <- struct{}{}:
			case <-ctx.Done():
				d.release(context.WithoutCancel(ctx), b) // let another node (or the next start) take them at once
				continue
			}
			wg.Go(func() {
				defer func() { <-inflight }()
				d.deliver(ctx, b)
			})
		}
		if len(events) > 0 && ctx.Err() == nil {
			continue // there may be more due
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-time.After(d.untilNextDue()):
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

// dropVolatile deletes events left from before this start for accounts with
// callback_persist off: such callbacks do not survive a restart.
func (d *Dispatcher) dropVolatile(ctx context.Context) error {
	rows, err := d.db.QueryContext(ctx, "SELECT DISTINCT account_id FROM webhook_events")
	if err != nil {
		return err
	}
	var accounts []int64
	for rows.Next() {
		var a int64
		if err := rows.Scan(&a); err != nil {
			rows.Close()
			return err
		}
		accounts = append(accounts, a)
	}
	rows.Close()
	for _, a := range accounts {
		app, err := d.settings.Get(ctx, a)
		if err != nil {
			return err
		}
		if app.CallbackPersist {
			continue
		}
		res, err := d.db.ExecContext(ctx, "DELETE FROM webhook_events WHERE account_id = ? AND created_at < ?", a, d.started)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		d.log.Warn("webhook: callback_persist is off; dropped callbacks pending from before the restart", "account_id", a, "dropped", n)
	}
	return nil
}

// claim takes up to limit due events and hides them from other claimers for
// claimTTL.
func (d *Dispatcher) claim(ctx context.Context, limit int) ([]event, error) {
	var out []event
	err := db.Tx(ctx, d.db, func(tx *sql.Tx) error {
		out = out[:0]
		now := db.NowMillis()
		rows, err := tx.QueryContext(ctx,
			"SELECT id, account_id, kind, payload, attempts FROM webhook_events WHERE next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ? FOR UPDATE SKIP LOCKED",
			now, limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var e event
			if err := rows.Scan(&e.id, &e.account, &e.kind, &e.payload, &e.attempts); err != nil {
				rows.Close()
				return err
			}
			out = append(out, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(out) == 0 {
			return err
		}
		ids := make([]int64, len(out))
		for i, e := range out {
			ids[i] = e.id
		}
		return execIDs(ctx, tx, "UPDATE webhook_events SET next_attempt_at = ? WHERE id IN (%s)", ids, now+claimTTL.Milliseconds())
	})
	return out, err
}

type batch struct {
	account int64
	kind    string
	events  []event
}

func batches(events []event) []batch {
	var out []batch
	idx := map[[2]any]int{}
	for _, e := range events {
		k := [2]any{e.account, e.kind}
		i, ok := idx[k]
		if !ok || len(out[i].events) >= MaxBatch {
			out = append(out, batch{account: e.account, kind: e.kind})
			i = len(out) - 1
			idx[k] = i
		}
		out[i].events = append(out[i].events, e)
	}
	return out
}

func (b batch) ids() []int64 {
	ids := make([]int64, len(b.events))
	for i, e := range b.events {
		ids[i] = e.id
	}
	return ids
}

func (d *Dispatcher) semaphore(account int64, size int) chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sems[account]
	if s == nil || cap(s) != size {
		s = make(chan struct{}, size)
		d.sems[account] = s
	}
	return s
}

func (d *Dispatcher) deliver(ctx context.Context, b batch) {
	app, err := d.settings.Get(ctx, b.account)
	if err != nil {
		d.log.Error("webhook: loading settings failed", "account_id", b.account, "err", err)
		d.reschedule(ctx, b, time.Now().Add(noURLRetry), false)
		return
	}
	if app.Webhooks.URL == "" {
		d.reschedule(ctx, b, time.Now().Add(noURLRetry), false)
		return
	}
	d.mu.Lock()
	bo := d.backoffs[b.account]
	if bo.url != app.Webhooks.URL {
		bo = accountBackoff{}
		delete(d.backoffs, b.account)
	}
	d.mu.Unlock()
	if time.Now().Before(bo.until) {
		d.reschedule(ctx, b, bo.until, false)
		return
	}
	sem := d.semaphore(b.account, max(app.Webhooks.MaxConcurrentRequests, 1))
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		d.release(context.WithoutCancel(ctx), b)
		return
	}
	if app.Webhooks.Cloud() {
		var done []int64
		done, err = d.postCloud(ctx, app, b)
		if len(done) > 0 && err != nil {
			if err := execIDs(context.WithoutCancel(ctx), d.db, "DELETE FROM webhook_events WHERE id IN (%s)", done); err != nil {
				d.log.Error("webhook: deleting delivered events failed (they will be sent again)", "err", err)
			}
			b = b.without(done)
		}
	} else {
		err = d.post(ctx, app, b)
	}
	<-sem
	if err == nil {
		d.mu.Lock()
		delete(d.backoffs, b.account)
		d.mu.Unlock()
		if err := execIDs(context.WithoutCancel(ctx), d.db, "DELETE FROM webhook_events WHERE id IN (%s)", b.ids()); err != nil {
			d.log.Error("webhook: deleting delivered events failed (they will be sent again)", "err", err)
		}
		return
	}
	d.mu.Lock()
	bo = d.backoffs[b.account]
	if bo.url != app.Webhooks.URL {
		bo = accountBackoff{url: app.Webhooks.URL}
	}
	bo.failures++
	delay := min(time.Duration(bo.failures*app.CallbackBackoffDelayMs)*time.Millisecond,
		time.Duration(app.MaxCallbackBackoffDelayMs)*time.Millisecond)
	bo.until = time.Now().Add(delay)
	d.backoffs[b.account] = bo
	d.mu.Unlock()
	d.log.Warn("webhook delivery failed", "account_id", b.account, "events", len(b.events), "failures", bo.failures, "retry_in", delay, "err", err)
	d.reschedule(ctx, b, bo.until, true)
}

func (d *Dispatcher) post(ctx context.Context, app settings.Application, b batch) error {
	payloads := make([][]byte, len(b.events))
	for i, e := range b.events {
		payloads[i] = e.payload
	}
	body, err := body(b.kind, payloads)
	if err != nil {
		return err
	}
	return d.send(ctx, app, body, "")
}

// postCloud posts the events one by one in the Cloud envelope and returns
// the ids of those delivered (or skipped) before the first failure.
func (d *Dispatcher) postCloud(ctx context.Context, app settings.Application, b batch) ([]int64, error) {
	if d.ks == nil {
		return nil, errors.New("no keystore to open the app secret")
	}
	secret, err := d.ks.Open(app.Webhooks.AppSecret, AppSecretContext)
	if err != nil {
		return nil, fmt.Errorf("opening the app secret: %w", err)
	}
	n, err := d.number(ctx, b.account)
	if err != nil {
		return nil, err
	}
	var done []int64
	for _, e := range b.events {
		body, skip, err := CloudBody(n, e.kind, e.payload)
		if err != nil {
			return done, err
		}
		if !skip {
			if err := d.send(ctx, app, body, graph.Signature(string(secret), body)); err != nil {
				return done, err
			}
		}
		done = append(done, e.id)
	}
	return done, nil
}

// number is the business number of an account, as Cloud names it.
func (d *Dispatcher) number(ctx context.Context, accountID int64) (Number, error) {
	n := Number{PhoneNumberID: graph.PhoneNumberID(accountID), WABAID: graph.WABAID(accountID)}
	err := d.db.QueryRowContext(ctx, "SELECT wa_id FROM accounts WHERE id = ?", accountID).Scan(&n.WaID)
	return n, err
}

func (b batch) without(ids []int64) batch {
	gone := make(map[int64]bool, len(ids))
	for _, id := range ids {
		gone[id] = true
	}
	out := batch{account: b.account, kind: b.kind}
	for _, e := range b.events {
		if !gone[e.id] {
			out.events = append(out.events, e)
		}
	}
	return out
}

// send POSTs one body (signed when signature is set).
func (d *Dispatcher) send(ctx context.Context, app settings.Application, body []byte, signature string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, app.Webhooks.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range app.Webhooks.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "openwaba-webhook/1")
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	c := d.client
	if app.Webhooks.ByTenant {
		c = d.guarded
	}
	resp, err := c.Do(req)
	if err != nil {
		return errors.New(egress.Describe(err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

// reschedule sets the next attempt of the batch's events (counting a failed
// attempt when failed).
func (d *Dispatcher) reschedule(ctx context.Context, b batch, at time.Time, failed bool) {
	q := "UPDATE webhook_events SET next_attempt_at = ? WHERE id IN (%s)"
	if failed {
		q = "UPDATE webhook_events SET next_attempt_at = ?, attempts = attempts + 1 WHERE id IN (%s)"
	}
	if err := execIDs(context.WithoutCancel(ctx), d.db, q, b.ids(), at.UnixMilli()); err != nil {
		d.log.Error("webhook: rescheduling failed (events retry after the claim expires)", "err", err)
		return
	}
	d.mu.Lock()
	if d.nextDue.IsZero() || at.Before(d.nextDue) {
		d.nextDue = at
	}
	d.mu.Unlock()
	d.Wake() // re-evaluate the sleep
}

// release makes claimed events due again at once.
func (d *Dispatcher) release(ctx context.Context, b batch) {
	execIDs(ctx, d.db, "UPDATE webhook_events SET next_attempt_at = ? WHERE id IN (%s)", b.ids(), db.NowMillis())
}

type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// execIDs runs q (with one %s for the id list) with first as its first
// argument followed by the ids.
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
