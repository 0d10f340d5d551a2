// Package ratelimit limits API requests per caller, as on-prem's request
// rate limiting does: a token bucket per route group and caller (a
// number's API key, a user), 429 with Retry-After when it is empty.
//
// The defaults are on-prem's (docs.360dialog.com, "Capacity Rate Limits":
// since v2.25.3 the messages endpoint takes 50 requests per second with
// bursts up to 150, every other endpoint 20 with bursts up to 60).
//
// Every webapp of a deployment enforces its share: the webapps beat in the
// webapp_nodes table every BeatEvery, and each one's buckets fill at the
// configured rate divided by the webapps alive (beaten within Alive), so
// two webapps behind a load balancer do not double a limit. A share is
// exact when the balancer spreads a caller's requests evenly and looser
// (by up to the number of webapps) when it does not; the burst is shared
// the same way.
package ratelimit

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/openwaba/openwaba/db"
)

// Limit is a rate (requests per second) and a burst; a zero Rate is no
// limit.
type Limit struct {
	Rate  float64
	Burst int
}

// Off reports whether l limits nothing.
func (l Limit) Off() bool { return l.Rate <= 0 }

func (l Limit) String() string {
	if l.Off() {
		return "off"
	}
	return strconv.FormatFloat(l.Rate, 'g', -1, 64) + "/" + strconv.Itoa(l.Burst)
}

// Parse reads "RATE/BURST" ("50/150"), "RATE" (burst = 3×rate, as
// on-prem's) or "off" / "0".
func Parse(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "off" || s == "0" {
		return Limit{}, nil
	}
	r, b, hasBurst := strings.Cut(s, "/")
	rt, err := strconv.ParseFloat(r, 64)
	if err != nil || rt < 0 || math.IsInf(rt, 0) || math.IsNaN(rt) {
		return Limit{}, fmt.Errorf("rate limit %q: want RATE/BURST, e.g. 50/150, or off", s)
	}
	burst := int(math.Ceil(3 * rt))
	if hasBurst {
		if burst, err = strconv.Atoi(b); err != nil || burst < 1 {
			return Limit{}, fmt.Errorf("rate limit %q: the burst must be a whole number of at least 1", s)
		}
	}
	return Limit{Rate: rt, Burst: max(burst, 1)}, nil
}

// Groups of routes with a limit each.
const (
	GroupMessages = "messages"
	GroupDefault  = "default"
)

// Defaults are on-prem's limits.
var Defaults = map[string]Limit{GroupMessages: {50, 150}, GroupDefault: {20, 60}}

// Timing of the webapps' heartbeats.
const (
	BeatEvery = 5 * time.Second
	Alive     = 3 * BeatEvery
	// idle is how long an unused bucket is kept.
	idle = 10 * time.Minute
)

// Limiter holds the buckets of one webapp.
type Limiter struct {
	limits map[string]Limit
	db     *sql.DB
	node   string
	log    *slog.Logger

	mu      sync.Mutex
	share   int // webapps alive, this one included (at least 1)
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// New returns a Limiter of limits by group (missing groups are
// GroupDefault's). d and node (this webapp's id) make it share the limits
// with the other webapps (Run); with a nil d it enforces them alone.
func New(limits map[string]Limit, d *sql.DB, node string, log *slog.Logger) *Limiter {
	return &Limiter{limits: limits, db: d, node: node, log: log, share: 1, buckets: map[string]*bucket{}}
}

// Allow takes a token of group for caller, or says how long until one is
// there.
func (l *Limiter) Allow(group, caller string, now time.Time) (ok bool, retryAfter time.Duration) {
	lim, found := l.limits[group]
	if !found {
		lim = l.limits[GroupDefault]
	}
	if lim.Off() {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	key := group + "\x00" + caller
	b := l.buckets[key]
	r, burst := l.shareOf(lim)
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(r, burst)}
		l.buckets[key] = b
	} else if b.lim.Limit() != r || b.lim.Burst() != burst {
		b.lim.SetLimitAt(now, r)
		b.lim.SetBurstAt(now, burst)
	}
	b.used = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// shareOf is this webapp's part of lim; l.mu is held.
func (l *Limiter) shareOf(lim Limit) (rate.Limit, int) {
	n := max(l.share, 1)
	return rate.Limit(lim.Rate / float64(n)), max(lim.Burst/n, 1)
}

// Share is how many webapps the limits are shared among now.
func (l *Limiter) Share() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.share
}

// Run beats and counts the webapps alive every BeatEvery, and forgets idle
// buckets, until ctx ends; then it removes this webapp's row.
func (l *Limiter) Run(ctx context.Context) {
	if l.db == nil {
		return
	}
	t := time.NewTicker(BeatEvery)
	defer t.Stop()
	for {
		if err := l.beat(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("rate limits: counting the webapps failed; keeping the last share", "err", err)
		}
		l.prune(time.Now())
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			l.db.ExecContext(dctx, "DELETE FROM webapp_nodes WHERE id = ?", l.node)
			return
		case <-t.C:
		}
	}
}

// beat writes this webapp's heartbeat and counts the webapps alive, on the
// database's clock (db.NowSQL: the hosts' clocks may differ), and removes
// the rows of webapps gone for an hour.
func (l *Limiter) beat(ctx context.Context) error {
	res, err := l.db.ExecContext(ctx, "UPDATE webapp_nodes SET heartbeat_at = "+db.NowSQL+" WHERE id = ?", l.node)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		if _, err := l.db.ExecContext(ctx, "INSERT INTO webapp_nodes (id, heartbeat_at) VALUES (?, "+db.NowSQL+")", l.node); err != nil {
			return err
		}
	}
	if _, err := l.db.ExecContext(ctx, "DELETE FROM webapp_nodes WHERE heartbeat_at < "+db.NowSQL+" - ?", time.Hour.Milliseconds()); err != nil {
		return err
	}
	var alive int
	if err := l.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM webapp_nodes WHERE heartbeat_at > "+db.NowSQL+" - ?", Alive.Milliseconds()).Scan(&alive); err != nil {
		return err
	}
	l.mu.Lock()
	changed := l.share != max(alive, 1)
	l.share = max(alive, 1)
	l.mu.Unlock()
	if changed {
		l.log.Info("rate limits shared among the webapps alive", "webapps", max(alive, 1))
	}
	return nil
}

func (l *Limiter) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, b := range l.buckets {
		if now.Sub(b.used) > idle {
			delete(l.buckets, k)
		}
	}
}
