package db_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
)

func TestMigrateIsIdempotent(t *testing.T) {
	d := dbtest.New(t, db.Core)
	if err := db.Migrate(t.Context(), d, db.Core); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if err := db.WaitForSchema(t.Context(), d, db.Core, nil); err != nil {
		t.Fatalf("WaitForSchema after Migrate: %v", err)
	}
}

func TestCommitterBatchesAndIsolatesFailures(t *testing.T) {
	d := dbtest.New(t, db.Chatd)
	c := db.NewCommitter(d, slog.New(slog.DiscardHandler), db.CommitterOptions{Workers: 2})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	insert := func(id string) func(*sql.Tx) error {
		return func(tx *sql.Tx) error {
			_, err := tx.Exec("INSERT INTO stanza_ids (sender, kind, stanza_id, t) VALUES ('s', 1, ?, 1)", id)
			return err
		}
	}
	// Many concurrent writers, with one duplicate that must fail alone.
	if err := c.Do(t.Context(), insert("dup")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Go(func() {
			id := "m" + string(rune('A'+i%26)) + string(rune('a'+i/26))
			if i == 100 {
				id = "dup"
			}
			errs[i] = c.Do(t.Context(), insert(id))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == 100 {
			if !db.IsDuplicate(err) {
				t.Errorf("duplicate insert: err = %v, want a duplicate-key error", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("insert %d: %v", i, err)
		}
	}
	var n int
	if err := d.QueryRow("SELECT COUNT(*) FROM stanza_ids").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 200 {
		t.Errorf("rows = %d, want 200 (199 writes + the first dup)", n)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := c.Do(t.Context(), insert("late")); !errors.Is(err, db.ErrCommitterClosed) {
		t.Errorf("Do after stop = %v, want ErrCommitterClosed", err)
	}
}

func TestPlaceholdersAndRows(t *testing.T) {
	for _, tt := range []struct {
		n        int
		ph, rows string
	}{
		{0, "", ""},
		{1, "?", "(?,?)"},
		{3, "?,?,?", "(?,?),(?,?),(?,?)"},
	} {
		if got := db.Placeholders(tt.n); got != tt.ph {
			t.Errorf("Placeholders(%d) = %q, want %q", tt.n, got, tt.ph)
		}
		if got := db.Rows("(?,?)", tt.n); got != tt.rows {
			t.Errorf("Rows(%d) = %q, want %q", tt.n, got, tt.rows)
		}
	}
}

// TestBatcherFlushesManyItemsPerTransaction checks that a typed batcher hands
// its flush function more than one item when callers submit concurrently,
// and that every caller hears the outcome of its own item.
func TestBatcherFlushesManyItemsPerTransaction(t *testing.T) {
	d := dbtest.New(t, db.Chatd)
	var mu sync.Mutex
	maxSeen := 0
	b := db.NewBatcher(d, slog.New(slog.DiscardHandler), db.BatchOptions{Workers: 1}, func(ctx context.Context, tx *sql.Tx, ids []string) error {
		mu.Lock()
		maxSeen = max(maxSeen, len(ids))
		mu.Unlock()
		args := make([]any, 0, len(ids))
		for _, id := range ids {
			args = append(args, id)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO stanza_ids (sender, kind, stanza_id, t) VALUES "+db.Rows("('s',1,?,1)", len(ids)), args...)
		return err
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var wg sync.WaitGroup
	errs := make([]error, 300)
	for i := range errs {
		wg.Go(func() { errs[i] = b.Do(t.Context(), fmt.Sprintf("id-%d", i%299)) }) // one duplicate
	}
	wg.Wait()
	cancel()
	<-done
	failed := 0
	for _, err := range errs {
		if err != nil {
			if !db.IsDuplicate(err) {
				t.Errorf("unexpected error %v", err)
			}
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("%d items failed, want exactly the one duplicate", failed)
	}
	if maxSeen < 2 {
		t.Errorf("largest batch = %d, want batching under concurrency", maxSeen)
	}
}

// A coreapp cut off from MySQL in the middle of a transaction keeps its TCP
// connection open but silent; its row locks must not block the other nodes
// for longer than the session's wait_timeout.
func TestMySQLReleasesLocksOfASilentConnection(t *testing.T) {
	if dbtest.SQLite() {
		t.Skip("MySQL sessions only")
	}
	d := dbtest.New(t, db.Chatd)
	if _, err := d.Exec("INSERT INTO slots (number, shard, epoch) VALUES ('1', 0, 1)"); err != nil {
		t.Fatal(err)
	}
	silent, err := d.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Rollback()
	if _, err := silent.Exec("SELECT epoch FROM slots WHERE number = '1' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	// The holder now says nothing; another transaction wants the row.
	start := time.Now()
	err = db.Tx(t.Context(), d, func(tx *sql.Tx) error {
		_, err := tx.Exec("UPDATE slots SET epoch = 2 WHERE number = '1'")
		return err
	})
	if err != nil {
		t.Fatalf("the waiting transaction failed after %s: %v", time.Since(start), err)
	}
	if waited := time.Since(start); waited > 20*time.Second {
		t.Errorf("the lock of the silent connection was held %s", waited)
	}
}
