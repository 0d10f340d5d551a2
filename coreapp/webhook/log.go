package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/openwaba/openwaba/db"
)

// Attempt is one logged POST of a delivery.
type Attempt struct {
	N          int
	At         time.Time
	URL        string
	HTTPStatus int // 0: no answer (Error says why)
	Latency    time.Duration
	Response   string // its first ResponseKept bytes
	Error      string
}

// Delivery is one event's delivery to one endpoint, as the log shows it.
type Delivery struct {
	ID, EventID, EndpointID int64
	Kind, Topic, Ref        string
	State                   string
	Attempts                int
	CreatedAt, UpdatedAt    time.Time
	// NextAttemptAt is zero when none is planned (delivered, dead).
	NextAttemptAt time.Time
	Event         json.RawMessage
	Log           []Attempt
}

// Filter selects deliveries; zero fields select everything.
type Filter struct {
	States []int
	// Topic is a topic or its group ("statuses").
	Topic        string
	Since, Until time.Time // the event's creation, Until excluded
	Ref          string    // a message id
	Endpoint     *int64
	// Before pages: only deliveries with a smaller id (newest first).
	Before int64
	Limit  int
}

// MaxPage is the most deliveries one page lists.
const MaxPage = 100

func (f Filter) where(accountID int64) (string, []any) {
	conds := []string{"d.account_id = ?"}
	args := []any{accountID}
	if len(f.States) > 0 {
		conds = append(conds, "d.state IN (?"+strings.Repeat(",?", len(f.States)-1)+")")
		for _, s := range f.States {
			args = append(args, s)
		}
	}
	if f.Topic != "" {
		if strings.Contains(f.Topic, ".") {
			conds, args = append(conds, "e.topic = ?"), append(args, f.Topic)
		} else {
			conds, args = append(conds, "(e.topic = ? OR e.topic LIKE ?)"), append(args, f.Topic, f.Topic+".%")
		}
	}
	if !f.Since.IsZero() {
		conds, args = append(conds, "d.created_at >= ?"), append(args, f.Since.UnixMilli())
	}
	if !f.Until.IsZero() {
		conds, args = append(conds, "d.created_at < ?"), append(args, f.Until.UnixMilli())
	}
	if f.Ref != "" {
		conds, args = append(conds, "e.account_id = ? AND e.ref = ?"), append(args, accountID, f.Ref)
	}
	if f.Endpoint != nil {
		conds, args = append(conds, "d.endpoint_id = ?"), append(args, *f.Endpoint)
	}
	if f.Before > 0 {
		conds, args = append(conds, "d.id < ?"), append(args, f.Before)
	}
	return strings.Join(conds, " AND "), args
}

