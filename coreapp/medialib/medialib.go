// Package medialib is coreapp's media library: the files of each account on
// the shared media volume (uploads through /v1/media and files customers
// sent), their rows in the media table, downloading and decrypting what
// customers sent (at once for the auto_download types, else on first GET),
// fetching links the business sends (with SSRF protection and provider
// credentials), and garbage collection.
//
// Only coreapp writes the volume. A Store is safe for concurrent use.
package medialib

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/keystore"
	"github.com/openwaba/openwaba/media"
	"github.com/openwaba/openwaba/media/volume"
)

// Origins of a media row.
const (
	OriginUpload  = 1
	OriginInbound = 2
)

// Download states of an inbound file.
const (
	DownloadOnDemand = 0
	DownloadPending  = 1
	DownloadDone     = 2
	DownloadFailed   = 3
)

// Errors.
var (
	ErrNotFound = errors.New("media not found")
	// ErrDownload: the customer's file could not be fetched or did not
	// verify (hash or MAC mismatch); nothing was stored.
	ErrDownload = errors.New("media download failed")
	// ErrUnavailable: the file cannot be fetched now (the account is not
	// connected); try again later.
	ErrUnavailable = errors.New("media temporarily unavailable")
)

// Net is what the media library needs from the chat network: the media
// server of chatd, reached over an account's session (chatd/mediaconn).
type Net interface {
	Upload(ctx context.Context, msgType string, blob io.Reader, blobLen int64, encSHA256 []byte) (directPath string, err error)
	Download(ctx context.Context, directPath string, w io.Writer, max int64) (int64, error)
}

// Store is the media library.
type Store struct {
	db  *sql.DB
	vol *volume.Volume
	ks  *keystore.Keystore
	log *slog.Logger
	// NetFor returns the network access of an account (set by main once the
	// slot manager exists); nil or an error means not connected.
	NetFor func(ctx context.Context, accountID int64) (Net, error)
	// Connected returns the accounts this node can download for now (a
	// connected slot); the download worker claims only their files. Nil:
	// every account.
	Connected func() []int64
	// Fetch configures link fetching.
	Fetch FetchConfig
	// WebhookWake is called after a commit that enqueued webhooks.
	WebhookWake func()

	fl    flights
	kick  chan struct{}
	gcReq chan int64
}

// New returns a Store on the volume vol.
func New(d *sql.DB, vol *volume.Volume, ks *keystore.Keystore, log *slog.Logger) *Store {
	s := &Store{db: d, vol: vol, ks: ks, log: log, Fetch: DefaultFetch(), kick: make(chan struct{}, 1), gcReq: make(chan int64, 16)}
	s.fl.base, s.fl.stop = context.WithCancel(context.Background())
	return s
}

// Volume is the media volume.
func (s *Store) Volume() *volume.Volume { return s.vol }

