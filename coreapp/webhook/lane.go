package webhook

import (
	"context"
	"sync"
	"time"

	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/db"
)

// Lanes: each endpoint of each number has its own queue on a node, drained
// by up to max_concurrent_requests senders of its own. A sender that is
// free takes the next POST's worth (up to MaxBatch events of one kind in
// the on-prem envelope), so behind a slow receiver batches fill up instead
// of queueing one POST per claim round, and a slow or failing endpoint
// holds only its own senders: never another endpoint's or the dispatcher
// loop.

const (
	// laneCap is the most deliveries a lane holds in memory
	// (Dispatcher.laneCap), and maxQueued the most all lanes of a node
	// hold; a full lane's endpoint is left out of the claims until it has
	// room, and what a round brings beyond a cap goes back to the table for
	// laneDefer (Dispatcher.laneDefer), or until the lane is half empty
	// again, whichever comes first.
	laneCap   = 20_000
	maxQueued = 100_000
	// laneDefer is how long deliveries that found their lane full wait
	// before they are claimed again, at most.
	laneDefer = 5 * time.Second
	// maxDeferred is the most deferred deliveries a lane remembers to make
	// due again once it is half empty; older deferrals beyond it wait for
	// laneDefer. It bounds memory, so it does not follow Dispatcher.laneCap:
	// a test's small lane must not forget deferrals a real one keeps (a
	// pinned group of MaxBatch is larger than such a lane).
	maxDeferred = 2 * laneCap
	// extendEvery is how often the claims of queued deliveries are
	// renewed: a lane's backlog may take longer than claimTTL to send.
	extendEvery = claimTTL / 3
	// targetTTL is how old a lane's view of its endpoint (URL, headers,
	// secrets) may get before a sender reloads it: a deleted or changed
	// endpoint stops getting the old one's POSTs within it.
	targetTTL = 2 * time.Second
)

// groupKey is what may share a POST: one kind, one pinned batch.
type groupKey struct {
	kind   string
	pinned int64
}

// lane is one endpoint's queue on this node. Its fields are guarded by
// Dispatcher.mu.
type lane struct {
	key     endpointKey
	t       *target // the endpoint as last loaded
	loaded  time.Time
	groups  map[groupKey][]delivery
	order   []groupKey // round robin over groups with deliveries
	queued  int
	senders int
	// claimed is the claim each queued delivery holds in the table (its
	// next_attempt_at), to renew it before it expires.
	claimed map[int64]int64
	// refresh holds what the table says now of queued deliveries claimed
	// again (a replay): take applies their dead age and attempts.
	refresh map[int64]delivery
	// deferred are this endpoint's deliveries that found the lane full and
	// went back to the table (written: their next_attempt_at is the
	// deferral's); they are made due again once the lane is half empty.
	deferred      []deferral
	deferredCount int
}

// deferral is deliveries deferBack put off until at (unix milliseconds).
type deferral struct {
	ids []int64
	at  int64
}

// enqueue puts a round's deliveries into their lanes and starts senders;
// it returns the deliveries that found their lane (or the node) full. A
// delivery this node holds already (queued or being sent: a replay or a
// new URL made it due again) is not queued twice; its claim is noted.
func (d *Dispatcher) enqueue(ctx context.Context, targets map[endpointKey]*target, all []delivery, inflight chan struct{}, senders *sync.WaitGroup) (over []delivery) {
	// A pinned group goes into its lane whole or not at all, so that its
	// POST carries all of it.
	type pinKey struct {
		endpointKey
		pin int64
	}
	groupSize := map[pinKey]int{}
	for _, dl := range all {
		if dl.batch != 0 {
			groupSize[pinKey{endpointKey{dl.account, dl.endpoint}, dl.batch}]++
		}
	}
	admitted, refused := map[pinKey]bool{}, map[pinKey]bool{}
	for _, dl := range all {
		k := endpointKey{dl.account, dl.endpoint}
		t := d.target(ctx, targets, k)
		d.mu.Lock()
		l := d.lanes[k]
		pk := pinKey{k, dl.batch}
		if d.held[dl.id] {
			if l != nil {
				if _, queued := l.claimed[dl.id]; queued {
					if dl.claim > 0 {
						l.claimed[dl.id] = dl.claim
					}
					// A replay restarted its dead age (its POST stays as it was).
					l.refresh[dl.id] = dl
				}
			}
			d.mu.Unlock()
			continue
		}
		switch {
		case dl.batch != 0 && refused[pk]:
			d.mu.Unlock()
			over = append(over, dl)
			continue
		case dl.batch != 0 && !admitted[pk]:
			if n := groupSize[pk]; (l != nil && l.queued+n > d.laneCap && l.queued > 0) || d.queuedTotal+n > maxQueued {
				refused[pk] = true
				d.mu.Unlock()
				over = append(over, dl)
				continue
			}
			admitted[pk] = true
		case dl.batch != 0: // the rest of a group admitted whole
		case (l != nil && l.queued >= d.laneCap) || d.queuedTotal >= maxQueued:
			d.mu.Unlock()
			over = append(over, dl)
			continue
		}
		if l == nil {
			l = &lane{key: k, groups: map[groupKey][]delivery{}, claimed: map[int64]int64{}, refresh: map[int64]delivery{}}
			d.lanes[k] = l
		}
		l.t, l.loaded = t, time.Now()
		g := groupKey{dl.kind, dl.batch}
		if t.err == nil && t.ep.Format == settings.FormatCloud {
			g.pinned = 0 // one event per POST: nothing to keep together
		}
		if _, ok := l.groups[g]; !ok {
			l.order = append(l.order, g)
		}
		l.groups[g] = append(l.groups[g], dl)
		l.queued++
		d.queuedTotal++
		d.held[dl.id] = true
		l.claimed[dl.id] = dl.claim
		concurrency := 1
		if t.err == nil {
			concurrency = max(t.app.Webhooks.MaxConcurrentRequests, 1)
		}
		start := l.senders < concurrency
		if start {
			l.senders++
		}
		d.mu.Unlock()
		if start {
			senders.Go(func() { d.sender(ctx, l, inflight) })
		}
	}
	return over
}

