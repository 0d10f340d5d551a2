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
	// laneCap is the most deliveries a lane holds in memory; the rest of a
	// claim round for a full lane goes back to the table for laneDefer.
	laneCap = 20_000
	// laneDefer is how long deliveries that found their lane full wait
	// before they are claimed again.
	laneDefer = 5 * time.Second
	// extendEvery is how often the claims of queued deliveries are
	// renewed: a lane's backlog may take longer than claimTTL to send.
	extendEvery = claimTTL / 3
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
	t       *target // the latest round's view of the endpoint
	groups  map[groupKey][]delivery
	order   []groupKey // round robin over groups with deliveries
	queued  int
	senders int
	// claimed is when the claims of the queued deliveries were last set
	// (per delivery id), to renew them before they expire.
	claimed map[int64]int64
}

// enqueue puts a round's deliveries into their lanes and starts senders;
// it returns the deliveries that found their lane full.
func (d *Dispatcher) enqueue(ctx context.Context, targets map[endpointKey]*target, all []delivery, inflight chan struct{}, senders *sync.WaitGroup) (over []delivery) {
	now := db.NowMillis()
	for _, dl := range all {
		k := endpointKey{dl.account, dl.endpoint}
		t := d.target(ctx, targets, k)
		d.mu.Lock()
		l := d.lanes[k]
		if l == nil {
			l = &lane{key: k, groups: map[groupKey][]delivery{}, claimed: map[int64]int64{}}
			d.lanes[k] = l
		}
		l.t = t
		if l.queued >= laneCap {
			d.mu.Unlock()
			over = append(over, dl)
			continue
		}
		g := groupKey{dl.kind, dl.batch}
		if t.err == nil && t.ep.Format == settings.FormatCloud {
			g.pinned = 0 // one event per POST: nothing to keep together
		}
		if _, ok := l.groups[g]; !ok {
			l.order = append(l.order, g)
		}
		l.groups[g] = append(l.groups[g], dl)
		l.queued++
		l.claimed[dl.id] = now
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

// take removes the next POST's deliveries from a lane (ok false: empty).
// Call with d.mu held.
func (l *lane) take() (b batch, ok bool) {
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
	for _, dl := range b.deliveries {
		delete(l.claimed, dl.id)
	}
	return b, true
}

// sender posts a lane's batches one after the other until the lane is
// empty; at most max_concurrent_requests senders run per lane.
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
		d.mu.Lock()
		b, ok := l.take()
		if !ok || ctx.Err() != nil {
			l.senders--
			if l.queued == 0 && l.senders == 0 {
				delete(d.lanes, l.key)
			}
			d.mu.Unlock()
			if ok {
				d.release(context.WithoutCancel(ctx), b)
			}
			return
		}
		d.mu.Unlock()
		select {
		case inflight <- struct{}{}:
		case <-ctx.Done():
			d.release(context.WithoutCancel(ctx), b) // let another node (or the next start) take them at once
			continue
		}
		d.deliver(ctx, b)
		<-inflight
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
	var left []batch
	for _, l := range d.lanes {
		for {
			b, ok := l.take()
			if !ok {
				break
			}
			left = append(left, b)
		}
	}
	d.lanes = map[endpointKey]*lane{}
	d.mu.Unlock()
	for _, b := range left {
		d.release(ctx, b)
	}
}

// extendClaims renews the claims of deliveries queued for longer than
// extendEvery, so no other claimer takes them while they wait.
func (d *Dispatcher) extendClaims(ctx context.Context) {
	now := db.NowMillis()
	var ids []int64
	d.mu.Lock()
	for _, l := range d.lanes {
		for id, at := range l.claimed {
			if now-at >= extendEvery.Milliseconds() {
				ids = append(ids, id)
				l.claimed[id] = now
			}
		}
	}
	d.mu.Unlock()
	for start := 0; start < len(ids); start += 1000 {
		part := ids[start:min(start+1000, len(ids))]
		if err := execIDs(ctx, d.db, "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id IN (%s)", part, now+claimTTL.Milliseconds()); err != nil {
			d.log.Warn("webhook: renewing the claims of queued deliveries failed (another node may send them too)", "err", err)
			return
		}
	}
}

// deferBack returns deliveries whose lane was full to the table, due again
// after laneDefer, or when their endpoint's backoff ends if that is later;
// no attempt is counted.
func (d *Dispatcher) deferBack(over []delivery) {
	type key struct {
		ep    endpointKey
		state int
		pin   int64
	}
	groups := map[key][]int64{}
	for _, dl := range over {
		k := key{endpointKey{dl.account, dl.endpoint}, StatePending, dl.batch}
		if dl.attempts > 0 {
			k.state = StateFailing
		}
		groups[k] = append(groups[k], dl.id)
	}
	for k, ids := range groups {
		at := time.Now().Add(laneDefer)
		d.mu.Lock()
		l := d.lanes[k.ep]
		d.mu.Unlock()
		if l != nil {
			if wait := d.backingOff(l); wait > laneDefer {
				at = time.Now().Add(wait)
			}
		}
		d.results.Go(result{ids: ids, state: k.state, next: at.UnixMilli(), pin: k.pin}, func(err error) {
			if err != nil {
				d.log.Error("webhook: deferring deliveries of a full lane failed (they are retried when their claim expires)", "err", err)
			}
		})
		d.scheduled(at)
	}
}