// NewID returns a media id (UUID v4, as on-prem).
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Upload stores a file uploaded through /v1/media and returns its id. r is
// read up to media.MaxUpload.
func (s *Store) Upload(ctx context.Context, accountID int64, mimeType string, r io.Reader) (string, error) {
	sha, size, err := s.vol.Put(r, media.MaxUpload)
	if err != nil {
		return "", err
	}
	id := NewID()
	now := db.NowMillis()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO media (id, account_id, origin, sha256, mime_type, size, stored, created_at, last_used_at)
		VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`, id, accountID, OriginUpload, sha, mimeType, size, now, now); err != nil {
		return "", err
	}
	return id, nil
}

// Info describes a media file.
type Info struct {
	ID       string
	Account  int64
	Origin   int
	SHA256   string
	MimeType string
	Size     int64
	Stored   bool
	MsgType  string
	Download int

	directPath string
	mediaKey   []byte
	encSHA256  []byte
}

// Lookup returns a media row of the account.
func (s *Store) Lookup(ctx context.Context, accountID int64, id string) (Info, error) {
	var in Info
	var sealedKey []byte
	var stored int
	err := s.db.QueryRowContext(ctx, `SELECT id, account_id, origin, sha256, mime_type, size, stored, msg_type, direct_path, media_key, enc_sha256, download
		FROM media WHERE id = ? AND account_id = ?`, id, accountID).
		Scan(&in.ID, &in.Account, &in.Origin, &in.SHA256, &in.MimeType, &in.Size, &stored, &in.MsgType, &in.directPath, &sealedKey, &in.encSHA256, &in.Download)
	if errors.Is(err, sql.ErrNoRows) {
		return in, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	if err != nil {
		return in, err
	}
	in.Stored = stored == 1
	if sealedKey != nil {
		if in.mediaKey, err = s.ks.Open(sealedKey, keyContext(in.ID)); err != nil {
			return in, err
		}
	}
	return in, nil
}

func keyContext(id string) string { return "mediakey/" + id }

// Open returns the content of a media file, downloading and decrypting a
// customer's file first when it is not on the volume yet. It marks the file
// used (for garbage collection).
func (s *Store) Open(ctx context.Context, accountID int64, id string) (*os.File, Info, error) {
	in, err := s.Lookup(ctx, accountID, id)
	if err != nil {
		return nil, in, err
	}
	if !in.Stored {
		if in.Origin != OriginInbound || in.Download == DownloadFailed {
			return nil, in, fmt.Errorf("%s: %w", id, ErrDownload)
		}
		if in, err = s.download(ctx, in); err != nil {
			return nil, in, err
		}
	}
	f, size, err := s.vol.Open(in.SHA256)
	if errors.Is(err, volume.ErrNotFound) {
		return nil, in, fmt.Errorf("%s: file missing from the volume: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, in, err
	}
	in.Size = size
	s.touch(ctx, in.ID)
	return f, in, nil
}

func (s *Store) touch(ctx context.Context, id string) {
	if _, err := s.db.ExecContext(ctx, "UPDATE media SET last_used_at = ? WHERE id = ?", db.NowMillis(), id); err != nil {
		s.log.Warn("marking media used failed", "id", id, "err", err)
	}
}

// Delete removes a media file of the account. Its content leaves the
// volume when no other id refers to it, unless it was written in the last
// recentWrite (perhaps by an upload of the same bytes that has not recorded
// its id yet): garbage collection removes such content later.
func (s *Store) Delete(ctx context.Context, accountID int64, id string) error {
	var sha string
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "SELECT sha256 FROM media WHERE id = ? AND account_id = ? FOR UPDATE", id, accountID).Scan(&sha); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM media WHERE id = ?", id)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	if err != nil {
		return err
	}
	return s.removeIfUnused(ctx, sha, recentWrite)
}

// recentWrite: content written this recently is never removed outside
// garbage collection.
const recentWrite = 10 * time.Minute

// removeIfUnused deletes content no row refers to any more. With
// olderThan > 0 only a file not written for that long goes: an upload of the
// same content rewrites the file, so collection does not race it.
func (s *Store) removeIfUnused(ctx context.Context, sha string, olderThan time.Duration) error {
	if olderThan > 0 {
		p, err := s.vol.Path(sha)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(p); err != nil || time.Since(fi.ModTime()) < olderThan {
			return nil
		}
	}
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM media WHERE sha256 = ? AND stored = 1", sha).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	return s.vol.Remove(sha)
}

// Inbound is what a customer's media message says about its file
// (checked by Valid).
type Inbound struct {
	MsgType       string
	MimeType      string
	DirectPath    string
	MediaKey      []byte
	FileSHA256    []byte
	FileEncSHA256 []byte
	FileLength    int64
}

// Valid reports whether a customer's media message describes a file that
// can be downloaded.
func (in Inbound) Valid() error {
	switch {
	case media.Limit(in.MsgType) == 0:
		return fmt.Errorf("media type %q", in.MsgType)
	case len(in.MediaKey) != 32 || len(in.FileSHA256) != 32 || len(in.FileEncSHA256) != 32:
		return errors.New("media key or hashes of the wrong length")
	case in.DirectPath == "" || len(in.DirectPath) > 512:
		return errors.New("no usable direct path")
	case in.FileLength < 0 || in.FileLength > media.MaxUpload:
		return fmt.Errorf("file length %d", in.FileLength)
	case len(in.MimeType) > 255:
		return errors.New("MIME type too long")
	}
	return nil
}

// AddInbound records a customer's file in tx under the media id id
// (from NewID). pending marks it for automatic download, with the webhook
// event (JSON) to enqueue once it is on the volume; the caller then calls
// Kick after the commit.
func (s *Store) AddInbound(tx *sql.Tx, accountID int64, id string, in Inbound, pending bool, webhook []byte) error {
	state := DownloadOnDemand
	if pending {
		state = DownloadPending
	}
	now := db.NowMillis()
	_, err := tx.Exec(`INSERT INTO media (id, account_id, origin, sha256, mime_type, size, stored, msg_type, direct_path, media_key, enc_sha256, download, webhook, created_at, last_used_at)
		VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, accountID, OriginInbound, hex.EncodeToString(in.FileSHA256), in.MimeType, in.FileLength, in.MsgType, in.DirectPath,
		s.ks.Seal(in.MediaKey, keyContext(id)), in.FileEncSHA256, state, webhook, now, now)
	return err
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
