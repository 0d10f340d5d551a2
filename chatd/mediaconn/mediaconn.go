// Package mediaconn is the client side of chatd's media server, shared by
// coreapp and waphone. It asks the chat connection for a media token (the
// MediaConn IQ), keeps it until shortly before it expires, and uploads and
// downloads end-to-end encrypted blobs over HTTPS, pinning the media
// server's certificate to the hash chatd sent on the authenticated chat
// connection. It moves opaque blobs only: encrypting them and checking what
// comes back is the caller's job (media/encrypt).
//
//	c := mediaconn.New(mediaconn.Config{IQ: sess.IQ, Addr: sess.Addr})
//	path, err := c.Upload(ctx, "image", blob, res.BlobLength, res.FileEncSHA256)
//	n, err := c.Download(ctx, path, w, maxBlob)
//
// A Client is safe for concurrent use. It starts no goroutine of its own:
// every request runs on its caller's goroutine; the connections it keeps
// for the next request (and their reader goroutines) end with Close.
package mediaconn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openwaba/openwaba/media"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// IQFunc sends an IQ on the chat connection and returns the answer, as
// session.Session.IQ does.
type IQFunc func(ctx context.Context, iq *chatdv1.IQ) (*chatdv1.IQ, error)

// Config configures a Client.
type Config struct {
	// IQ asks chatd for tokens (required).
	IQ IQFunc
	// Addr returns the chat address of the live connection, "host:port" or
	// "tls://host:port" (session.Session.Addr); the media server is on the
	// same host unless chatd names another base URL. Required.
	Addr func() string
	Log  *slog.Logger

	// UploadTimeout bounds one upload attempt (default 10 min).
	UploadTimeout time.Duration
	// DownloadTimeout bounds one download attempt (default 10 min).
	DownloadTimeout time.Duration
	// Retries is how many times a failed download (and an upload of a
	// seekable blob) is tried again (default 3; negative: none).
	Retries int
	// RetryBase is the first wait before a retry, doubled for each further
	// one (default 1 s).
	RetryBase time.Duration
}

// Errors. Failures the media server reports are *StatusError, which
// errors.Is matches against ErrUnauthorized, ErrNotFound and ErrTooLarge.
var (
	// ErrPinMismatch: the media server's certificate is not the one chatd
	// named. Never retried.
	ErrPinMismatch = errors.New("media server certificate does not match the pinned hash")
	// ErrTooLarge: the blob is larger than allowed (a download over its
	// max, or an upload the server refused with 413).
	ErrTooLarge = errors.New("media blob too large")
	// ErrNotFound: the server has no such blob (never uploaded, or expired).
	ErrNotFound = errors.New("media blob not found")
	// ErrUnauthorized: the server refused the token.
	ErrUnauthorized = errors.New("media token refused")
	// ErrNoHost: the token cannot be used because the client does not know
	// which host it dialled (no live chat connection).
	ErrNoHost = errors.New("no chat address to find the media server at")
)

// StatusError is an answer of the media server other than 200.
type StatusError struct {
	Code int
	Text string // the server's error text
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("media server: %d %s: %s", e.Code, http.StatusText(e.Code), e.Text)
}

// Is matches the sentinel errors of the status codes that have one.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Code == http.StatusUnauthorized
	case ErrNotFound:
		return e.Code == http.StatusNotFound
	case ErrTooLarge:
		return e.Code == http.StatusRequestEntityTooLarge
	}
	return false
}

// Permanent reports whether err will not go away by trying again: the server
// refused the request itself (a 4xx other than 401, 408 and 429), the blob is
// too large, or the certificate is not the pinned one. Network trouble, a
// chat connection that is down and server errors are not permanent.
func Permanent(err error) bool {
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrPinMismatch) {
		return true
	}
	var se *StatusError
	if errors.As(err, &se) {
		switch se.Code {
		case http.StatusUnauthorized, http.StatusRequestTimeout, http.StatusTooManyRequests:
			return false
		}
		return se.Code >= 400 && se.Code < 500
	}
	return false
}

