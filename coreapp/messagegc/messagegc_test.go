package messagegc

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/openwaba/openwaba/coreapp/send"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
)

func outbound(t *testing.T, d *sql.DB, acct int64, id string, status int, at time.Time) {
	t.Helper()
	if _, err := d.Exec("INSERT INTO outbound_messages (account_id, id, peer, shard, status, content, created_at, updated_at) VALUES (?, ?, '15551234567', 0, ?, ?, ?, ?)",
		acct, id, status, []byte("body"), at.UnixMilli(), at.UnixMilli()); err != nil {
		t.Fatal(err)
	}
}

func inbound(t *testing.T, d *sql.DB, acct int64, id string, at time.Time) {
	t.Helper()
	if _, err := d.Exec("INSERT INTO inbound_messages (account_id, peer, id, shard, t, content, created_at) VALUES (?, '15551234567', ?, 0, ?, ?, ?)",
		acct, id, at.Unix(), []byte("body"), at.UnixMilli()); err != nil {
		t.Fatal(err)
	}
}

func ids(t *testing.T, d *sql.DB, table string) []string {
	t.Helper()
	rows, err := d.Query("SELECT id FROM " + table + " ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

func TestCollectKeepsWhatCanStillBeDelivered(t *testing.T) {
	d := dbtest.New(t, db.Core)
	now := time.Now()
	old, recent := now.Add(-31*24*time.Hour), now.Add(-time.Hour)
	outbound(t, d, 1, "o-delivered", send.StatusDelivered, old)
	outbound(t, d, 1, "o-read", send.StatusRead, old)
	outbound(t, d, 1, "o-failed", send.StatusFailed, old)
	outbound(t, d, 1, "o-sent", send.StatusSent, old)         // the customer may still come online
	outbound(t, d, 1, "o-accepted", send.StatusAccepted, old) // not even sent yet
	outbound(t, d, 1, "o-recent", send.StatusRead, recent)
	outbound(t, d, 2, "o-other", send.StatusRead, old) // another number
	inbound(t, d, 1, "i-old", old)
	inbound(t, d, 1, "i-recent", recent)
	inbound(t, d, 2, "i-other", old)

	c := New(d, slog.New(slog.DiscardHandler), 0, nil)
	n, err := c.Collect(t.Context(), 1, now.Add(-DefaultRetention))
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("deleted %d, want 4", n)
	}
	if got, want := ids(t, d, "outbound_messages"), []string{"o-accepted", "o-other", "o-recent", "o-sent"}; !slices.Equal(got, want) {
		t.Errorf("outbound left = %v, want %v", got, want)
	}
	if got, want := ids(t, d, "inbound_messages"), []string{"i-other", "i-recent"}; !slices.Equal(got, want) {
		t.Errorf("inbound left = %v, want %v", got, want)
	}
	// Nothing left to collect: a second run deletes nothing.
	if n, err := c.Collect(t.Context(), 1, now.Add(-DefaultRetention)); err != nil || n != 0 {
		t.Errorf("second collection = %d, %v; want 0", n, err)
	}
}

// More rows than a page: every page is walked, and a later match after a
// page of matches is still found.
func TestCollectWalksEveryPage(t *testing.T) {
	d := dbtest.New(t, db.Core)
	old := time.Now().Add(-40 * 24 * time.Hour)
	tx, err := d.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range page + 250 {
		status := send.StatusRead
		if i%7 == 0 {
			status = send.StatusSent
		}
		if _, err := tx.Exec("INSERT INTO outbound_messages (account_id, id, peer, shard, status, content, created_at, updated_at) VALUES (1, ?, '15551234567', 0, ?, 'b', ?, ?)",
			fmt.Sprintf("m%05d", i), status, old.UnixMilli(), old.UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	c := New(d, slog.New(slog.DiscardHandler), 0, nil)
	n, err := c.Collect(t.Context(), 1, time.Now().Add(-DefaultRetention))
	if err != nil {
		t.Fatal(err)
	}
	sent := (page + 250 + 6) / 7
	if want := page + 250 - sent; n != want {
		t.Errorf("deleted %d, want %d", n, want)
	}
	if left := len(ids(t, d, "outbound_messages")); left != sent {
		t.Errorf("%d rows left, want the %d sent ones", left, sent)
	}
}

func TestRunReportsByWebhook(t *testing.T) {
	d := dbtest.New(t, db.Core)
	outbound(t, d, 1, "o-read", send.StatusRead, time.Now().Add(-2*time.Hour))
	woken := make(chan struct{}, 1)
	c := New(d, slog.New(slog.DiscardHandler), time.Hour, func() { woken <- struct{}{} })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := c.Request(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatal("no report")
	}
	var payload []byte
	if err := d.QueryRow("SELECT payload FROM webhook_events WHERE kind = ?", webhook.KindService).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	var got report
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatal(err)
	}
	if got.Message.GC.Status != "complete" || got.Message.GC.MessagesDeleted != 1 {
		t.Errorf("report = %s, want complete with 1 message deleted", payload)
	}
}
