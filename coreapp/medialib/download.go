package medialib

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/coreapp/egress"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/media"
	"github.com/openwaba/openwaba/media/encrypt"
)

// ErrBlobGone is what a Net returns when the media server no longer has a
// blob (expired or never uploaded): the download cannot succeed later.
var ErrBlobGone = errors.New("media blob not on the media server")

// Auto-download timings.
const (
	// claimFor is how long a claimed pending download is left alone by the
	// other nodes' workers.
	claimFor = 2 * time.Minute
	// maxAutoAttempts: after this many failed attempts to reach the media
	// server, the message's webhook goes out without the file (it is then
	// fetched on the first GET).
	maxAutoAttempts = 10
	downloadWorkers = 4
	pollEvery       = time.Second
)

// flight deduplicates concurrent downloads of one media id in this process.
type flight struct {
	done chan struct{}
	in   Info
	err  error
}

type flights struct {
	base context.Context // of every download; cancelled by Close
	stop context.CancelFunc
	wg   sync.WaitGroup // the download goroutines
	mu   sync.Mutex
	m    map[string]*flight
}

// download fetches, verifies and decrypts an inbound file onto the volume
// and records it stored. Concurrent calls for one id share one download.
// A blob that does not verify is recorded as failed and never stored.
//
// The download runs on its own goroutine (owned by the Store: Close waits
// for it) under its own deadline, so a caller that gives up (a client that
// disconnects) does not fail the others waiting for the same file.
func (s *Store) download(ctx context.Context, in Info) (Info, error) {
	s.fl.mu.Lock()
	f := s.fl.m[in.ID]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		if s.fl.m == nil {
			s.fl.m = map[string]*flight{}
		}
		s.fl.m[in.ID] = f
		s.fl.wg.Go(func() {
			fctx, cancel := context.WithTimeout(s.fl.base, downloadTimeout)
			defer cancel()
			f.in, f.err = s.fetch(fctx, in)
			s.fl.mu.Lock()
			delete(s.fl.m, in.ID)
			s.fl.mu.Unlock()
			close(f.done)
		})
	}
	s.fl.mu.Unlock()
	select {
	case <-f.done:
		return f.in, f.err
	case <-ctx.Done():
		return in, ctx.Err()
	}
}

// downloadTimeout bounds one download of a customer's file.
const downloadTimeout = 10 * time.Minute

// Close stops the downloads in progress and waits for them.
func (s *Store) Close() {
	s.fl.stop()
	s.fl.wg.Wait()
}

// fetch does the work of download.
func (s *Store) fetch(ctx context.Context, in Info) (Info, error) {
	if s.NetFor == nil {
		return in, fmt.Errorf("%s: %w", in.ID, ErrUnavailable)
	}
	nw, err := s.NetFor(ctx, in.Account)
	if err != nil || nw == nil {
		return in, fmt.Errorf("%s: %w: %v", in.ID, ErrUnavailable, err)
	}
	info, err := encrypt.Info(in.MsgType)
	if err != nil {
		return in, s.failed(ctx, in, err)
	}
	blob, err := s.vol.TempFile()
	if err != nil {
		return in, err
	}
	defer func() {
		blob.Close()
		os.Remove(blob.Name())
	}()
	// A blob is the plaintext padded to a block (≤ 16 bytes more) plus the
	// 10-byte MAC; a message that claims no length is capped at the largest
	// upload.
	max := int64(media.MaxUpload) + 32
	if in.Size > 0 {
		max = min(max, in.Size+32)
	}
	n, err := nw.Download(ctx, in.directPath, blob, max)
	switch {
	case errors.Is(err, ErrBlobGone):
		return in, s.failed(ctx, in, err)
	case err != nil:
		return in, fmt.Errorf("%s: %w: %v", in.ID, ErrUnavailable, err)
	}
	plain, err := s.vol.TempFile()
	if err != nil {
		return in, err
	}
	committed := false
	defer func() {
		if !committed {
			plain.Close()
			os.Remove(plain.Name())
		}
	}()
	sha, err := hex.DecodeString(in.SHA256)
	if err != nil || len(sha) != sha256.Size {
		return in, s.failed(ctx, in, fmt.Errorf("bad plaintext hash %q", in.SHA256))
	}
	if err := encrypt.Decrypt(plain, blob, n, encrypt.Expect{MediaKey: in.mediaKey, FileSHA256: sha, FileEncSHA256: in.encSHA256, FileLength: in.Size}, info); err != nil {
		if isVerification(err) {
			return in, s.failed(ctx, in, err)
		}
		return in, err
	}
	size, err := plain.Seek(0, 2)
	if err != nil {
		return in, err
	}
	committed = true
	if err := s.vol.Commit(plain, in.SHA256); err != nil {
		return in, err
	}
	in.Stored, in.Size, in.Download = true, size, DownloadDone
	err = db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		var hook []byte
		if err := tx.QueryRowContext(ctx, "SELECT webhook FROM media WHERE id = ? FOR UPDATE", in.ID).Scan(&hook); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE media SET stored = 1, size = ?, download = ?, webhook = NULL, last_used_at = ? WHERE id = ?",
			size, DownloadDone, db.NowMillis(), in.ID); err != nil {
			return err
		}
		if hook == nil {
			return nil
		}
		return webhook.Enqueue(tx, webhook.Event{AccountID: in.Account, Kind: webhook.KindMessage, Payload: json.RawMessage(hook)})
	})
	if err != nil {
		return in, err
	}
	s.wakeWebhooks()
	s.log.Debug("inbound media stored", "id", in.ID, "bytes", size)
	return in, nil
}