// Host returns the host of a chat address, "host:port" or "tls://host:port"
// (as session.Session.Addr gives it); IPv6 hosts come without brackets.
func Host(addr string) (string, error) {
	hostport, _ := strings.CutPrefix(addr, "tls://")
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("chat address %q: %w", addr, err)
	}
	if host == "" {
		return "", fmt.Errorf("chat address %q: no host", addr)
	}
	return host, nil
}

// Client talks to the media server.
type Client struct {
	cfg  Config
	log  *slog.Logger
	http *http.Client
	sem  chan struct{} // one token request at a time

	mu  sync.Mutex // guards the fields below
	cur *token     // nil: none yet, or dropped
	pin []byte     // the pin of the latest token, kept when it is dropped
}

// token is one MediaConn answer.
type token struct {
	auth    string
	base    *url.URL  // https://host:port[/prefix], no trailing slash
	pin     []byte    // SHA-256 of the server's leaf certificate
	refresh time.Time // ask for a new token from then on
}

// New returns a Client.
func New(cfg Config) *Client {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.UploadTimeout == 0 {
		cfg.UploadTimeout = 10 * time.Minute
	}
	if cfg.DownloadTimeout == 0 {
		cfg.DownloadTimeout = 10 * time.Minute
	}
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase = time.Second
	}
	c := &Client{cfg: cfg, log: cfg.Log, sem: make(chan struct{}, 1)}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	c.http = &http.Client{Transport: &http.Transport{
		Proxy:       http.ProxyFromEnvironment, // HTTPS_PROXY, NO_PROXY: like the chat connection
		DialContext: dialer.DialContext,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Why skipping the usual verification is sound here: chatd's
			// certificate is self-signed, so no CA could vouch for it, and
			// the name in it need not be the one the client dialled. What
			// authenticates the server instead is the pin: the SHA-256 of
			// its leaf certificate arrives in MediaConnResult on the chat
			// connection, which the Noise handshake authenticated against
			// the pinned network root key, so an attacker cannot choose it.
			// The TLS handshake still proves that the peer holds the private
			// key of the certificate it presents (CertificateVerify is
			// checked whatever InsecureSkipVerify says), so a peer whose
			// leaf hashes to the pin is the media server. VerifyConnection
			// rather than VerifyPeerCertificate: it also runs for resumed
			// sessions.
			InsecureSkipVerify: true,
			VerifyConnection:   c.verifyPin,
		},
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 5 * time.Second,
		ResponseHeaderTimeout: time.Minute, // after the whole upload was sent
		// Connections are kept for the next transfer (a TLS handshake per
		// blob costs more CPU than encrypting a 100 KB file); Close
		// releases them and their goroutines.
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     time.Minute,
	}}
	return c
}

// Close closes the idle connections to the media server. The owner of a
// Client calls it when it stops using it; a later call opens new ones.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// verifyPin accepts the server only when its leaf certificate hashes to the
// pin of the latest token.
func (c *Client) verifyPin(cs tls.ConnectionState) error {
	c.mu.Lock()
	pin := c.pin
	c.mu.Unlock()
	if pin == nil || len(cs.PeerCertificates) == 0 {
		return ErrPinMismatch
	}
	sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
	if subtle.ConstantTimeCompare(sum[:], pin) != 1 {
		return fmt.Errorf("%w: got %x", ErrPinMismatch, sum)
	}
	return nil
}

// iqTimeout bounds the wait for chatd's answer to MediaConn.
const iqTimeout = 30 * time.Second

// conn returns a valid token, asking chatd for a new one when there is none
// or the current one is about to expire.
func (c *Client) conn(ctx context.Context) (*token, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.sem }()
	c.mu.Lock()
	t := c.cur
	c.mu.Unlock()
	if t != nil && time.Now().Before(t.refresh) {
		return t, nil
	}
	addr := c.cfg.Addr()
	ictx, cancel := context.WithTimeout(ctx, iqTimeout)
	defer cancel()
	res, err := c.cfg.IQ(ictx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_MediaConn{MediaConn: &chatdv1.MediaConn{}}})
	if err != nil {
		return nil, fmt.Errorf("media token: %w", err)
	}
	mc := res.GetMediaConnResult()
	if mc == nil || mc.Auth == "" || len(mc.CertSha256) != sha256.Size {
		return nil, errors.New("media token: chatd answered without a token or certificate hash")
	}
	t = &token{auth: mc.Auth, pin: mc.CertSha256}
	if t.base, err = baseURL(mc, addr); err != nil {
		return nil, fmt.Errorf("media token: %w", err)
	}
	ttl := time.Duration(mc.Ttl) * time.Second
	t.refresh = time.Now().Add(ttl - min(time.Minute, ttl/5)) // renew a little early
	c.mu.Lock()
	changed := c.pin != nil && subtle.ConstantTimeCompare(c.pin, t.pin) != 1
	c.cur, c.pin = t, t.pin
	c.mu.Unlock()
	if changed {
		// Kept connections were checked against the old certificate.
		c.http.CloseIdleConnections()
	}
	return t, nil
}

