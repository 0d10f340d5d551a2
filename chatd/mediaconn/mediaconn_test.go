package mediaconn_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/openwaba/openwaba/chatd/mediaconn"
	"github.com/openwaba/openwaba/chatd/server"
	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/media"
	"github.com/openwaba/openwaba/media/encrypt"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// TestMain fails the package if a goroutine outlives the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 15 * time.Second

// network is a real chatd on loopback with its media server.
type network struct {
	db       *sql.DB
	chat     string
	media    string // the media server's address
	admin    string
	mediaDir string
	root     []byte
}

func newNetwork(t *testing.T) *network {
	t.Helper()
	d := dbtest.New(t, db.Chatd)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	keys, err := server.LoadKeys(t.Context(), d, log)
	if err != nil {
		t.Fatal(err)
	}
	var ls []net.Listener
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	n := &network{db: d, chat: ls[0].Addr().String(), admin: ls[1].Addr().String(), media: ls[2].Addr().String(),
		mediaDir: t.TempDir(), root: keys.RootPublic()}
	srv := server.New(server.Config{Listeners: ls[:1], Admin: ls[1], Media: ls[2], MediaDir: n.mediaDir, DB: d, Log: log, Keys: keys})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve = %v", err)
			}
		case <-time.After(wait):
			t.Errorf("Serve did not return within %v", wait)
		}
	})
	return n
}

// connect registers number and keeps a session for it until the test ends.
func (n *network) connect(t *testing.T, number string) *session.Session {
	t.Helper()
	key, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	cfg := session.Config{Addrs: []string{n.chat}, Static: key, RootKey: n.root}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	login := &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_REGISTER, Account: number, ClientVersion: "test/1"}
	err = session.Once(ctx, cfg, login, func(iq func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)) error {
		if _, err := iq(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Register{Register: &chatdv1.RegisterRequest{
			Number: number, Kind: chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER, Method: "sms"}}}); err != nil {
			return err
		}
		code, err := n.code(ctx, number)
		if err != nil {
			return err
		}
		_, err = iq(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Verify{Verify: &chatdv1.VerifyRequest{Number: number, Code: code}}})
		return err
	})
	if err != nil {
		t.Fatalf("register %s: %v", number, err)
	}
	cfg.Login = func() *chatdv1.Login {
		return &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_SESSION, Account: number, ClientVersion: "test/1", Passive: true}
	}
	cfg.Handler = nopHandler{}
	s := session.New(cfg)
	sctx, scancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(sctx) }()
	t.Cleanup(func() { scancel(); <-done })
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.State() != session.Connected {
		if time.Now().After(deadline) {
			t.Fatalf("session of %s not connected within %v", number, wait)
		}
		<-tick.C
	}
	return s
}

