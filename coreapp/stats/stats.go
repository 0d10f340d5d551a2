// Package stats measures what on-prem's /v1/stats/app and /v1/stats/db
// answer, for one number on one node: metric objects of on-prem's shape
// ({"type","help","data":[{"labels","value"}]}), each point labelled with
// the node.
//
// App stats are the number's work: its outbound messages by status (the
// accepted ones are the pending sends), its inbound messages, its webhook
// deliveries waiting (the callback queue), failing and dead, this node's
// webhook POSTs by result and its uptime. DB stats are the rows the number
// holds in each table and, for the admin and the monitoring key only, the
// size of every table of the deployment (MySQL; the file's size on
// SQLite). Counts are read in one query per table; on a very large
// database /v1/stats/db is expensive, as on-prem warns.
package stats

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/openwaba/openwaba/coreapp/send"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// NodeLocal names the app metrics each node measures of its own (the
// others are read from the shared database): with several nodes, every
// node's points are gathered (coreapp/rpc).
var NodeLocal = map[string]bool{"callback_requests": true, "uptime_seconds": true}

// Source is what App needs besides the database.
type Source struct {
	DB      *sql.DB
	Node    string
	Started time.Time
	// Posts is this node's webhook POSTs by result (webhook.Dispatcher.Posts).
	Posts func() (success, failure int64)
}

func point(node string, v float64, kv ...string) *corev1.MetricPoint {
	p := &corev1.MetricPoint{Labels: map[string]string{"node": node}, Value: v}
	for i := 0; i+1 < len(kv); i += 2 {
		p.Labels[kv[i]] = kv[i+1]
	}
	return p
}

var statusNames = map[int]string{send.StatusAccepted: "accepted", send.StatusSent: "sent", send.StatusDelivered: "delivered", send.StatusRead: "read", send.StatusFailed: "failed"}

// App returns the number's app stats.
func (s Source) App(ctx context.Context, accountID int64) ([]*corev1.Metric, error) {
	byStatus := map[int]int64{}
	if err := groupCount(ctx, s.DB, "SELECT status, COUNT(*) FROM outbound_messages WHERE account_id = ? GROUP BY status", accountID, byStatus); err != nil {
		return nil, fmt.Errorf("outbound messages: %w", err)
	}
	byState := map[int]int64{}
	if err := groupCount(ctx, s.DB, "SELECT state, COUNT(*) FROM webhook_deliveries WHERE account_id = ? GROUP BY state", accountID, byState); err != nil {
		return nil, fmt.Errorf("webhook deliveries: %w", err)
	}
	var inbound int64
	if err := s.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM inbound_messages WHERE account_id = ?", accountID).Scan(&inbound); err != nil {
		return nil, fmt.Errorf("inbound messages: %w", err)
	}
	msgs := &corev1.Metric{Name: "messages", Type: "gauge", Help: "Outbound messages kept, by status"}
	for _, st := range []int{send.StatusAccepted, send.StatusSent, send.StatusDelivered, send.StatusRead, send.StatusFailed} {
		msgs.Data = append(msgs.Data, point(s.Node, float64(byStatus[st]), "status", statusNames[st]))
	}
	success, failure := int64(0), int64(0)
	if s.Posts != nil {
		success, failure = s.Posts()
	}
	return []*corev1.Metric{
		msgs,
		{Name: "pending_messages", Type: "gauge", Help: "Messages accepted and not yet sent to the network", Data: []*corev1.MetricPoint{point(s.Node, float64(byStatus[send.StatusAccepted]))}},
		{Name: "inbound_messages", Type: "gauge", Help: "Inbound messages kept", Data: []*corev1.MetricPoint{point(s.Node, float64(inbound))}},
		{Name: "callback_queue_size", Type: "gauge", Help: "Current callback queue size: webhook deliveries not yet delivered", Data: []*corev1.MetricPoint{
			point(s.Node, float64(byState[webhook.StatePending]+byState[webhook.StateFailing]))}},
		{Name: "callback_deliveries", Type: "gauge", Help: "Webhook deliveries kept, by state", Data: []*corev1.MetricPoint{
			point(s.Node, float64(byState[webhook.StatePending]), "state", "pending"),
			point(s.Node, float64(byState[webhook.StateFailing]), "state", "failing"),
			point(s.Node, float64(byState[webhook.StateDead]), "state", "dead"),
			point(s.Node, float64(byState[webhook.StateDelivered]), "state", "delivered"),
		}},
		{Name: "callback_requests", Type: "counter", Help: "Webhook POSTs made by this node since it started, by result", Data: []*corev1.MetricPoint{
			point(s.Node, float64(success), "result", "success"), point(s.Node, float64(failure), "result", "failure")}},
		{Name: "uptime_seconds", Type: "gauge", Help: "Seconds since this coreapp started", Data: []*corev1.MetricPoint{point(s.Node, time.Since(s.Started).Truncate(time.Second).Seconds())}},
	}, nil
}

// accountTables are the tables Tables counts for a number.
var accountTables = []string{"outbound_messages", "inbound_messages", "outbound_receipts", "contacts", "media", "webhook_events", "webhook_deliveries", "signal_sessions", "signal_prekeys"}

// Tables returns the number's database stats; sizes adds every table's size
// (deployment-wide: for the admin and the monitoring key).
func (s Source) Tables(ctx context.Context, accountID int64, sizes bool) ([]*corev1.Metric, error) {
	rows := &corev1.Metric{Name: "db_rows", Type: "gauge", Help: "Rows the number holds, by table"}
	for _, t := range accountTables {
		var n int64
		if err := s.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t+" WHERE account_id = ?", accountID).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		rows.Data = append(rows.Data, point(s.Node, float64(n), "table", t))
	}
	out := []*corev1.Metric{rows}
	if !sizes {
		return out, nil
	}
	size := &corev1.Metric{Name: "db_size_bytes", Type: "gauge", Help: "Bytes the deployment's tables take, data and indexes"}
	if db.IsSQLite(s.DB) {
		var pages, pageSize int64
		if err := s.DB.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
			return nil, err
		}
		if err := s.DB.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
			return nil, err
		}
		size.Data = append(size.Data, point(s.Node, float64(pages*pageSize), "table", "*"))
		return append(out, size), nil
	}
	r, err := s.DB.QueryContext(ctx, "SELECT table_name, COALESCE(data_length, 0) + COALESCE(index_length, 0) FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY table_name")
	if err != nil {
		return nil, err
	}
	defer r.Close()
	for r.Next() {
		var name string
		var n int64
		if err := r.Scan(&name, &n); err != nil {
			return nil, err
		}
		size.Data = append(size.Data, point(s.Node, float64(n), "table", name))
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return append(out, size), nil
}

func groupCount(ctx context.Context, d *sql.DB, q string, accountID int64, out map[int]int64) error {
	r, err := d.QueryContext(ctx, q, accountID)
	if err != nil {
		return err
	}
	defer r.Close()
	for r.Next() {
		var k int
		var n int64
		if err := r.Scan(&k, &n); err != nil {
			return err
		}
		out[k] = n
	}
	return r.Err()
}
