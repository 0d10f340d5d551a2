package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// mediaClient talks to the test media server without pinning (the pin is
// mediaconn's business, tested there); no keep-alive, so nothing lingers.
// Uploads ask for 100-continue, as mediaconn does, so a refusal comes back
// before the body is sent.
func mediaClient() *http.Client {
	return &http.Client{Timeout: wait, Transport: &http.Transport{DisableKeepAlives: true,
		ExpectContinueTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

type mediaAnswer struct {
	status int
	body   map[string]string
	raw    []byte
}

func (n *testNet) mediaDo(t *testing.T, method, path, token string, body io.Reader, length int64) mediaAnswer {
	t.Helper()
	u := n.media + path
	if token != "" {
		u += "?auth=" + token
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	if method == http.MethodPost {
		req.Header.Set("Expect", "100-continue")
	}
	resp, err := mediaClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := mediaAnswer{status: resp.StatusCode, raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		json.Unmarshal(raw, &a.body)
	}
	return a
}

func (n *testNet) token(account string, exp time.Time) string {
	return mediaToken(n.keys.MediaSecret, account, exp)
}

func encPath(typ string, blob []byte) string {
	h := sha256.Sum256(blob)
	return "/mms/" + typ + "/" + base64.RawURLEncoding.EncodeToString(h[:])
}

// TestMediaConnIQ: a session gets a token for its account, the media port,
// the hash of the TLS certificate and the base URL override; a registration
// connection may not ask.
func TestMediaConnIQ(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{MediaURL: "https://media.example:8443"})
	const number = "15550007001"
	key := n.register(t, number, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	c := n.dial(t, number, key, clientOpts{}).connected(t)
	res, err := c.iq(t, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_MediaConn{MediaConn: &chatdv1.MediaConn{}}})
	if err != nil {
		t.Fatal(err)
	}
	got := res.GetMediaConnResult()
	k := n.keys
	leaf := sha256.Sum256(k.TLS.Certificate[0])
	want := &chatdv1.MediaConnResult{Auth: got.GetAuth(), Ttl: 300, Host: "https://media.example:8443", CertSha256: leaf[:],
		Port: uint32(n.srv.mediaPort)}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("MediaConnResult mismatch (-want +got):\n%s", diff)
	}
	if acct, ok := checkMediaToken(k.MediaSecret, got.GetAuth(), time.Now()); !ok || acct != number {
		t.Errorf("token %q: account %q, valid %v; want %s, valid", got.GetAuth(), acct, ok, number)
	}
	if n.srv.mediaPort == 0 || !strings.HasSuffix(n.media, fmt.Sprintf(":%d", n.srv.mediaPort)) {
		t.Errorf("advertised port %d, media server at %s", n.srv.mediaPort, n.media)
	}

	err = n.registration(t, "15550007002", newKey(t), func(iq iqFunc) error {
		if _, err := iq(t.Context(), &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_MediaConn{MediaConn: &chatdv1.MediaConn{}}}); err == nil {
			return fmt.Errorf("MediaConn on a registration connection answered")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func TestMediaTokens(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	now := time.Now()
	valid := mediaToken(secret, "15550007003", now.Add(time.Minute))
	parts := strings.Split(valid, ".") // account, expiry, MAC
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid", valid, true},
		{"expired", mediaToken(secret, "15550007003", now.Add(-time.Second)), false},
		{"other secret", mediaToken(bytes.Repeat([]byte{8}, 32), "15550007003", now.Add(time.Minute)), false},
		{"other account, same MAC", "15550007004." + parts[1] + "." + parts[2], false},
		{"longer expiry, same MAC", parts[0] + ".99999999999." + parts[2], false},
		{"not a number", mediaToken(secret, "alice", now.Add(time.Minute)), false},
		{"empty", "", false},
		{"no MAC", "15550007003.99999999999", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acct, ok := checkMediaToken(secret, tt.token, now)
			if ok != tt.ok || (ok && acct != "15550007003") {
				t.Errorf("checkMediaToken(%q) = %q, %v; want ok %v", tt.token, acct, ok, tt.ok)
			}
		})
	}
}

// TestMediaServer: upload and download with the HTTP status of every
// refusal; a blob uploaded twice is stored once and its expiry extended.
func TestMediaServer(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const account = "15550007010"
	tok := n.token(account, time.Now().Add(time.Minute))
	blob := make([]byte, 70_000)
	rand.Read(blob)
	sum := sha256.Sum256(blob)
	hexSum := hex.EncodeToString(sum[:])

	up := n.mediaDo(t, http.MethodPost, encPath("image", blob), tok, bytes.NewReader(blob), int64(len(blob)))
	if up.status != http.StatusOK || up.body["direct_path"] != "/v/"+hexSum {
		t.Fatalf("upload = %d %s, want 200 with direct_path /v/%s", up.status, up.raw, hexSum)
	}
	n.waitLog(t, "media upload", "account="+account, "type=image", "blob_sha256="+hexSum, "size=70000", "again=false")
	var firstExp int64
	if err := n.db.QueryRow("SELECT expires_at FROM media_blobs WHERE hash = ? AND uploader = ? AND size = ?", hexSum, account, len(blob)).Scan(&firstExp); err != nil {
		t.Fatalf("media_blobs row: %v", err)
	}
	if d := time.Until(time.UnixMilli(firstExp)); d < DefaultMediaTTL-time.Minute || d > DefaultMediaTTL {
		t.Errorf("blob expires in %v, want the default TTL %v", d, DefaultMediaTTL)
	}

	// The same blob again, by another account: fine, stored once.
	other := n.token("15550007011", time.Now().Add(time.Minute))
	again := n.mediaDo(t, http.MethodPost, encPath("document", blob), other, bytes.NewReader(blob), int64(len(blob)))
	if again.status != http.StatusOK || again.body["direct_path"] != "/v/"+hexSum {
		t.Fatalf("second upload = %d %s", again.status, again.raw)
	}
	if got := count(t, n.db, "SELECT COUNT(*) FROM media_blobs WHERE uploader = ?", account); got != 1 {
		t.Errorf("media_blobs rows of the first uploader = %d, want 1", got)
	}

	// Any account's token downloads it, whole or by range.
	down := n.mediaDo(t, http.MethodGet, "/v/"+hexSum, other, nil, 0)
	if down.status != http.StatusOK || !bytes.Equal(down.raw, blob) {
		t.Fatalf("download = %d, %d bytes; want 200 and the blob", down.status, len(down.raw))
	}

	long := bytes.Repeat([]byte("x"), 4096)
	for _, tt := range []struct {
		name         string
		method, path string
		token        string
		body         []byte
		length       int64 // -1: chunked
		want         int
	}{
		{"upload without token", "POST", encPath("image", blob), "", blob, int64(len(blob)), 401},
		{"upload with a forged token", "POST", encPath("image", blob), tok[:len(tok)-2] + "AA", blob, int64(len(blob)), 401},
		{"upload with an expired token", "POST", encPath("image", blob), n.token(account, time.Now().Add(-time.Second)), blob, int64(len(blob)), 401},
		{"unknown type", "POST", encPath("gif", blob), tok, blob, int64(len(blob)), 400},
		{"hash not base64url", "POST", "/mms/image/not+base64", tok, blob, int64(len(blob)), 400},
		{"wrong hash", "POST", encPath("image", long), tok, blob, int64(len(blob)), 400},
		{"empty", "POST", encPath("image", nil), tok, nil, 0, 400},
		{"declared too large", "POST", encPath("image", blob), tok, nil, MaxMediaBlob + 1, 413},
		{"download without token", "GET", "/v/" + hexSum, "", nil, 0, 401},
		{"download unknown", "GET", "/v/" + strings.Repeat("ab", 32), tok, nil, 0, 404},
		{"download bad hash", "GET", "/v/" + strings.Repeat("zz", 32), tok, nil, 0, 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != nil {
				body = bytes.NewReader(tt.body)
			}
			if tt.length > MaxMediaBlob { // only the header: refused before the body is read
				body = io.LimitReader(zeros{}, tt.length)
			}
			if got := n.mediaDo(t, tt.method, tt.path, tt.token, body, tt.length); got.status != tt.want {
				t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, got.status, got.raw, tt.want)
			}
		})
	}

	// A body without a declared length is cut at the limit.
	t.Run("streamed too large", func(t *testing.T) {
		big := io.LimitReader(zeros{}, MaxMediaBlob+1)
		if got := n.mediaDo(t, "POST", encPath("document", blob), tok, big, -1); got.status != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked upload over the limit = %d %s, want 413", got.status, got.raw)
		}
	})
	tmps, _ := os.ReadDir(filepath.Join(n.srv.vol.Root(), "tmp"))
	if len(tmps) != 0 {
		t.Errorf("%d temporary files left after refused uploads", len(tmps))
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestMediaExpiry: the janitor deletes an expired blob, row and file; the
// blob is gone for downloads as soon as it expires.
func TestMediaExpiry(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	tok := n.token("15550007020", time.Now().Add(time.Minute))
	var paths []string
	var blobs [][]byte
	for range 2 {
		b := make([]byte, 1000)
		rand.Read(b)
		up := n.mediaDo(t, "POST", encPath("audio", b), tok, bytes.NewReader(b), int64(len(b)))
		if up.status != http.StatusOK {
			t.Fatalf("upload = %d %s", up.status, up.raw)
		}
		paths, blobs = append(paths, up.body["direct_path"]), append(blobs, b)
	}
	expired := strings.TrimPrefix(paths[0], "/v/")
	if _, err := n.db.Exec("UPDATE media_blobs SET expires_at = ? WHERE hash = ?", time.Now().Add(-time.Second).UnixMilli(), expired); err != nil {
		t.Fatal(err)
	}
	if got := n.mediaDo(t, "GET", paths[0], tok, nil, 0); got.status != http.StatusNotFound {
		t.Errorf("download of an expired blob = %d, want 404", got.status)
	}
	file, err := n.srv.vol.Path(expired)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("blob file before the janitor: %v", err)
	}

	if err := n.srv.expireMedia(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := count(t, n.db, "SELECT COUNT(*) FROM media_blobs WHERE hash = ?", expired); got != 0 {
		t.Errorf("expired row still there")
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("expired blob file: %v, want it removed", err)
	}
	n.waitLog(t, "deleted expired media blobs", "count=1")
	// The other blob is untouched.
	if got := n.mediaDo(t, "GET", paths[1], tok, nil, 0); got.status != http.StatusOK || !bytes.Equal(got.raw, blobs[1]) {
		t.Errorf("download of the live blob = %d", got.status)
	}
	// Uploading the expired blob again brings it back.
	if up := n.mediaDo(t, "POST", encPath("audio", blobs[0]), tok, bytes.NewReader(blobs[0]), 1000); up.status != http.StatusOK {
		t.Fatalf("upload again = %d %s", up.status, up.raw)
	}
	if got := n.mediaDo(t, "GET", paths[0], tok, nil, 0); got.status != http.StatusOK || !bytes.Equal(got.raw, blobs[0]) {
		t.Errorf("download after the new upload = %d", got.status)
	}
}