// drop forgets t (refused by the server) so the next call asks for another.
func (c *Client) drop(t *token) {
	c.mu.Lock()
	if c.cur == t {
		c.cur = nil
	}
	c.mu.Unlock()
}

// baseURL is mc.Host when set, else https://<host of addr>:<mc.Port>.
func baseURL(mc *chatdv1.MediaConnResult, addr string) (*url.URL, error) {
	if mc.Host != "" {
		u, err := url.Parse(mc.Host)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("media base URL %q: want https://host[:port]", mc.Host)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.RawPath = ""
		return u, nil
	}
	if addr == "" {
		return nil, ErrNoHost
	}
	host, err := Host(addr)
	if err != nil {
		return nil, err
	}
	if mc.Port == 0 || mc.Port > 65535 {
		return nil, fmt.Errorf("media port %d out of range", mc.Port)
	}
	return &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(int(mc.Port)))}, nil
}

// requestURL is t's base with path and the token.
func (t *token) requestURL(path string) string {
	u := *t.base
	u.Path += path
	u.RawQuery = url.Values{"auth": {t.auth}}.Encode()
	return u.String()
}

// Upload sends blobLen bytes of blob, whose SHA-256 is encSHA256, as a
// msgType blob and returns its direct path, which the message carries. When
// blob is an io.ReaderAt and io.Seeker (a file), a failed attempt is tried
// again like a download, each attempt reading its own section of blob from
// its current offset; otherwise there is one attempt.
func (c *Client) Upload(ctx context.Context, msgType string, blob io.Reader, blobLen int64, encSHA256 []byte) (string, error) {
	switch {
	case !slices.Contains(media.Names(), msgType):
		return "", fmt.Errorf("upload: unknown media type %q", msgType)
	case len(encSHA256) != sha256.Size:
		return "", fmt.Errorf("upload: blob hash of %d bytes, want %d", len(encSHA256), sha256.Size)
	case blobLen <= 0:
		return "", errors.New("upload: empty blob")
	}
	// A blob that can be read at any offset is retried, each attempt
	// reading through its own section: the transport may still be reading
	// an earlier attempt's body when it returns.
	readerAt, _ := blob.(io.ReaderAt)
	seeker, _ := blob.(io.Seeker)
	retries := 0
	var start int64
	if readerAt != nil && seeker != nil {
		retries = max(c.cfg.Retries, 0)
		var err error
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			return "", fmt.Errorf("upload: %w", err)
		}
	}
	path := "/mms/" + msgType + "/" + base64.RawURLEncoding.EncodeToString(encSHA256)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := c.sleep(ctx, attempt); err != nil {
				return "", err
			}
		}
		body := blob
		if retries > 0 {
			body = io.NewSectionReader(readerAt, start, blobLen)
		}
		dp, err := c.uploadOnce(ctx, path, body, blobLen)
		if err == nil {
			return dp, nil
		}
		if ctx.Err() != nil || Permanent(err) || attempt >= retries {
			return "", fmt.Errorf("upload: %w", err)
		}
		c.log.Debug("media upload failed; retrying", "attempt", attempt+1, "err", err)
	}
}

