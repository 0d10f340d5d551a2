package medialib

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
)

// Garbage collection (PUT /v1/services/media/gc).
const (
	// UnusedFor is how long a file must have gone unused (not uploaded,
	// received, downloaded or sent) to be collected.
	UnusedFor = 30 * 24 * time.Hour
	// staleTemp is the age of a leftover temporary file (a crash during an
	// upload or a download) that collection removes.
	staleTemp = 24 * time.Hour
	gcPage    = 500
)

// CollectGarbage asks the collector to remove the account's media unused
// for UnusedFor; it runs in the background (Run) and reports by webhook:
// {"services":[{"media":{"gc":{"items_deleted":N,"status":"complete"}}}]}.
func (s *Store) CollectGarbage(ctx context.Context, accountID int64) error {
	select {
	case s.gcReq <- accountID:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gcLoop serves CollectGarbage until ctx ends.
func (s *Store) gcLoop(ctx context.Context) {
	s.sweepTemp()
	for {
		select {
		case <-ctx.Done():
			return
		case acct := <-s.gcReq:
			n, err := s.collect(ctx, acct, time.Now().Add(-UnusedFor))
			if ctx.Err() != nil {
				return
			}
			s.reportGC(ctx, acct, n, err)
		}
	}
}

// gcReport is the services[] entry of a collection.
type gcReport struct {
	Media struct {
		GC struct {
			ItemsDeleted int             `json:"items_deleted"`
			Errors       []webhook.Error `json:"errors,omitempty"`
			Status       string          `json:"status"`
		} `json:"gc"`
	} `json:"media"`
}

func (s *Store) reportGC(ctx context.Context, acct int64, n int, err error) {
	var r gcReport
	r.Media.GC.ItemsDeleted, r.Media.GC.Status = n, "complete"
	if err != nil {
		s.log.Error("media garbage collection failed", "err", err)
		r.Media.GC.Status = "failed"
		r.Media.GC.Errors = []webhook.Error{webhook.Err(errcode.Internal, "Could not delete media files")}
	} else {
		s.log.Info("media garbage collection complete", "items_deleted", n)
	}
	if err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		return webhook.Enqueue(tx, webhook.ServiceEvent(acct, r))
	}); err != nil {
		s.log.Error("reporting media garbage collection failed", "err", err)
		return
	}
	s.wakeWebhooks()
}

// collect deletes the account's media rows unused since before, then the
// files no row refers to any more, and returns how many rows went. Files
// still waiting for an automatic download are kept.
func (s *Store) collect(ctx context.Context, accountID int64, before time.Time) (int, error) {
	deleted := 0
	for {
		var ids []any
		var shas []string
		err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
			ids, shas = ids[:0], shas[:0]
			rows, err := tx.QueryContext(ctx, "SELECT id, sha256 FROM media WHERE account_id = ? AND last_used_at < ? AND download <> ? LIMIT ? FOR UPDATE",
				accountID, before.UnixMilli(), DownloadPending, gcPage)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id, sha string
				if err := rows.Scan(&id, &sha); err != nil {
					rows.Close()
					return err
				}
				ids, shas = append(ids, id), append(shas, sha)
			}
			rows.Close()
			if err := rows.Err(); err != nil || len(ids) == 0 {
				return err
			}
			_, err = tx.ExecContext(ctx, "DELETE FROM media WHERE id IN ("+db.Placeholders(len(ids))+")", ids...)
			return err
		})
		if err != nil {
			return deleted, err
		}
		deleted += len(ids)
		var errs []error
		for _, sha := range shas {
			if err := s.removeIfUnused(ctx, sha, time.Hour); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return deleted, err
		}
		if len(ids) < gcPage {
			break
		}
	}
	s.sweepTemp()
	return deleted, s.sweepOrphans(ctx)
}

// sweepOrphans removes content no row refers to and that was not written
// in the last hour: left by Delete while it was recent, by a link whose
// fetch was cut short by a crash, or by an upload that crashed before
// recording its id.
func (s *Store) sweepOrphans(ctx context.Context) error {
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		rows, err := s.db.QueryContext(ctx, "SELECT DISTINCT sha256 FROM media WHERE sha256 IN ("+db.Placeholders(len(batch))+")", anys(batch)...)
		if err != nil {
			return err
		}
		used := map[string]bool{}
		for rows.Next() {
			var sha string
			if err := rows.Scan(&sha); err != nil {
				rows.Close()
				return err
			}
			used[sha] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, sha := range batch {
			if !used[sha] {
				if err := s.removeIfUnused(ctx, sha, time.Hour); err != nil {
					return err
				}
			}
		}
		batch = batch[:0]
		return nil
	}
	err := filepath.WalkDir(filepath.Join(s.vol.Root(), "sha256"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if fi, err := d.Info(); err != nil || time.Since(fi.ModTime()) < time.Hour {
			return nil
		}
		batch = append(batch, d.Name())
		if len(batch) == gcPage {
			return flush()
		}
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	return flush()
}

// sweepTemp removes temporary files a crash left on the volume.
func (s *Store) sweepTemp() {
	dir := filepath.Join(s.vol.Root(), "tmp")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