// fullLanes lists the endpoints whose lanes have no room (at most 100), and
// reports whether the node has none at all.
func (d *Dispatcher) fullLanes() (full []endpointKey, none bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, l := range d.lanes {
		if l.queued >= d.laneCap && len(full) < 100 {
			full = append(full, k)
		}
	}
	return full, d.queuedTotal >= maxQueued
}

// take removes the next POST's deliveries from a lane (ok false: empty).
// Call with d.mu held.
func (d *Dispatcher) take(l *lane) (b batch, ok bool) {
	if len(l.order) == 0 {
		return b, false
	}
	g := l.order[0]
	l.order = l.order[1:]
	q := l.groups[g]
	n := min(len(q), MaxBatch)
	if l.t.err == nil && l.t.ep.Format == settings.FormatCloud {
		n = 1
	}
	b = batch{key: l.key, kind: g.kind, pinned: g.pinned, t: l.t, deliveries: q[:n:n]}
	if rest := q[n:]; len(rest) > 0 {
		l.groups[g] = rest
		l.order = append(l.order, g) // round robin: another kind goes next
	} else {
		delete(l.groups, g)
	}
	l.queued -= n
	d.queuedTotal -= n
	for i, dl := range b.deliveries {
		delete(l.claimed, dl.id)
		if r, ok := l.refresh[dl.id]; ok {
			b.deliveries[i].created, b.deliveries[i].attempts = r.created, r.attempts
			delete(l.refresh, dl.id)
		}
	}
	return b, true
}

// done forgets a batch this node has handled (its outcome is recorded or
// on its way).
func (d *Dispatcher) done(b batch) {
	d.mu.Lock()
	for _, dl := range b.deliveries {
		delete(d.held, dl.id)
	}
	d.mu.Unlock()
}

// sender posts a lane's batches one after the other until the lane is
// empty; at most max_concurrent_requests senders run per lane. It takes a
// batch only once it holds one of the node's in-flight slots, so what it
// takes is sent within the claim it holds.
func (d *Dispatcher) sender(ctx context.Context, l *lane, inflight chan struct{}) {
	for {
		// While the endpoint backs off its queue waits here, claimed (the
		// claims are renewed), instead of going back to the table at every
		// retry.
		if wait := d.backingOff(l); wait > 0 && ctx.Err() == nil {
			select {
			case <-time.After(min(wait, time.Second)): // a new URL ends the backoff early
			case <-ctx.Done():
			}
			continue
		}
		slot := false
		select {
		case inflight <- struct{}{}:
			slot = true
		case <-ctx.Done():
		}
		d.mu.Lock()
		stale := ctx.Err() == nil && time.Since(l.loaded) > targetTTL
		d.mu.Unlock()
		if stale {
			t := d.target(ctx, map[endpointKey]*target{}, l.key)
			d.mu.Lock()
			l.t, l.loaded = t, time.Now()
			d.mu.Unlock()
		}
		d.mu.Lock()
		b, ok := d.take(l)
		if !ok || ctx.Err() != nil {
			l.senders--
			if l.queued == 0 && l.senders == 0 && d.lanes[l.key] == l {
				delete(d.lanes, l.key)
			}
			d.mu.Unlock()
			if slot {
				<-inflight
			}
			if ok {
				d.release(context.WithoutCancel(ctx), b) // let another node (or the next start) take them at once
				d.done(b)
			}
			return
		}
		d.mu.Unlock()
		d.deliver(ctx, b)
		d.done(b)
		<-inflight
		d.mu.Lock()
		var due []deferral
		if len(l.deferred) > 0 && l.queued <= d.laneCap/2 {
			due, l.deferred, l.deferredCount = l.deferred, nil, 0
		}
		d.mu.Unlock()
		d.undefer(context.WithoutCancel(ctx), due)
	}
}

