package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/db/clusterkeys"
	"github.com/openwaba/openwaba/media"
	"github.com/openwaba/openwaba/media/volume"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// The media server stores end-to-end encrypted blobs for clients and hands
// them out again; it never sees a media key, so it cannot read them.
//
//	POST /mms/{type}/{encsha}?auth=T  body: the blob → 200 {"direct_path":"/v/<hex>"}
//	GET  /v/{hex}?auth=T              → 200 the blob (Content-Length; Range works)
//
// T comes from the MediaConn IQ. Errors are JSON {"error": …}: 401 no valid
// token, 400 a bad type, path or hash, 413 a body over MaxMediaBlob, 404 an
// unknown or expired blob.

// MaxMediaBlob is the largest blob the media server accepts: the largest
// document (100 MiB) plus padding and MAC, rounded up.
const MaxMediaBlob = 101 << 20

// Media defaults.
const (
	// DefaultMediaTokenTTL is how long a MediaConn token is valid.
	DefaultMediaTokenTTL = 5 * time.Minute
	// DefaultMediaTTL is how long a blob is kept after its last upload.
	DefaultMediaTTL = 30 * 24 * time.Hour
	// mediaIOTimeout bounds reading one upload's body and writing one
	// download's body.
	mediaIOTimeout = 10 * time.Minute
	// mediaTempMaxAge: temporary files older than this are leftovers of a
	// crash and are removed by the janitor.
	mediaTempMaxAge = 24 * time.Hour
)

// mediaTokenVersion prefixes what a token's MAC covers, so the secret never
// signs anything else by accident.
const mediaTokenVersion = "chatd-media-v1\x00"

// mediaToken returns a token for account valid until exp:
// "<account>.<exp unix>.<base64url HMAC-SHA256(secret, version ‖ account.exp)>".
func mediaToken(secret []byte, account string, exp time.Time) string {
	payload := account + "." + strconv.FormatInt(exp.Unix(), 10)
	return payload + "." + base64.RawURLEncoding.EncodeToString(mediaMAC(secret, payload))
}

func mediaMAC(secret []byte, payload string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(mediaTokenVersion))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// checkMediaToken returns the account of a token that secret signed and that
// is still valid at now.
func checkMediaToken(secret []byte, tok string, now time.Time) (string, bool) {
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return "", false
	}
	payload := tok[:i]
	mac, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || !hmac.Equal(mac, mediaMAC(secret, payload)) {
		return "", false
	}
	account, expStr, ok := strings.Cut(payload, ".")
	if !ok || !phone.Valid(account) {
		return "", false
	}
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if err != nil || now.Unix() >= exp {
		return "", false
	}
	return account, true
}

// mediaConn answers the MediaConn IQ: a token for the account, and where and
// how to reach the media server.
func (s *Server) mediaConn(account string) (*chatdv1.IQ, *chatdv1.IQError) {
	if s.cfg.Media == nil {
		return nil, &chatdv1.IQError{Code: 503, Text: "media is disabled on this network"}
	}
	k := s.keys.Load()
	ttl := s.cfg.MediaTokenTTL
	return &chatdv1.IQ{Payload: &chatdv1.IQ_MediaConnResult{MediaConnResult: &chatdv1.MediaConnResult{
		Auth:       mediaToken(k.MediaSecret, account, time.Now().Add(ttl)),
		Ttl:        uint32(ttl / time.Second),
		Host:       s.cfg.MediaURL,
		CertSha256: k.TLSHash(),
		Port:       uint32(s.mediaPort),
	}}}, nil
}

// mediaTLSConfig serves the same self-signed certificate as the chat
// ports' TLS mode: clients pin its hash, learnt from MediaConn.
func (s *Server) mediaTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: clusterkeys.ServerCipherSuites,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &s.keys.Load().TLS, nil
		},
	}
}

// serveMedia runs the media server on l until ctx ends; it returns once every
// handler it started has returned.
func (s *Server) serveMedia(ctx context.Context, l net.Listener, errs chan<- error) {
	h := &handlers{h: s.mediaHandler()}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         s.mediaTLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		// TLS handshake failures (scanners, clients with a stale pin) are
		// not worth more than a debug line.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close() // cuts uploads still running; their handlers return
		}
	})
	if err := srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs <- fmt.Errorf("media: %w", err)
		srv.Close()
	}
	wg.Wait()
	h.closeAndWait()
}

// handlers runs an http.Handler and can wait for every call it started, so
// that no handler outlives Serve.
type handlers struct {
	h      http.Handler
	mu     sync.Mutex // guards closed and the Add of wg
	closed bool
	wg     sync.WaitGroup
}

func (t *handlers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()
	t.h.ServeHTTP(w, r)
}

func (t *handlers) closeAndWait() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}

func (s *Server) mediaHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /mms/{type}/{encsha}", s.mediaUpload)
	mux.HandleFunc("GET /v/{hash}", s.mediaDownload)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	})
	return mux
}

// mediaAuth returns the account of the request's valid token.
func (s *Server) mediaAuth(r *http.Request) (string, bool) {
	return checkMediaToken(s.keys.Load().MediaSecret, r.URL.Query().Get("auth"), time.Now())
}

func mediaError(w http.ResponseWriter, status int, text string) {
	writeJSON(w, status, map[string]string{"error": text})
}