// isVerification reports whether err says the blob is not what the message
// described (as opposed to a local I/O failure).
func isVerification(err error) bool {
	for _, e := range []error{encrypt.ErrEncHash, encrypt.ErrMAC, encrypt.ErrPlainHash, encrypt.ErrLength, encrypt.ErrPadding} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// failed records that an inbound file cannot be downloaded and, when its
// message's webhook was waiting for it, sends that webhook with the file
// reported as a failed download (no media id). It returns ErrDownload.
func (s *Store) failed(ctx context.Context, in Info, cause error) error {
	s.log.Warn("inbound media refused", "id", in.ID, "err", egress.Describe(cause))
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		var hook []byte
		if err := tx.QueryRowContext(ctx, "SELECT webhook FROM media WHERE id = ? FOR UPDATE", in.ID).Scan(&hook); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE media SET download = ?, webhook = NULL WHERE id = ?", DownloadFailed, in.ID); err != nil {
			return err
		}
		if hook == nil {
			return nil
		}
		b, err := webhook.FailMedia(hook, webhook.Err(errcode.MediaDownload, egress.Describe(cause)))
		if err != nil {
			return err
		}
		return webhook.Enqueue(tx, webhook.Event{AccountID: in.Account, Kind: webhook.KindMessage, Payload: json.RawMessage(b)})
	})
	if err != nil {
		return err
	}
	s.wakeWebhooks()
	return fmt.Errorf("%s: %w: %v", in.ID, ErrDownload, cause)
}

func (s *Store) wakeWebhooks() {
	if s.WebhookWake != nil {
		s.WebhookWake()
	}
}

// Run downloads the files of the auto_download types that customers sent,
// on whichever node claims them first, until ctx ends. A message's webhook
// waits for its file; after maxAutoAttempts failures to reach the media
// server it is sent without (the file is then fetched on the first GET).
func (s *Store) Run(ctx context.Context) error {
	work := make(chan string)
	var wg sync.WaitGroup
	defer s.Close()
	defer wg.Wait()
	wg.Go(func() { s.gcLoop(ctx) })
	for range downloadWorkers {
		wg.Go(func() {
			for id := range work {
				s.autoDownload(ctx, id)
			}
		})
	}
	defer close(work)
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		ids, err := s.claim(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("claiming media downloads failed", "err", err)
		}
		for _, id := range ids {
			select {
			case work <- id:
			case <-ctx.Done():
				return nil
			}
		}
		if len(ids) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.kick:
		}
	}
}

// Kick makes the download worker look for pending downloads now.
func (s *Store) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// claim takes up to 16 due pending downloads of the accounts this node can
// download for.
func (s *Store) claim(ctx context.Context) ([]string, error) {
	var ids []string
	q, args := "SELECT id FROM media WHERE download = ? AND next_attempt_at <= ?", []any{DownloadPending, int64(0)}
	if s.Connected != nil {
		accts := s.Connected()
		if len(accts) == 0 {
			return nil, nil
		}
		q += " AND account_id IN (" + db.Placeholders(len(accts)) + ")"
		for _, a := range accts {
			args = append(args, a)
		}
	}
	q += " ORDER BY next_attempt_at LIMIT 16 FOR UPDATE SKIP LOCKED"
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		ids = ids[:0]
		now := db.NowMillis()
		args[1] = now
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return err
		}
		args := append([]any{now + claimFor.Milliseconds()}, anys(ids)...)
		_, err = tx.ExecContext(ctx, "UPDATE media SET next_attempt_at = ? WHERE id IN ("+db.Placeholders(len(ids))+")", args...)
		return err
	})
	return ids, err
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// autoDownload downloads one claimed file; on a transient failure it is
// retried with backoff, and after maxAutoAttempts its webhook goes out
// without the file.
func (s *Store) autoDownload(ctx context.Context, id string) {
	var acct int64
	if err := s.db.QueryRowContext(ctx, "SELECT account_id FROM media WHERE id = ?", id).Scan(&acct); err != nil {
		return
	}
	in, err := s.Lookup(ctx, acct, id)
	if err == nil && (in.Stored || in.Download != DownloadPending) {
		return
	}
	if err == nil {
		_, err = s.download(ctx, in)
	}
	if err == nil || errors.Is(err, ErrDownload) || ctx.Err() != nil {
		return
	}
	s.log.Debug("media download postponed", "id", id, "err", egress.Describe(err))
	err = db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		var attempts int
		var hook []byte
		var state int
		if err := tx.QueryRowContext(ctx, "SELECT attempts, download, webhook FROM media WHERE id = ? FOR UPDATE", id).Scan(&attempts, &state, &hook); err != nil {
			return err
		}
		if state != DownloadPending {
			return nil
		}
		attempts++
		if attempts < maxAutoAttempts {
			delay := min(time.Second<<attempts, 5*time.Minute)
			_, err := tx.ExecContext(ctx, "UPDATE media SET attempts = ?, next_attempt_at = ? WHERE id = ?", attempts, db.NowMillis()+delay.Milliseconds(), id)
			return err
		}
		s.log.Warn("inbound media could not be downloaded; sending the webhook without it (fetched on the first GET)", "id", id, "err", egress.Describe(err))
		if _, err := tx.ExecContext(ctx, "UPDATE media SET attempts = ?, download = ?, webhook = NULL WHERE id = ?", attempts, DownloadOnDemand, id); err != nil {
			return err
		}
		if hook == nil {
			return nil
		}
		return webhook.Enqueue(tx, webhook.Event{AccountID: acct, Kind: webhook.KindMessage, Payload: json.RawMessage(hook)})
	})
	if err != nil {
		s.log.Warn("recording a postponed media download failed", "id", id, "err", err)
		return
	}
	s.wakeWebhooks()
}