// backingOff is how long a lane's endpoint still backs off (0: not).
func (d *Dispatcher) backingOff(l *lane) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	bo, ok := d.backoffs[l.key]
	if !ok || l.t == nil || l.t.err != nil || bo.url != l.t.ep.URL {
		return 0
	}
	return time.Until(bo.until)
}

// drainLanes releases what is still queued when the dispatcher stops.
func (d *Dispatcher) drainLanes(ctx context.Context) {
	d.mu.Lock()
	var ids []int64
	for _, l := range d.lanes {
		for {
			b, ok := d.take(l)
			if !ok {
				break
			}
			ids = append(ids, b.ids()...)
		}
	}
	d.lanes, d.held = map[endpointKey]*lane{}, map[int64]bool{}
	d.mu.Unlock()
	for start := 0; start < len(ids); start += 1000 {
		d.releaseIDs(ctx, ids[start:min(start+1000, len(ids))])
	}
}

// extendClaims renews the claims of deliveries queued for longer than
// extendEvery, so no other claimer takes them while they wait. Only a claim
// still as this node wrote it is renewed: a row whose outcome was recorded
// meanwhile (or that was made due again) keeps what it has.
func (d *Dispatcher) extendClaims(ctx context.Context) {
	now := db.NowMillis()
	byClaim := map[int64][]int64{}
	d.mu.Lock()
	for _, l := range d.lanes {
		for id, exp := range l.claimed {
			if exp > 0 && exp-now <= claimTTL.Milliseconds()-extendEvery.Milliseconds() {
				byClaim[exp] = append(byClaim[exp], id)
			}
		}
	}
	d.mu.Unlock()
	for old, ids := range byClaim {
		for start := 0; start < len(ids); start += 1000 {
			part := ids[start:min(start+1000, len(ids))]
			exp := db.NowMillis() + claimTTL.Milliseconds()
			if err := execIDs(ctx, d.db, "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE next_attempt_at = ? AND id IN (%s)", part, exp, old); err != nil {
				d.log.Warn("webhook: renewing the claims of queued deliveries failed (another node may send them too)", "err", err)
				return
			}
			d.mu.Lock()
			for _, l := range d.lanes {
				for _, id := range part {
					if l.claimed[id] == old {
						l.claimed[id] = exp
					}
				}
			}
			d.mu.Unlock()
		}
	}
}

// deferBack returns deliveries whose lane was full to the table, due again
// after laneDefer, or when their endpoint's backoff ends if that is later;
// their state and attempts stay as they are. Once the deferral is written,
// the lane notes it, so that its senders make them due again as soon as it
// is half empty (undefer) instead of leaving it idle until then.
func (d *Dispatcher) deferBack(over []delivery) {
	groups := map[endpointKey][]int64{}
	for _, dl := range over {
		k := endpointKey{dl.account, dl.endpoint}
		groups[k] = append(groups[k], dl.id)
	}
	for k, ids := range groups {
		at := time.Now().Add(d.laneDefer)
		backoff := false
		d.mu.Lock()
		l := d.lanes[k]
		d.mu.Unlock()
		if l != nil {
			if wait := d.backingOff(l); wait > d.laneDefer {
				at, backoff = time.Now().Add(wait), true
			}
		}
		df := deferral{ids: ids, at: at.UnixMilli()}
		d.results.Go(result{ids: ids, keep: true, next: df.at}, func(err error) {
			if err != nil {
				d.log.Error("webhook: deferring deliveries of a full lane failed (they are retried when their claim expires)", "err", err)
				return
			}
			if backoff {
				return // the endpoint fails: they wait for its backoff
			}
			d.mu.Lock()
			l := d.lanes[k]
			room := l == nil || l.queued <= d.laneCap/2
			if !room {
				l.deferred = append(l.deferred, df)
				l.deferredCount += len(df.ids)
				for l.deferredCount > maxDeferred && len(l.deferred) > 1 { // the oldest wait for at
					l.deferredCount -= len(l.deferred[0].ids)
					l.deferred = l.deferred[1:]
				}
			}
			d.mu.Unlock()
			if room { // the lane drained while the deferral was written
				d.undefer(context.Background(), []deferral{df})
			}
		})
		d.remember(at) // no wake-up: the loop must not claim again at once
	}
}

// undefer makes deferred deliveries due now and wakes the loop to claim
// them. A delivery whose next_attempt_at is no longer its deferral's (it
// came due and something claimed it) is left as it is.
func (d *Dispatcher) undefer(ctx context.Context, ds []deferral) {
	if len(ds) == 0 {
		return
	}
	now := db.NowMillis()
	for _, df := range ds {
		for start := 0; start < len(df.ids); start += 1000 {
			part := df.ids[start:min(start+1000, len(df.ids))]
			if err := execIDs(ctx, d.db, "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE next_attempt_at = ? AND id IN (%s)", part, now, df.at); err != nil {
				d.log.Warn("webhook: making deferred deliveries due failed (they are claimed when their deferral ends)", "err", err)
			}
		}
	}
	d.Wake()
}
