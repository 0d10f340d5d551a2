package medialib

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/db/keystore"
	"github.com/openwaba/openwaba/media/volume"
)

func newStore(t *testing.T) (*Store, *sql.DB) {
	t.Helper()
	d := dbtest.New(t, db.Core)
	secret := make([]byte, 32)
	rand.Read(secret)
	ks, err := keystore.New(secret)
	if err != nil {
		t.Fatal(err)
	}
	vol, err := volume.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return New(d, vol, ks, slog.New(slog.DiscardHandler)), d
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestUploadOpenDelete(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	body := randomBytes(300 << 10)
	id, err := s.Upload(ctx, 1, "image/jpeg", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 36 || strings.Count(id, "-") != 4 {
		t.Errorf("media id %q is not a UUID", id)
	}
	f, in, err := s.Open(ctx, 1, id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	sum := sha256.Sum256(body)
	if !bytes.Equal(got, body) || in.MimeType != "image/jpeg" || in.Size != int64(len(body)) || in.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("Open: %d bytes (equal %v), %+v", len(got), bytes.Equal(got, body), in)
	}
	if _, _, err := s.Open(ctx, 2, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("another account opened the file: %v", err)
	}

	// The same content uploaded twice is one file; it leaves the volume with
	// the last id that refers to it.
	id2, err := s.Upload(ctx, 1, "image/jpeg", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if id2 == id {
		t.Fatal("two uploads got the same id")
	}
	if err := s.Delete(ctx, 1, id); err != nil {
		t.Fatal(err)
	}
	if !s.vol.Has(in.SHA256) {
		t.Fatal("deleting one of two ids removed the shared file")
	}
	if _, _, err := s.Open(ctx, 1, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, 1, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, 1, id2); err != nil {
		t.Fatal(err)
	}
	// The content was written moments ago (it might be a concurrent upload
	// of the same bytes): it stays until garbage collection.
	if !s.vol.Has(in.SHA256) {
		t.Fatal("recent content was removed by Delete")
	}
	p, _ := s.vol.Path(in.SHA256)
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	if err := s.sweepOrphans(ctx); err != nil {
		t.Fatal(err)
	}
	if s.vol.Has(in.SHA256) {
		t.Error("the content stayed on the volume after its last id was deleted and collection ran")
	}

	// Deleting the last id of old content removes it at once.
	id3, err := s.Upload(ctx, 1, "image/jpeg", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, 1, id3); err != nil {
		t.Fatal(err)
	}
	if s.vol.Has(in.SHA256) {
		t.Error("old content stayed on the volume after its last id was deleted")
	}
}

// TestLinkSSRF: without AllowPrivate, links to loopback, private and
// link-local addresses are refused, by literal address, by name, and when a
// redirect points there; the server behind them never sees a request.
func TestLinkSSRF(t *testing.T) {
	s, _ := newStore(t)
	hit := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit <- r.URL.Path
		w.Header().Set("Content-Type", "image/png")
		w.Write([]byte("png"))
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	for _, link := range []string{
		srv.URL + "/a.png",
		fmt.Sprintf("http://localhost:%d/a.png", port),
		fmt.Sprintf("http://[::1]:%d/a.png", port),
		"http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.1/a.png",
	} {
		s.Fetch.Timeout = 2 * time.Second
		_, err := s.FetchLink(t.Context(), 1, link, "", "image")
		if !errors.Is(err, ErrLink) || !strings.Contains(err.Error(), "not public") {
			t.Errorf("FetchLink(%s) = %v, want a refusal of the address", link, err)
		}
	}
	select {
	case p := <-hit:
		t.Errorf("the private server was reached (%s)", p)
	default:
	}

	// Allowed explicitly, the same link works.
	s.Fetch.AllowPrivate = true
	if _, err := s.FetchLink(t.Context(), 1, srv.URL+"/a.png", "", "image"); err != nil {
		t.Errorf("FetchLink with AllowPrivate: %v", err)
	}
	for _, link := range []string{"file:///etc/passwd", "ftp://example.com/a.png", "gopher://x", "http:///nohost", "not a url"} {
		if _, err := s.FetchLink(t.Context(), 1, link, "", "image"); !errors.Is(err, ErrLink) {
			t.Errorf("FetchLink(%q) = %v, want ErrLink", link, err)
		}
	}
}

// TestLinkLimits: redirects are limited, the size capped (with and without
// Content-Length), the MIME type checked against the message type, errors
// and slow servers refused, and nothing of a refused link is stored.
func TestLinkLimits(t *testing.T) {
	s, _ := newStore(t)
	s.Fetch.AllowPrivate = true
	s.Fetch.Timeout = 500 * time.Millisecond
	img := randomBytes(1000)
	release := make(chan struct{})
	defer close(release)
	mux := http.NewServeMux()
	mux.HandleFunc("/img", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(img)
	})
	mux.HandleFunc("/redirect/{n}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscan(r.PathValue("n"), &n)
		if n == 0 {
			http.Redirect(w, r, "/img", http.StatusFound)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/redirect/%d", n-1), http.StatusFound)
	})
	mux.HandleFunc("/to-file", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	big := func(chunked bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "image/jpeg")
			if !chunked {
				w.Header().Set("Content-Length", fmt.Sprint(5<<20+1))
			}
			buf := make([]byte, 64<<10)
			for sent := 0; sent < 5<<20+1; sent += len(buf) {
				if _, err := w.Write(buf[:min(len(buf), 5<<20+1-sent)]); err != nil {
					return
				}
			}
		}
	}
	mux.HandleFunc("/big", big(false))
	mux.HandleFunc("/big-chunked", big(true))
	mux.HandleFunc("/pdf", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		w.Write(img)
	})
	mux.HandleFunc("/missing", http.NotFound)
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		user, pass, basic := r.BasicAuth()
		if r.Header.Get("Authorization") != "Bearer tok-123" && !(basic && user == "u" && pass == "p:w") {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(img)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := t.Context()

	fe, err := s.FetchLink(ctx, 1, srv.URL+"/redirect/2", "", "image")
	if err != nil {
		t.Fatalf("3 redirects: %v", err)
	}
	sum := sha256.Sum256(img)
	if fe.SHA256 != hex.EncodeToString(sum[:]) || fe.Size != int64(len(img)) || fe.MimeType != "image/jpeg" {
		t.Errorf("fetched %+v", fe)
	}
	if err := s.vol.Remove(fe.SHA256); err != nil {
		t.Fatal(err)
	}
	// A PDF is fine as a document, not as an image.
	if _, err := s.FetchLink(ctx, 1, srv.URL+"/pdf", "", "document"); err != nil {
		t.Errorf("a PDF as a document: %v", err)
	}
	for _, c := range []struct{ path, msgType, want string }{
		{"/redirect/3", "image", "redirects"},
		{"/to-file", "image", "redirect"},
		{"/big", "image", "bytes, more than"},
		{"/big-chunked", "image", "larger than the limit"},
		{"/pdf", "image", "cannot be sent as image"},
		{"/missing", "image", "404"},
		{"/slow", "image", "timed out"},
		{"/auth", "image", "401"},
	} {
		_, err := s.FetchLink(ctx, 1, srv.URL+c.path, "", c.msgType)
		if !errors.Is(err, ErrLink) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("FetchLink(%s as %s) = %v, want ErrLink saying %q", c.path, c.msgType, err, c.want)
		}
	}

	// Provider credentials.
	if _, err := s.FetchLink(ctx, 1, srv.URL+"/auth", "nobody", "image"); !errors.Is(err, ErrLink) {
		t.Errorf("an unknown provider = %v, want ErrLink", err)
	}
	if err := s.SetProviders(ctx, 1, []Provider{{Name: "bear", Type: "www", Bearer: "tok-123", Hosts: []string{"127.0.0.1"}}, {Name: "basic", Type: "www", BasicUsername: "u", BasicPassword: "p:w", Hosts: []string{"127.0.0.1"}}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"bear", "basic"} {
		if _, err := s.FetchLink(ctx, 1, srv.URL+"/auth", p, "image"); err != nil {
			t.Errorf("FetchLink with provider %s: %v", p, err)
		}
	}
	if _, err := s.FetchLink(ctx, 2, srv.URL+"/auth", "bear", "image"); !errors.Is(err, ErrLink) {
		t.Errorf("another account's provider was used: %v", err)
	}

	// Refused links left nothing on the volume but the two fetched files.
	left, err := os.ReadDir(s.vol.Root() + "/tmp")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("%d temporary files left behind", len(left))
	}
}