// Deliveries lists a number's deliveries, newest first, with their
// attempts; more reports whether another page follows.
func (d *Dispatcher) Deliveries(ctx context.Context, accountID int64, f Filter) (out []Delivery, more bool, err error) {
	if f.Limit <= 0 || f.Limit > MaxPage {
		f.Limit = MaxPage
	}
	where, args := f.where(accountID)
	rows, err := d.db.QueryContext(ctx, "SELECT d.id, d.event_id, d.endpoint_id, e.kind, e.topic, e.ref, d.state, d.attempts, d.created_at, d.updated_at, d.next_attempt_at, e.payload"+
		" FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE "+where+" ORDER BY d.id DESC LIMIT ?", append(args, f.Limit+1)...)
	if err != nil {
		return nil, false, err
	}
	byID := map[int64]int{}
	for rows.Next() {
		var (
			dl               Delivery
			state            int
			created, updated int64
			next             int64
			payload          []byte
		)
		if err := rows.Scan(&dl.ID, &dl.EventID, &dl.EndpointID, &dl.Kind, &dl.Topic, &dl.Ref, &state, &dl.Attempts, &created, &updated, &next, &payload); err != nil {
			rows.Close()
			return nil, false, err
		}
		dl.State = StateNames[min(max(state, 0), len(StateNames)-1)]
		dl.CreatedAt, dl.UpdatedAt, dl.Event = time.UnixMilli(created), time.UnixMilli(updated), payload
		if next != never {
			dl.NextAttemptAt = time.UnixMilli(next)
		}
		byID[dl.ID] = len(out)
		out = append(out, dl)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if len(out) > f.Limit {
		out, more = out[:f.Limit], true
	}
	if len(out) == 0 {
		return out, more, nil
	}
	ids := make([]any, len(out))
	for i, dl := range out {
		ids[i] = dl.ID
	}
	arows, err := d.db.QueryContext(ctx, "SELECT delivery_id, n, at, url, http_status, latency_ms, response, error FROM webhook_attempts WHERE delivery_id IN (?"+strings.Repeat(",?", len(ids)-1)+") ORDER BY delivery_id, n", ids...)
	if err != nil {
		return nil, false, err
	}
	defer arows.Close()
	for arows.Next() {
		var (
			id, at, latency int64
			a               Attempt
			resp            []byte
		)
		if err := arows.Scan(&id, &a.N, &at, &a.URL, &a.HTTPStatus, &latency, &resp, &a.Error); err != nil {
			return nil, false, err
		}
		a.At, a.Latency, a.Response = time.UnixMilli(at), time.Duration(latency)*time.Millisecond, string(resp)
		if i, ok := byID[id]; ok && i < len(out) {
			out[i].Log = append(out[i].Log, a)
		}
	}
	return out, more, arows.Err()
}

// ErrNoDelivery is a delivery id the number does not have.
var ErrNoDelivery = errors.New("no such webhook delivery")

// MaxReplay is the most deliveries one bulk replay re-sends.
const MaxReplay = 100_000

// Replay sends a delivery again, with the same event and event id, whatever
// its state; its log keeps the earlier attempts, and its dead age starts
// again.
func (d *Dispatcher) Replay(ctx context.Context, accountID, id int64) error {
	now := db.NowMillis()
	res, err := d.db.ExecContext(ctx, "UPDATE webhook_deliveries SET state = ?, batch = 0, next_attempt_at = ?, updated_at = ?, retry_since = ? WHERE account_id = ? AND id = ?",
		StatePending, now, now, now, accountID, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var exists int
		if err := d.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM webhook_deliveries WHERE account_id = ? AND id = ?", accountID, id).Scan(&exists); err != nil {
			return err
		}
		if exists == 0 {
			return ErrNoDelivery
		}
	}
	d.Wake()
	return nil
}

// ReplayMatching replays every delivery f selects (at most MaxReplay;
// f.Limit and f.Before are ignored) and returns how many.
func (d *Dispatcher) ReplayMatching(ctx context.Context, accountID int64, f Filter) (int, error) {
	f.Before, f.Limit = 0, 0
	where, args := f.where(accountID)
	var ids []int64
	rows, err := d.db.QueryContext(ctx, "SELECT d.id FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE "+where+" ORDER BY d.id LIMIT ?", append(args, MaxReplay)...)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	now := db.NowMillis()
	for start := 0; start < len(ids); start += 1000 {
		part := ids[start:min(start+1000, len(ids))]
		if err := execIDs(ctx, d.db, "UPDATE webhook_deliveries SET state = ?, batch = 0, next_attempt_at = ?, updated_at = ?, retry_since = ? WHERE id IN (%s)", part, StatePending, now, now, now); err != nil {
			return start, err
		}
	}
	d.Wake()
	return len(ids), nil
}

// Counts is how many of a number's deliveries are failing and dead (health
// and stats).
func (d *Dispatcher) Counts(ctx context.Context, accountID int64) (failing, dead int, err error) {
	rows, err := d.db.QueryContext(ctx, "SELECT state, COUNT(*) FROM webhook_deliveries WHERE state IN (?, ?) AND account_id = ? GROUP BY state", StateFailing, StateDead, accountID)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var s, n int
		if err := rows.Scan(&s, &n); err != nil {
			return 0, 0, err
		}
		if s == StateFailing {
			failing = n
		} else {
			dead = n
		}
	}
	return failing, dead, rows.Err()
}