func (s *Server) mediaUpload(w http.ResponseWriter, r *http.Request) {
	account, ok := s.mediaAuth(r)
	if !ok {
		mediaError(w, http.StatusUnauthorized, "missing, invalid or expired token (ask MediaConn for a new one)")
		return
	}
	typ := r.PathValue("type")
	if _, ok := media.KindOf(typ); !ok || typ == media.Voice {
		mediaError(w, http.StatusBadRequest, "type must be image, video, audio, document or sticker")
		return
	}
	want, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(r.PathValue("encsha"), "="))
	if err != nil || len(want) != sha256.Size {
		mediaError(w, http.StatusBadRequest, "the path must end in the base64url SHA-256 of the blob")
		return
	}
	if r.ContentLength > MaxMediaBlob {
		mediaError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("blobs are at most %d bytes", MaxMediaBlob))
		return
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(mediaIOTimeout))
	tmp, err := s.vol.TempFile()
	if err != nil {
		s.log.Error("media: temporary file", "err", err)
		mediaError(w, http.StatusInternalServerError, "internal error")
		return
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(tmp, h), http.MaxBytesReader(w, r.Body, MaxMediaBlob))
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		mediaError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("blobs are at most %d bytes", MaxMediaBlob))
		return
	}
	if err != nil {
		s.log.Info("media upload interrupted", "account", account, "err", err)
		mediaError(w, http.StatusBadRequest, "upload interrupted")
		return
	}
	got := h.Sum(nil)
	switch {
	case size == 0:
		mediaError(w, http.StatusBadRequest, "empty blob")
		return
	case !bytes.Equal(got, want):
		mediaError(w, http.StatusBadRequest, "the blob's SHA-256 does not match the path")
		return
	}
	sum := hex.EncodeToString(got)

	// The file and its row change together, under the lock the janitor
	// takes to delete them.
	s.mediaMu.Lock()
	existed := s.vol.Has(sum)
	committed = true
	err = s.vol.Commit(tmp, sum)
	again := false
	if err == nil {
		again, err = s.recordBlob(r.Context(), sum, size, account)
		if err != nil && !existed {
			s.vol.Remove(sum) // no row would ever expire it
		}
	}
	s.mediaMu.Unlock()
	if err != nil {
		s.log.Error("media: storing a blob failed", "account", account, "err", err)
		mediaError(w, http.StatusInternalServerError, "internal error")
		return
	}
	s.log.Info("media upload", "account", account, "type", typ, "blob_sha256", sum, "size", size, "again", again)
	writeJSON(w, http.StatusOK, map[string]string{"direct_path": "/v/" + sum})
}

// recordBlob records an uploaded blob, or extends the expiry of one uploaded
// before; again reports the latter.
func (s *Server) recordBlob(ctx context.Context, sum string, size int64, account string) (again bool, err error) {
	now := time.Now()
	res, err := s.db.ExecContext(ctx, "INSERT INTO media_blobs (hash, size, uploader, created_at, expires_at) VALUES (?, ?, ?, ?, ?) "+
		"ON DUPLICATE KEY UPDATE expires_at = GREATEST(expires_at, VALUES(expires_at))",
		sum, size, account, now.UnixMilli(), now.Add(s.cfg.MediaTTL).UnixMilli())
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected() // 1: inserted; 2: updated; 0: unchanged
	return n != 1, nil
}

func (s *Server) mediaDownload(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.mediaAuth(r); !ok {
		mediaError(w, http.StatusUnauthorized, "missing, invalid or expired token (ask MediaConn for a new one)")
		return
	}
	sum := r.PathValue("hash")
	if _, err := s.vol.Path(sum); err != nil {
		mediaError(w, http.StatusNotFound, "no such blob")
		return
	}
	var expires int64
	err := s.db.QueryRowContext(r.Context(), "SELECT expires_at FROM media_blobs WHERE hash = ?", sum).Scan(&expires)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && expires <= time.Now().UnixMilli()) {
		mediaError(w, http.StatusNotFound, "no such blob (unknown or expired)")
		return
	}
	if err != nil {
		s.log.Error("media: blob lookup failed", "err", err)
		mediaError(w, http.StatusInternalServerError, "internal error")
		return
	}
	f, _, err := s.vol.Open(sum)
	if errors.Is(err, volume.ErrNotFound) {
		s.log.Warn("media: a recorded blob is missing from the volume", "blob_sha256", sum)
		mediaError(w, http.StatusNotFound, "no such blob")
		return
	}
	if err != nil {
		s.log.Error("media: opening a blob failed", "err", err)
		mediaError(w, http.StatusInternalServerError, "internal error")
		return
	}
	defer f.Close()
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(mediaIOTimeout))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "private, no-store")
	http.ServeContent(w, r, "", time.Time{}, f) // Content-Length, Range
}

// expireMedia deletes blobs past their expiry, row and file, and temporary
// files a crash left behind. It is a step of the janitor.
func (s *Server) expireMedia(ctx context.Context) error {
	now := time.Now().UnixMilli()
	rows, err := s.db.QueryContext(ctx, "SELECT hash FROM media_blobs WHERE expires_at < ? LIMIT 1000", now)
	if err != nil {
		return err
	}
	var expired []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return err
		}
		expired = append(expired, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	deleted := 0
	for _, h := range expired {
		err := func() error {
			s.mediaMu.Lock()
			defer s.mediaMu.Unlock()
			// Still expired: an upload of the same blob may have renewed it.
			res, err := s.db.ExecContext(ctx, "DELETE FROM media_blobs WHERE hash = ? AND expires_at < ?", h, now)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 || s.vol == nil {
				return nil
			}
			deleted++
			return s.vol.Remove(h)
		}()
		if err != nil {
			return err
		}
	}
	if deleted > 0 {
		s.log.Info("janitor: deleted expired media blobs", "count", deleted)
	}
	if s.vol != nil {
		s.removeStaleTemps(time.Now().Add(-mediaTempMaxAge))
	}
	return nil
}

// removeStaleTemps removes temporary upload files older than before.
func (s *Server) removeStaleTemps(before time.Time) {
	dir := filepath.Join(s.vol.Root(), "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(before) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