func (n *network) code(ctx context.Context, number string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.admin+"/sandbox/codes/"+number, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct{ Code string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Code == "" {
		return "", fmt.Errorf("sandbox code: %s %v", resp.Status, err)
	}
	return body.Code, nil
}

// blobFile returns the path of a stored blob on chatd's volume.
func (n *network) blobFile(directPath string) string {
	h := strings.TrimPrefix(directPath, "/v/")
	return filepath.Join(n.mediaDir, "sha256", h[:2], h[2:4], h)
}

type nopHandler struct{}

func (nopHandler) Connected(context.Context, uint64)       {}
func (nopHandler) Stanza(context.Context, *chatdv1.Stanza) {}
func (nopHandler) StateChanged(session.State)              {}

// counter wraps an IQ function, counting MediaConn requests and letting a
// test change the answers.
type counter struct {
	iq     mediaconn.IQFunc
	n      atomic.Int32
	change func(call int32, r *chatdv1.MediaConnResult)
}

func (c *counter) IQ(ctx context.Context, iq *chatdv1.IQ) (*chatdv1.IQ, error) {
	res, err := c.iq(ctx, iq)
	if err != nil || iq.GetMediaConn() == nil {
		return res, err
	}
	call := c.n.Add(1)
	if c.change != nil {
		c.change(call, res.GetMediaConnResult())
	}
	return res, nil
}

func newClient(s *session.Session, c *counter) *mediaconn.Client {
	c.iq = s.IQ
	return mediaconn.New(mediaconn.Config{IQ: c.IQ, Addr: s.Addr, RetryBase: 10 * time.Millisecond, UploadTimeout: wait, DownloadTimeout: wait})
}

// encrypted returns a real media blob of size plaintext bytes.
func encrypted(t *testing.T, size int) ([]byte, encrypt.Result) {
	t.Helper()
	plain := make([]byte, size)
	rand.Read(plain)
	var blob bytes.Buffer
	res, err := encrypt.Encrypt(&blob, bytes.NewReader(plain), encrypt.NewMediaKey(), media.InfoImage)
	if err != nil {
		t.Fatal(err)
	}
	return blob.Bytes(), res
}

// TestRoundTrip: a blob goes up and comes back byte for byte, through one
// cached token; an upload of the same blob again is fine; a download longer
// than its limit or of an unknown blob is refused.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	s := n.connect(t, "15550008001")
	iqs := &counter{}
	c := newClient(s, iqs)
	ctx := t.Context()

	blob, res := encrypted(t, 300_000)
	path, err := c.Upload(ctx, "image", bytes.NewReader(blob), int64(len(blob)), res.FileEncSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("/v/%x", res.FileEncSHA256); path != want {
		t.Errorf("direct path %q, want %q", path, want)
	}
	again, err := c.Upload(ctx, "image", io.MultiReader(bytes.NewReader(blob)), int64(len(blob)), res.FileEncSHA256) // not seekable
	if err != nil || again != path {
		t.Errorf("second upload = %q, %v; want %q", again, err, path)
	}
	var got bytes.Buffer
	nBytes, err := c.Download(ctx, path, &got, int64(len(blob)))
	if err != nil {
		t.Fatal(err)
	}
	if nBytes != int64(len(blob)) || !bytes.Equal(got.Bytes(), blob) {
		t.Errorf("downloaded %d bytes (equal: %v), want the %d-byte blob", nBytes, bytes.Equal(got.Bytes(), blob), len(blob))
	}
	if got := iqs.n.Load(); got != 1 {
		t.Errorf("MediaConn requests = %d, want 1 (the token is cached)", got)
	}

	// Another client (another account) downloads it with its own token.
	other := newClient(n.connect(t, "15550008002"), &counter{})
	got.Reset()
	if _, err := other.Download(ctx, path, &got, 1<<20); err != nil || !bytes.Equal(got.Bytes(), blob) {
		t.Errorf("download by another account: %v", err)
	}

	got.Reset()
	if _, err := c.Download(ctx, path, &got, int64(len(blob))-1); !errors.Is(err, mediaconn.ErrTooLarge) {
		t.Errorf("download over its limit = %v, want ErrTooLarge", err)
	}
	unknown := "/v/" + strings.Repeat("0", 64)
	if _, err := c.Download(ctx, unknown, io.Discard, 1<<20); !errors.Is(err, mediaconn.ErrNotFound) {
		t.Errorf("download of an unknown blob = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "v/x", "//evil.example/v/x", "/v/x?auth=y", "/v/../x"} {
		if _, err := c.Download(ctx, bad, io.Discard, 1<<20); err == nil {
			t.Errorf("download of direct path %q: no error", bad)
		}
	}
}

// TestRefusedUploads: a bad token (401), a blob that does not match its
// hash (400) and a body over the server's limit (413) are refused, as
// *StatusError; a refused token is replaced by a new one.
func TestRefusedUploads(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	s := n.connect(t, "15550008010")
	ctx := t.Context()
	blob, res := encrypted(t, 1000)

	// A bad token, not seekable: one attempt, 401.
	bad := &counter{change: func(_ int32, r *chatdv1.MediaConnResult) { r.Auth = "15550008010.99999999999.AAAA" }}
	c := newClient(s, bad)
	_, err := c.Upload(ctx, "image", io.MultiReader(bytes.NewReader(blob)), int64(len(blob)), res.FileEncSHA256)
	var se *mediaconn.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized || !errors.Is(err, mediaconn.ErrUnauthorized) {
		t.Fatalf("upload with a bad token = %v, want a 401 StatusError", err)
	}
	// A seekable blob is tried again, with a new token.
	first := &counter{change: func(call int32, r *chatdv1.MediaConnResult) {
		if call == 1 {
			r.Auth = "15550008010.99999999999.AAAA"
		}
	}}
	c = newClient(s, first)
	if _, err := c.Upload(ctx, "image", bytes.NewReader(blob), int64(len(blob)), res.FileEncSHA256); err != nil {
		t.Fatalf("upload after a refused token: %v", err)
	}
	if got := first.n.Load(); got != 2 {
		t.Errorf("MediaConn requests = %d, want 2 (the refused token is replaced)", got)
	}

	c = newClient(s, &counter{})
	wrong := sha256.Sum256([]byte("something else"))
	_, err = c.Upload(ctx, "image", bytes.NewReader(blob), int64(len(blob)), wrong[:])
	if !errors.As(err, &se) || se.Code != http.StatusBadRequest || !mediaconn.Permanent(err) {
		t.Errorf("upload with a wrong hash = %v, want a permanent 400", err)
	}

	huge := io.LimitReader(zeros{}, server.MaxMediaBlob+1)
	_, err = c.Upload(ctx, "document", huge, server.MaxMediaBlob+1, wrong[:])
	if !errors.As(err, &se) || se.Code != http.StatusRequestEntityTooLarge || !errors.Is(err, mediaconn.ErrTooLarge) {
		t.Errorf("oversize upload = %v, want 413", err)
	}

	if _, err := c.Upload(ctx, "gif", bytes.NewReader(blob), int64(len(blob)), res.FileEncSHA256); err == nil {
		t.Error("upload as type gif: no error")
	}
	if got := countFiles(t, filepath.Join(n.mediaDir, "tmp")); got != 0 {
		t.Errorf("%d temporary files left on chatd's volume", got)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestPinnedCertificate: when the certificate hash chatd sent does not match
// the media server's certificate, nothing is uploaded or downloaded, and the
// failure is not retried.
func TestPinnedCertificate(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	s := n.connect(t, "15550008020")
	ctx := t.Context()
	blob, res := encrypted(t, 5000)
	path, err := newClient(s, &counter{}).Upload(ctx, "image", bytes.NewReader(blob), int64(len(blob)), res.FileEncSHA256)
	if err != nil {
		t.Fatal(err)
	}

	flip := &counter{change: func(_ int32, r *chatdv1.MediaConnResult) { r.CertSha256[0] ^= 1 }}
	c := newClient(s, flip)
	var got bytes.Buffer
	if _, err := c.Download(ctx, path, &got, 1<<20); !errors.Is(err, mediaconn.ErrPinMismatch) || !mediaconn.Permanent(err) {
		t.Errorf("download with the wrong pin = %v, want ErrPinMismatch", err)
	}
	if got.Len() != 0 {
		t.Errorf("%d bytes written from a server that failed the pin", got.Len())
	}
	other, oRes := encrypted(t, 5000)
	if _, err := c.Upload(ctx, "image", bytes.NewReader(other), int64(len(other)), oRes.FileEncSHA256); !errors.Is(err, mediaconn.ErrPinMismatch) {
		t.Errorf("upload with the wrong pin = %v, want ErrPinMismatch", err)
	}
	if _, err := os.Stat(n.blobFile(fmt.Sprintf("/v/%x", oRes.FileEncSHA256))); !os.IsNotExist(err) {
		t.Errorf("blob uploaded past a wrong pin: %v", err)
	}
	if got := flip.n.Load(); got != 1 {
		t.Errorf("MediaConn requests = %d, want 1 (a pin mismatch is not retried)", got)
	}
}

// TestDownloadRetries: a download cut in the middle is resumed where it
// stopped, so the caller gets every byte exactly once.
func TestDownloadRetries(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	s := n.connect(t, "15550008030")
	ctx := t.Context()
	blob, res := encrypted(t, 200_000)
	c := newClient(s, &counter{})
	defer c.Close()
	path, err := c.Upload(ctx, "video", bytes.NewReader(blob), int64(len(blob)), res.FileEncSHA256)
	if err != nil {
		t.Fatal(err)
	}
	// A writer that fails after 50 000 bytes would stop the download (the
	// caller's writer failing is not retried) ...
	w := &failingWriter{failAt: 50_000}
	if _, err := c.Download(ctx, path, w, 1<<20); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("download into a failing writer = %v, want its error", err)
	}
	// ... but a connection cut in the middle is: a proxy that cuts the
	// first connection after 64 KiB.
	p := newCutProxy(t, n, s, 64<<10)
	cp := mediaconn.New(mediaconn.Config{IQ: p.iq, Addr: s.Addr, RetryBase: 10 * time.Millisecond})
	defer cp.Close()
	var got bytes.Buffer
	nBytes, err := cp.Download(ctx, path, &got, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if nBytes != int64(len(blob)) || !bytes.Equal(got.Bytes(), blob) {
		t.Errorf("resumed download: %d bytes, equal %v", nBytes, bytes.Equal(got.Bytes(), blob))
	}
	if p.conns.Load() < 2 {
		t.Errorf("proxy saw %d connections, want a retry", p.conns.Load())
	}
}

type failingWriter struct {
	n, failAt int
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.failAt {
		return 0, errors.New("disk full")
	}
	w.n += len(p)
	return len(p), nil
}

// cutProxy forwards TCP to the media server, cutting its first connection
// after cut bytes from the server; its IQ points clients at it.
type cutProxy struct {
	iq    mediaconn.IQFunc
	conns atomic.Int32
}

func newCutProxy(t *testing.T, n *network, s *session.Session, cut int64) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{}
	p.iq = func(ctx context.Context, iq *chatdv1.IQ) (*chatdv1.IQ, error) {
		res, err := s.IQ(ctx, iq)
		if mc := res.GetMediaConnResult(); err == nil && mc != nil {
			mc.Port = uint32(l.Addr().(*net.TCPAddr).Port)
		}
		return res, err
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			first := p.conns.Add(1) == 1
			out, err := net.Dial("tcp", n.media)
			if err != nil {
				in.Close()
				continue
			}
			wg.Go(func() { io.Copy(out, in); out.Close() })
			var r io.Reader = out
			if first {
				r = io.LimitReader(out, cut)
			}
			io.Copy(in, r)
			in.Close()
			out.Close()
		}
	})
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return p
}

func TestHost(t *testing.T) {
	tests := []struct {
		addr, want string
		err        bool
	}{
		{"127.0.0.1:5222", "127.0.0.1", false},
		{"tls://chat.example:443", "chat.example", false},
		{"chatd:5222", "chatd", false},
		{"[::1]:5222", "::1", false},
		{"tls://[2001:db8::1]:443", "2001:db8::1", false},
		{"", "", true},
		{"no-port", "", true},
		{":5222", "", true},
	}
	for _, tt := range tests {
		got, err := mediaconn.Host(tt.addr)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("Host(%q) = %q, %v; want %q (error: %v)", tt.addr, got, err, tt.want, tt.err)
		}
	}
}

// TestTokenExpiry: a token is used until shortly before it expires, then
// replaced.
func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	s := n.connect(t, "15550008040")
	blob, res := encrypted(t, 100)
	for _, tt := range []struct {
		ttl  uint32
		want int32
	}{{300, 1}, {0, 3}} {
		iqs := &counter{change: func(_ int32, r *chatdv1.MediaConnResult) { r.Ttl = tt.ttl }}
		c := newClient(s, iqs)
		for range 3 {
			if _, err := c.Upload(t.Context(), "sticker", bytes.NewReader(blob), int64(len(blob)), res.FileEncSHA256); err != nil {
				t.Fatal(err)
			}
		}
		if got := iqs.n.Load(); got != tt.want {
			t.Errorf("ttl %d s: %d MediaConn requests for 3 uploads, want %d", tt.ttl, got, tt.want)
		}
	}
}