func (c *Client) uploadOnce(ctx context.Context, path string, blob io.Reader, blobLen int64) (string, error) {
	t, err := c.conn(ctx)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.UploadTimeout)
	defer cancel()
	// NopCloser: the transport closes the body it was given, and blob is
	// the caller's.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.requestURL(path), io.NopCloser(io.LimitReader(blob, blobLen)))
	if err != nil {
		return "", err
	}
	req.ContentLength = blobLen
	req.Header.Set("Content-Type", "application/octet-stream")
	// The server refuses a bad token, type, hash or size before it reads
	// the body; waiting for its 100 Continue sends no body to be refused
	// and gets the refusal back instead of a reset connection.
	req.Header.Set("Expect", "100-continue")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", c.statusError(t, resp.StatusCode, body)
	}
	var out struct {
		DirectPath string `json:"direct_path"`
	}
	if err := json.Unmarshal(body, &out); err != nil || !validPath(out.DirectPath) {
		return "", fmt.Errorf("media server answered %q, want {\"direct_path\":\"/…\"}", bytes.TrimSpace(body))
	}
	return out.DirectPath, nil
}

// Download fetches the blob at directPath into w and returns its length. A
// blob longer than maxLen is refused (ErrTooLarge) without reading it all. A
// failed attempt is tried again Retries times, with backoff; a retry resumes
// after the bytes w already got. The caller verifies what it got (hashes
// and MAC): the server is not trusted with the content.
func (c *Client) Download(ctx context.Context, directPath string, w io.Writer, maxLen int64) (int64, error) {
	if !validPath(directPath) {
		return 0, fmt.Errorf("download: bad direct path %q", directPath)
	}
	var n int64
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := c.sleep(ctx, attempt); err != nil {
				return n, err
			}
		}
		got, err := c.downloadOnce(ctx, directPath, w, n, maxLen)
		n += got
		if err == nil {
			return n, nil
		}
		if ctx.Err() != nil || Permanent(err) || errors.Is(err, errWrite) || attempt >= c.cfg.Retries {
			return n, fmt.Errorf("download: %w", err)
		}
		c.log.Debug("media download failed; retrying", "attempt", attempt+1, "have", n, "err", err)
	}
}

// errWrite marks a failure of the caller's writer: not worth a retry.
var errWrite = errors.New("writing the download")

// downloadOnce fetches the blob from offset on (the bytes before it were
// written already) and returns how many bytes it wrote.
func (c *Client) downloadOnce(ctx context.Context, path string, w io.Writer, offset, maxLen int64) (int64, error) {
	t, err := c.conn(ctx)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DownloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.requestURL(path), nil)
	if err != nil {
		return 0, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body := io.Reader(resp.Body)
	switch {
	case resp.StatusCode == http.StatusOK:
		if resp.ContentLength > maxLen {
			return 0, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, resp.ContentLength, maxLen)
		}
		if offset > 0 { // the server ignored the range: skip what we have
			if _, err := io.CopyN(io.Discard, body, offset); err != nil {
				return 0, err
			}
		}
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", offset)) {
			return 0, fmt.Errorf("media server answered the range from %d with %q", offset, resp.Header.Get("Content-Range"))
		}
		if resp.ContentLength >= 0 && offset+resp.ContentLength > maxLen {
			return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxLen)
		}
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return 0, c.statusError(t, resp.StatusCode, b)
	}
	n, err := io.Copy(writerFunc(func(p []byte) (int, error) {
		n, err := w.Write(p)
		if err != nil {
			err = fmt.Errorf("%w: %w", errWrite, err)
		}
		return n, err
	}), io.LimitReader(body, maxLen-offset+1))
	if err != nil {
		return n, err
	}
	if offset+n > maxLen {
		return n, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxLen)
	}
	return n, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// statusError turns a refusal into a *StatusError, dropping a token the
// server no longer accepts.
func (c *Client) statusError(t *token, code int, body []byte) error {
	if code == http.StatusUnauthorized {
		c.drop(t)
	}
	var e struct {
		Error string `json:"error"`
	}
	text := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		text = e.Error
	}
	return &StatusError{Code: code, Text: text}
}

// sleep waits before retry number attempt: RetryBase, doubled each time.
func (c *Client) sleep(ctx context.Context, attempt int) error {
	d := c.cfg.RetryBase << min(attempt-1, 10)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// validPath accepts a server-relative path: it is appended to the base URL,
// so it must not carry a query, a fragment or a host of its own.
func validPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "//") && !strings.ContainsAny(p, "?#\\ \t\r\n") && !strings.Contains(p, "..")
}
