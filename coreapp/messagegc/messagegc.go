// Package messagegc removes old messages from the database (on-prem's
// PUT /v1/services/message/gc).
//
// What goes: outbound messages whose last status is final (delivered, read
// or failed) and that have not changed for the retention period
// (WA_MESSAGE_RETENTION, 30 days by default), with their bodies and
// ciphertexts, and inbound messages received before it. What stays: every
// outbound message still waiting for the network or the customer (accepted,
// sent), so nothing that can still be delivered is lost; webhook events
// (pruned by the dispatcher on their own retention); contacts; media (its own
// collection, PUT /v1/services/media/gc). After collection a status or a
// read receipt for a removed message is ignored, and PUT /v1/messages/{id}
// of a removed inbound message answers 404, as for any unknown id.
//
// The tables are walked once in primary-key order: a page of matching
// rows is read outside any transaction and deleted in a short one, so a
// collection never holds locks that sends wait for for long, and needs no
// index of its own (which every send would pay for).
// Completion is reported by webhook:
// {"services":[{"message":{"gc":{"messages_deleted":N,"status":"complete"}}}]}.
package messagegc

import (
	"context"
	"database/sql"
	"log/slog"
	"slices"
	"time"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/coreapp/send"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
)

// DefaultRetention is how long a finished message is kept.
const DefaultRetention = 30 * 24 * time.Hour

// page is the most rows one transaction reads and deletes.
const page = 1000

// finalStatuses are the outbound statuses after which nothing is sent.
var finalStatuses = []any{send.StatusDelivered, send.StatusRead, send.StatusFailed}

// Collector serves collection requests, one at a time.
type Collector struct {
	db        *sql.DB
	log       *slog.Logger
	wake      func() // the webhook dispatcher's
	retention time.Duration
	req       chan int64
}

// New returns a Collector; retention <= 0 is DefaultRetention. wake is
// called after a report is queued.
func New(d *sql.DB, log *slog.Logger, retention time.Duration, wake func()) *Collector {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if wake == nil {
		wake = func() {}
	}
	return &Collector{db: d, log: log, wake: wake, retention: retention, req: make(chan int64, 16)}
}

// Request asks for a collection of the account's messages; it runs in the
// background (Run) and reports by webhook.
func (c *Collector) Request(ctx context.Context, accountID int64) error {
	select {
	case c.req <- accountID:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run serves Request until ctx ends.
func (c *Collector) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case acct := <-c.req:
			n, err := c.Collect(ctx, acct, time.Now().Add(-c.retention))
			if ctx.Err() != nil {
				return
			}
			c.report(ctx, acct, n, err)
		}
	}
}

// Collect deletes the account's messages finished before cutoff and
// returns how many went.
func (c *Collector) Collect(ctx context.Context, accountID int64, cutoff time.Time) (int, error) {
	before := cutoff.UnixMilli()
	final := "status IN (" + db.Placeholders(len(finalStatuses)) + ") AND updated_at < ?"
	out, err := c.walk(ctx, "outbound_messages", accountID, final, append(slices.Clone(finalStatuses), before))
	if err != nil {
		return out, err
	}
	in, err := c.walk(ctx, "inbound_messages", accountID, "created_at < ?", []any{before})
	return out + in, err
}

// walk deletes the account's rows of table that match cond (with args), a
// page at a time in seq order. The page is read outside any transaction
// (no write lock while the table is scanned: on SQLite a transaction holds
// the one writer lock), then deleted in a short one that checks cond again,
// so a row that changed in between stays.
func (c *Collector) walk(ctx context.Context, table string, accountID int64, cond string, args []any) (int, error) {
	deleted := 0
	var after int64
	for {
		seqs, err := c.page(ctx, "SELECT seq FROM "+table+" WHERE account_id = ? AND seq > ? AND "+cond+" ORDER BY seq LIMIT ?",
			append(append([]any{accountID, after}, args...), page)...)
		if err != nil || len(seqs) == 0 {
			return deleted, err
		}
		var n int64
		err = db.Tx(ctx, c.db, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE seq IN ("+db.Placeholders(len(seqs))+") AND "+cond, append(seqs, args...)...)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return deleted, err
		}
		deleted += int(n) // once committed (db.Tx may retry the function)
		if len(seqs) < page {
			return deleted, ctx.Err()
		}
		after = seqs[len(seqs)-1].(int64)
	}
}

// page reads one page of seqs.
func (c *Collector) page(ctx context.Context, q string, args ...any) ([]any, error) {
	rows, err := c.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var seqs []any
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return nil, err
		}
		seqs = append(seqs, seq)
	}
	return seqs, rows.Err()
}

// report is the services[] entry of a collection.
type report struct {
	Message struct {
		GC struct {
			MessagesDeleted int             `json:"messages_deleted"`
			Errors          []webhook.Error `json:"errors,omitempty"`
			Status          string          `json:"status"`
		} `json:"gc"`
	} `json:"message"`
}

func (c *Collector) report(ctx context.Context, acct int64, n int, err error) {
	var r report
	r.Message.GC.MessagesDeleted, r.Message.GC.Status = n, "complete"
	if err != nil {
		c.log.Error("message garbage collection failed", "err", err, "messages_deleted", n)
		r.Message.GC.Status = "failed"
		r.Message.GC.Errors = []webhook.Error{webhook.Err(errcode.Internal, "Could not delete messages")}
	} else {
		c.log.Info("message garbage collection complete", "messages_deleted", n)
	}
	if err := db.Tx(ctx, c.db, func(tx *sql.Tx) error {
		return webhook.Enqueue(tx, webhook.ServiceEvent(acct, r))
	}); err != nil {
		c.log.Error("reporting message garbage collection failed", "err", err)
		return
	}
	c.wake()
}