func TestProviders(t *testing.T) {
	s, d := newStore(t)
	ctx := t.Context()
	if err := s.SetProviders(ctx, 1, []Provider{{Name: "a", Type: "www", Bearer: "secret-bearer", Hosts: []string{"a.example"}}, {Name: "b", Type: "www", BasicUsername: "user", BasicPassword: "secret-pass", Hosts: []string{"*.b.example", "b.example:8443"}}}); err != nil {
		t.Fatal(err)
	}
	// Replacing a is an update, not a second row.
	if err := s.SetProviders(ctx, 1, []Provider{{Name: "a", Type: "www", Bearer: "secret-bearer-2", Hosts: []string{"a2.example"}}}); err != nil {
		t.Fatal(err)
	}
	ps, err := s.Providers(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []Provider{
		{Name: "a", Type: "www", Bearer: "secret-bearer-2", Hosts: []string{"a2.example"}},
		{Name: "b", Type: "www", BasicUsername: "user", BasicPassword: "secret-pass", Hosts: []string{"*.b.example", "b.example:8443"}},
	}
	if diff := cmp.Diff(want, ps); diff != "" {
		t.Errorf("providers mismatch (-want +got):\n%s", diff)
	}
	var raw []byte
	if err := d.QueryRow("SELECT CONCAT(COALESCE(bearer, ''), COALESCE(basic_password, '')) FROM media_providers").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("secret")) {
		t.Error("a provider secret is stored in the clear")
	}
	if ps, _ := s.Providers(ctx, 2); len(ps) != 0 {
		t.Errorf("account 2 sees %d providers", len(ps))
	}
	if err := s.DeleteProvider(ctx, 1, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProvider(ctx, 1, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting a missing provider = %v", err)
	}
	if ps, _ := s.Providers(ctx, 1); len(ps) != 1 || ps[0].Name != "b" {
		t.Errorf("after delete: %+v", ps)
	}
}

// TestCollectGarbage: files unused for 30 days go, with their rows and
// their content; recent ones stay; the result is reported by webhook.
func TestCollectGarbage(t *testing.T) {
	s, d := newStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var old, recent []string
	for i := range 3 {
		id, err := s.Upload(ctx, 1, "application/pdf", bytes.NewReader(randomBytes(1000)))
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			old = append(old, id)
		} else {
			recent = append(recent, id)
		}
	}
	other, err := s.Upload(ctx, 2, "application/pdf", bytes.NewReader(randomBytes(1000)))
	if err != nil {
		t.Fatal(err)
	}
	aged := time.Now().Add(-UnusedFor - time.Hour)
	shas := map[string]string{}
	for _, id := range append(old, other) {
		in, err := s.Lookup(ctx, map[bool]int64{true: 2, false: 1}[id == other], id)
		if err != nil {
			t.Fatal(err)
		}
		shas[id] = in.SHA256
		if _, err := d.Exec("UPDATE media SET last_used_at = ? WHERE id = ?", aged.UnixMilli(), id); err != nil {
			t.Fatal(err)
		}
		p, _ := s.vol.Path(in.SHA256)
		if err := os.Chtimes(p, aged, aged); err != nil {
			t.Fatal(err)
		}
	}
	// Content without any row (a crash between writing and recording it),
	// old enough: collected too; a recent one is left alone.
	orphanOld, _, err := s.vol.Put(bytes.NewReader(randomBytes(900)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.vol.Path(orphanOld)
	if err := os.Chtimes(p, aged, aged); err != nil {
		t.Fatal(err)
	}
	orphanNew, _, err := s.vol.Put(bytes.NewReader(randomBytes(900)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CollectGarbage(ctx, 1); err != nil {
		t.Fatal(err)
	}
	var payload []byte
	deadline := time.Now().Add(10 * time.Second)
	for d.QueryRow("SELECT payload FROM webhook_events WHERE account_id = 1 AND kind = 'service'").Scan(&payload) != nil {
		if time.Now().After(deadline) {
			t.Fatal("no webhook reported the collection")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var rep gcReport
	if err := json.Unmarshal(payload, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Media.GC.ItemsDeleted != 2 || rep.Media.GC.Status != "complete" {
		t.Errorf("report %s, want 2 items deleted, complete", payload)
	}
	for _, id := range old {
		if _, _, err := s.Open(ctx, 1, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("old media %s: %v, want gone", id, err)
		}
		if s.vol.Has(shas[id]) {
			t.Errorf("old media %s left its file", id)
		}
	}
	for _, id := range recent {
		if f, _, err := s.Open(ctx, 1, id); err != nil {
			t.Errorf("recent media %s: %v", id, err)
		} else {
			f.Close()
		}
	}
	if s.vol.Has(orphanOld) || !s.vol.Has(orphanNew) {
		t.Errorf("orphans after collection: old one there %v (want false), recent one there %v (want true)", s.vol.Has(orphanOld), s.vol.Has(orphanNew))
	}
	// Collection is per account: account 2's old file stays until asked.
	if !s.vol.Has(shas[other]) {
		t.Error("account 2's file went with account 1's collection")
	}
}

// TestProviderHosts: a provider's credentials reach only its hosts. A link
// to another host is refused before any request, and a redirect to another
// origin loses them (a loopback listener counts requests and what they
// carried).
func TestProviderHosts(t *testing.T) {
	s, _ := newStore(t)
	s.Fetch.AllowPrivate = true // the listeners are on loopback
	ctx := t.Context()
	type hit struct{ host, auth string }
	hits := make(chan hit, 32)
	img := randomBytes(100)
	var other *httptest.Server
	other = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- hit{"other", r.Header.Get("Authorization")}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(img)
	}))
	defer other.Close()
	own := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- hit{"own", r.Header.Get("Authorization")}
		if r.URL.Path == "/away" {
			http.Redirect(w, r, other.URL+"/x.jpg", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(img)
	}))
	defer own.Close()
	ownHost := own.Listener.Addr().String() // 127.0.0.1:port
	if err := s.SetProviders(ctx, 1, []Provider{{Name: "corp", Type: "www", Bearer: "corp-SECRET", Hosts: []string{ownHost}}}); err != nil {
		t.Fatal(err)
	}
	count := func() []hit {
		var out []hit
		for {
			select {
			case h := <-hits:
				out = append(out, h)
			default:
				return out
			}
		}
	}

	// Its own host gets the credentials.
	if _, err := s.FetchLink(ctx, 1, own.URL+"/a.jpg", "corp", "image"); err != nil {
		t.Fatal(err)
	}
	if h := count(); len(h) != 1 || h[0].auth != "Bearer corp-SECRET" {
		t.Errorf("own host saw %+v, want one request with the bearer", h)
	}
	// Another host (another port of the same address is another host here):
	// refused with no request at all.
	_, err := s.FetchLink(ctx, 1, other.URL+"/a.jpg", "corp", "image")
	if !errors.Is(err, ErrLink) || !strings.Contains(err.Error(), "not among the hosts") {
		t.Errorf("link to another host = %v, want a refusal naming the provider's hosts", err)
	}
	if h := count(); len(h) != 0 {
		t.Errorf("a link outside the provider's hosts made requests: %+v", h)
	}
	// A redirect to another origin: the credentials stay behind.
	if _, err := s.FetchLink(ctx, 1, own.URL+"/away", "corp", "image"); err != nil {
		t.Fatal(err)
	}
	h := count()
	if len(h) != 2 || h[0] != (hit{"own", "Bearer corp-SECRET"}) || h[1] != (hit{"other", ""}) {
		t.Errorf("redirect: %+v, want the bearer at the own host only", h)
	}
	// Without private links allowed, credentials go over https only.
	s.Fetch.AllowPrivate = false
	if _, err := s.FetchLink(ctx, 1, own.URL+"/a.jpg", "corp", "image"); !errors.Is(err, ErrLink) || !strings.Contains(err.Error(), "https only") {
		t.Errorf("plain http with credentials = %v, want a refusal", err)
	}
	if h := count(); len(h) != 0 {
		t.Errorf("requests made: %+v", h)
	}
	// A provider stored before hosts existed refuses every link.
	s.Fetch.AllowPrivate = true
	if err := s.SetProviders(ctx, 1, []Provider{{Name: "old", Type: "www", Bearer: "old-SECRET"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FetchLink(ctx, 1, own.URL+"/a.jpg", "old", "image"); !errors.Is(err, ErrLink) || !strings.Contains(err.Error(), "no hosts configured") {
		t.Errorf("provider without hosts = %v", err)
	}
	if h := count(); len(h) != 0 {
		t.Errorf("requests made: %+v", h)
	}
}

func TestHostPatterns(t *testing.T) {
	for _, c := range []struct {
		pattern string
		valid   bool
		match   []string
		nomatch []string
	}{
		{"media.example.com", true, []string{"https://media.example.com/a", "https://MEDIA.example.com:8443/a"}, []string{"https://example.com/", "https://x.media.example.com/", "https://media.example.com.evil.test/"}},
		{"*.example.com", true, []string{"https://a.example.com/", "https://b.a.example.com/"}, []string{"https://example.com/", "https://aexample.com/"}},
		{"media.example.com:8443", true, []string{"https://media.example.com:8443/"}, []string{"https://media.example.com/", "https://media.example.com:443/"}},
		{"cdn.example:443", true, []string{"https://cdn.example/"}, []string{"http://cdn.example/"}},
		{"127.0.0.1", true, []string{"http://127.0.0.1:9/"}, []string{"http://127.0.0.2/"}},
		{"[2001:db8::1]:8443", true, []string{"https://[2001:db8::1]:8443/"}, []string{"https://[2001:db8::1]/"}},
		{"*.com", false, nil, nil},
		{"a.*.com", false, nil, nil},
		{"exa mple.com", false, nil, nil},
		{"2001:db8::1", false, nil, nil},
		{"host:99999", false, nil, nil},
		{"", false, nil, nil},
	} {
		err := ValidHostPattern(c.pattern)
		if (err == nil) != c.valid {
			t.Errorf("ValidHostPattern(%q) = %v, want valid %v", c.pattern, err, c.valid)
			continue
		}
		p := Provider{Hosts: []string{c.pattern}}
		for _, raw := range c.match {
			if u, _ := url.Parse(raw); !p.Allows(u) {
				t.Errorf("%q does not allow %s", c.pattern, raw)
			}
		}
		for _, raw := range c.nomatch {
			if u, _ := url.Parse(raw); p.Allows(u) {
				t.Errorf("%q allows %s", c.pattern, raw)
			}
		}
	}
}
