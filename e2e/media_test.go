package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/e2e/stack"
)

// mediaCase is one media type with a file of a MIME type it accepts.
type mediaCase struct {
	typ, mime, ext    string
	size              int
	caption, filename string
}

var mediaCases = []mediaCase{
	{typ: "image", mime: "image/jpeg", ext: ".jpg", size: 300_000, caption: "our new shop"},
	{typ: "audio", mime: "audio/ogg", ext: ".ogg", size: 200_000},
	{typ: "video", mime: "video/mp4", ext: ".mp4", size: 1_500_000, caption: "how it works"},
	{typ: "document", mime: "application/pdf", ext: ".pdf", size: 700_000, caption: "your invoice", filename: "invoice-2026-11.pdf"},
	{typ: "sticker", mime: "image/webp", ext: ".webp", size: 60_000},
}

func randomFile(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// mediaObject returns the media object of an inbound webhook message.
func mediaObject(p stack.Payload, i int) *stack.Media {
	m := p.Messages[i]
	for _, md := range []*stack.Media{m.Image, m.Audio, m.Video, m.Document, m.Sticker} {
		if md != nil {
			return md
		}
	}
	return nil
}

// inboundMedia waits for the webhook of an inbound message and returns its
// type, media object and errors.
func inboundMedia(t *testing.T, hook *stack.Webhook, id string) (string, *stack.Media, []stack.Error) {
	t.Helper()
	var typ string
	var md *stack.Media
	var errs []stack.Error
	hook.Wait(30*time.Second, "webhook of inbound "+id, func(ps []stack.Payload) bool {
		for _, p := range ps {
			for i, m := range p.Messages {
				if m.ID == id {
					typ, md, errs = m.Type, mediaObject(p, i), m.Errors
					return true
				}
			}
		}
		return false
	})
	return typ, md, errs
}

func onVolume(s *stack.Stack, sum string) bool {
	_, err := os.Stat(filepath.Join(s.MediaDir(), "sha256", sum[:2], sum[2:4], sum))
	return err == nil
}

// setupMedia starts a stack with a registered number, a webhook and a phone.
func setupMedia(t *testing.T, o stack.Options) (*stack.Stack, string, *stack.Webhook, *stack.Phone) {
	t.Helper()
	s := stack.New(t, o)
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	hook := stack.NewWebhook(t)
	if r := s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{
		"webhooks": map[string]any{"url": hook.URL, "message": map[string]bool{"sent": true, "delivered": true, "read": true}},
	}); r.Status != 200 {
		t.Fatalf("PATCH settings = %d %s", r.Status, r.Raw)
	}
	phone := s.NewPhone("15551234567", "Kerry Fisher")
	phone.OpenWindow(bizWaID)
	return s, tok, hook, phone
}

func send(t *testing.T, s *stack.Stack, tok string, body map[string]any) string {
	t.Helper()
	r := s.Do("POST", "/v1/messages", bearer(tok), body)
	if r.Status != 201 {
		t.Fatalf("POST /v1/messages %v = %d %s", body, r.Status, r.Raw)
	}
	return r.Body["messages"].([]any)[0].(map[string]any)["id"].(string)
}

// receivedFile waits for a media message on the phone and checks what it
// saved byte for byte.
func receivedFile(t *testing.T, phone *stack.Phone, id string, c mediaCase, want []byte) {
	t.Helper()
	e := phone.WaitFor(60*time.Second, c.typ+" "+id, func(e waphone.Event) bool { return e.Event == "message" && e.ID == id })
	got, err := os.ReadFile(e.File)
	if err != nil {
		t.Fatalf("%s: the phone's file: %v", c.typ, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: the phone saved %d bytes that differ from the %d sent", c.typ, len(got), len(want))
	}
	if e.Type != c.typ || e.SHA256 != sha(want) || e.MimeType != c.mime || e.Caption != c.caption || e.Filename != c.filename {
		t.Errorf("%s: phone event type %q sha256 %q mime %q caption %q filename %q; want %q %q %q %q %q",
			c.typ, e.Type, e.SHA256, e.MimeType, e.Caption, e.Filename, c.typ, sha(want), c.mime, c.caption, c.filename)
	}
}

// TestMediaBothDirections: every media type goes from the business to a
// phone by media id and by link (with a provider's credentials), and from a
// phone to the business, with auto-download on and off; the bytes arrive
// unchanged every time. Deleting and garbage collection remove files.
func TestMediaBothDirections(t *testing.T) {
	var linkHits atomic.Int64
	files := map[string][]byte{}
	for _, c := range mediaCases {
		files[c.typ] = randomFile(c.size)
	}
	links := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		linkHits.Add(1)
		for _, c := range mediaCases {
			if r.URL.Path == "/files/"+c.typ+c.ext || r.URL.Path == "/private/"+c.typ+c.ext {
				if strings.HasPrefix(r.URL.Path, "/private/") && r.Header.Get("Authorization") != "Bearer link-secret" {
					http.Error(w, "who are you", http.StatusUnauthorized)
					return
				}
				w.Header().Set("Content-Type", c.mime)
				w.Write(files[c.typ])
				return
			}
		}
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/files/image.jpg", http.StatusFound)
			return
		}
		http.NotFound(w, r)
	}))
	defer links.Close()
	s, tok, hook, phone := setupMedia(t, stack.Options{CoreEnv: map[string]string{"WA_MEDIA_ALLOW_PRIVATE_LINKS": "true"}})

	t.Run("by id", func(t *testing.T) {
		for _, c := range mediaCases {
			id := s.Upload(bearer(tok), c.mime, files[c.typ])
			code, h, body := s.Raw("GET", "/v1/media/"+id, bearer(tok), "", nil)
			if code != 200 || !bytes.Equal(body, files[c.typ]) || h.Get("Content-Type") != c.mime || h.Get("Content-Length") != fmt.Sprint(c.size) {
				t.Fatalf("%s: GET /v1/media/%s = %d, %d bytes (equal %v), Content-Type %q, Content-Length %q",
					c.typ, id, code, len(body), bytes.Equal(body, files[c.typ]), h.Get("Content-Type"), h.Get("Content-Length"))
			}
			if !onVolume(s, sha(files[c.typ])) {
				t.Errorf("%s: the upload is not on the volume under its SHA-256", c.typ)
			}
			obj := map[string]any{"id": id}
			if c.caption != "" {
				obj["caption"] = c.caption
			}
			if c.filename != "" {
				obj["filename"] = c.filename
			}
			msg := send(t, s, tok, map[string]any{"to": phone.Number(), "type": c.typ, c.typ: obj})
			receivedFile(t, phone, msg, c, files[c.typ])
			hook.Wait(30*time.Second, "delivered "+msg, func(ps []stack.Payload) bool {
				return strings.Contains(strings.Join(stack.StatusesOf(ps, msg), ","), "delivered")
			})
		}
		// chatd's media server holds only ciphertext.
		stored := blobs(t, s)
		if len(stored) < len(mediaCases) {
			t.Fatalf("%d blobs on chatd's media server, want at least %d", len(stored), len(mediaCases))
		}
		for _, path := range stored {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for typ, f := range files {
				if bytes.Contains(b, f[:32]) || bytes.Contains(b, f[len(f)-32:]) {
					t.Errorf("a blob on chatd's media server contains plaintext of the %s", typ)
				}
			}
		}
	})

	t.Run("by link", func(t *testing.T) {
		r := s.Do("POST", "/v1/settings/application/media/providers", bearer(tok),
			[]map[string]any{{"name": "shop-cdn", "type": "www", "hosts": []string{strings.TrimPrefix(links.URL, "http://")}, "config": map[string]any{"bearer": "link-secret"}}})
		if r.Status != 200 && r.Status != 201 {
			t.Fatalf("POST providers = %d %s", r.Status, r.Raw)
		}
		for i, c := range mediaCases {
			obj := map[string]any{"link": links.URL + "/files/" + c.typ + c.ext}
			if i%2 == 1 {
				obj = map[string]any{"link": links.URL + "/private/" + c.typ + c.ext, "provider": map[string]string{"name": "shop-cdn"}}
			}
			if c.caption != "" {
				obj["caption"] = c.caption
			}
			if c.filename != "" {
				obj["filename"] = c.filename
			}
			msg := send(t, s, tok, map[string]any{"to": phone.Number(), "type": c.typ, c.typ: obj})
			receivedFile(t, phone, msg, c, files[c.typ])
		}
		// A redirect is followed.
		msg := send(t, s, tok, map[string]any{"to": phone.Number(), "type": "image", "image": map[string]any{"link": links.URL + "/redirect", "caption": "our new shop"}})
		receivedFile(t, phone, msg, mediaCases[0], files["image"])
	})

	t.Run("from the phone, auto-download on", func(t *testing.T) {
		dir := t.TempDir()
		for _, c := range mediaCases {
			// Fresh bytes: content sent before would already be on the
			// volume (it is content-addressed).
			files[c.typ] = randomFile(c.size)
			path := filepath.Join(dir, "file"+c.ext)
			if err := os.WriteFile(path, files[c.typ], 0o600); err != nil {
				t.Fatal(err)
			}
			id, err := phone.SendMedia(context.Background(), bizWaID, path, c.typ, c.caption, c.filename, "")
			if err != nil {
				t.Fatal(err)
			}
			typ, md, errs := inboundMedia(t, hook, id)
			if typ != c.typ || md == nil || md.ID == "" || len(errs) != 0 {
				t.Fatalf("%s from the phone: webhook type %q media %+v errors %+v", c.typ, typ, md, errs)
			}
			// The file was on the volume before the webhook was sent.
			if !onVolume(s, sha(files[c.typ])) {
				t.Errorf("%s: the webhook came before the file was on the volume", c.typ)
			}
			if md.MimeType != c.mime || md.SHA256 != sha(files[c.typ]) || md.Caption != c.caption || md.Filename != c.filename {
				t.Errorf("%s: media object %+v, want mime %q sha256 %q caption %q filename %q", c.typ, md, c.mime, sha(files[c.typ]), c.caption, c.filename)
			}
			code, h, body := s.Raw("GET", "/v1/media/"+md.ID, bearer(tok), "", nil)
			if code != 200 || !bytes.Equal(body, files[c.typ]) || h.Get("Content-Type") != c.mime {
				t.Errorf("%s: GET the customer's file = %d, %d bytes (equal %v), %q", c.typ, code, len(body), bytes.Equal(body, files[c.typ]), h.Get("Content-Type"))
			}
		}
	})

	t.Run("from the phone, auto-download off", func(t *testing.T) {
		if r := s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{"media": map[string]any{"auto_download": []string{}}}); r.Status != 200 {
			t.Fatalf("PATCH auto_download = %d %s", r.Status, r.Raw)
		}
		c := mediaCase{typ: "document", mime: "text/plain", ext: ".txt", size: 90_000, caption: "notes", filename: "notes.txt"}
		want := randomFile(c.size)
		path := filepath.Join(t.TempDir(), c.filename)
		if err := os.WriteFile(path, want, 0o600); err != nil {
			t.Fatal(err)
		}
		id, err := phone.SendMedia(context.Background(), bizWaID, path, c.typ, c.caption, "", "")
		if err != nil {
			t.Fatal(err)
		}
		_, md, errs := inboundMedia(t, hook, id)
		if md == nil || md.ID == "" || len(errs) != 0 || md.Filename != "notes.txt" {
			t.Fatalf("webhook media %+v errors %+v", md, errs)
		}
		if onVolume(s, sha(want)) {
			t.Fatal("the file was downloaded although document is not in auto_download")
		}
		code, h, body := s.Raw("GET", "/v1/media/"+md.ID, bearer(tok), "", nil)
		if code != 200 || !bytes.Equal(body, want) || h.Get("Content-Type") != "text/plain" {
			t.Fatalf("GET on demand = %d, %d bytes (equal %v), %q", code, len(body), bytes.Equal(body, want), h.Get("Content-Type"))
		}
		if !onVolume(s, sha(want)) {
			t.Error("the file fetched on demand is not on the volume")
		}
		s.Do("DELETE", "/v1/settings/application", bearer(tok), nil)
		if r := s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{"webhooks": map[string]any{"url": hook.URL}}); r.Status != 200 {
			t.Fatalf("PATCH webhooks = %d %s", r.Status, r.Raw)
		}
	})

	t.Run("delete and garbage collection", func(t *testing.T) {
		keep := s.Upload(bearer(tok), "image/png", randomFile(5000))
		old := randomFile(7000)
		oldID := s.Upload(bearer(tok), "image/png", old)
		del := randomFile(6000)
		delID := s.Upload(bearer(tok), "image/png", del)
		if r := s.Do("DELETE", "/v1/media/"+delID, bearer(tok), nil); r.Status != 200 {
			t.Fatalf("DELETE = %d %s", r.Status, r.Raw)
		}
		if code, _, body := s.Raw("GET", "/v1/media/"+delID, bearer(tok), "", nil); code != 404 || len(body) != 0 {
			t.Errorf("GET a deleted file = %d %q, want 404 with an empty body", code, body)
		}
		// The deleted content was written moments ago, so it waits for
		// garbage collection (an upload of the same bytes may be racing).
		aged := time.Now().Add(-31 * 24 * time.Hour)
		delPath := filepath.Join(s.MediaDir(), "sha256", sha(del)[:2], sha(del)[2:4], sha(del))
		if err := os.Chtimes(delPath, aged, aged); err != nil {
			t.Fatalf("the deleted content should wait for collection: %v", err)
		}
		// Age one file past 30 days.
		d := dbtest.Open(t, s.CoreDB)
		if _, err := d.Exec("UPDATE media SET last_used_at = ? WHERE id = ?", aged.UnixMilli(), oldID); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(s.MediaDir(), "sha256", sha(old)[:2], sha(old)[2:4], sha(old))
		if err := os.Chtimes(p, aged, aged); err != nil {
			t.Fatal(err)
		}
		r := s.Do("PUT", "/v1/services/media/gc", bearer(tok), nil)
		if r.Status != 200 || !strings.Contains(string(r.Raw), `"processing"`) {
			t.Fatalf("PUT /v1/services/media/gc = %d %s", r.Status, r.Raw)
		}
		hook.Wait(30*time.Second, "media gc report", func(ps []stack.Payload) bool {
			for _, p := range ps {
				for _, sv := range p.Services {
					if sv.Media != nil && sv.Media.GC.Status == "complete" && sv.Media.GC.ItemsDeleted == 1 {
						return true
					}
				}
			}
			return false
		})
		if code, _, _ := s.Raw("GET", "/v1/media/"+oldID, bearer(tok), "", nil); code != 404 {
			t.Errorf("GET a collected file = %d, want 404", code)
		}
		if onVolume(s, sha(old)) {
			t.Error("the collected file is still on the volume")
		}
		if onVolume(s, sha(del)) {
			t.Error("the deleted content is still on the volume after collection")
		}
		if code, _, _ := s.Raw("GET", "/v1/media/"+keep, bearer(tok), "", nil); code != 200 {
			t.Errorf("GET a recent file after collection = %d, want 200", code)
		}
	})
	if linkHits.Load() == 0 {
		t.Error("no link was fetched")
	}
}

// blobs lists the blob files on chatd's media server.
func blobs(t *testing.T, s *stack.Stack) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(s.ChatData, "media", "sha256"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// corruptBlobs flips a byte in (or cuts 100 bytes off) every blob on
// chatd's media server and returns how many there were.
func corruptBlobs(t *testing.T, s *stack.Stack, truncate bool) int {
	t.Helper()
	paths := blobs(t, s)
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if truncate {
			b = b[:len(b)-100]
		} else {
			b[len(b)/2] ^= 0x01
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return len(paths)
}

// TestMediaRefusals: every refusal of the media issue, with links to
// private addresses refused (SSRF protection is on by default).
func TestMediaRefusals(t *testing.T) {
	var privateHits atomic.Int64
	private := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		privateHits.Add(1)
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(randomFile(1000))
	}))
	defer private.Close()
	s, tok, hook, phone := setupMedia(t, stack.Options{})

	t.Run("uploads", func(t *testing.T) {
		for _, c := range []struct {
			name, ct string
			body     []byte
			status   int
			code     string
		}{
			{"wrong type", "text/html", []byte("<html>"), 400, `"code":1009`},
			{"no type", "", []byte("data"), 400, `"code":1008`},
			{"empty body", "image/jpeg", []byte{}, 400, `"code":1008`},
		} {
			code, _, body := s.Raw("POST", "/v1/media", bearer(tok), c.ct, c.body)
			if code != c.status || !strings.Contains(string(body), c.code) {
				t.Errorf("%s: POST /v1/media = %d %s, want %d with %s", c.name, code, body, c.status, c.code)
			}
		}
		// Over 100 MB, by Content-Length: refused before anything is read.
		req, _ := http.NewRequest("POST", s.URL+"/v1/media", io.LimitReader(zeros{}, 100<<20+1))
		req.ContentLength = 100<<20 + 1
		req.Header.Set("Content-Type", "application/pdf")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := s.Client.Do(req)
		if err != nil {
			t.Fatalf("oversize upload: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), `"errors"`) {
			t.Errorf("oversize upload = %d %s, want 413 with an error", resp.StatusCode, body)
		}
		if code, _, body := s.Raw("GET", "/v1/media/4b5bf27b-8672-4d55-bc21-d096dc200d0f", bearer(tok), "", nil); code != 404 || len(body) != 0 {
			t.Errorf("GET an unknown id = %d %q, want 404 with an empty body", code, body)
		}
		if r := s.Do("DELETE", "/v1/media/4b5bf27b-8672-4d55-bc21-d096dc200d0f", bearer(tok), nil); r.Status != 404 {
			t.Errorf("DELETE an unknown id = %d %s, want 404", r.Status, r.Raw)
		}
	})

	t.Run("sends", func(t *testing.T) {
		big := s.Upload(bearer(tok), "image/jpeg", randomFile(5<<20+1))
		pdf := s.Upload(bearer(tok), "application/pdf", randomFile(1000))
		to := phone.Number()
		for _, c := range []struct {
			name   string
			body   map[string]any
			status int
			code   int
		}{
			{"unknown id", map[string]any{"to": to, "type": "image", "image": map[string]any{"id": "4b5bf27b-8672-4d55-bc21-d096dc200d0f"}}, 404, 1006},
			{"image over 5 MB", map[string]any{"to": to, "type": "image", "image": map[string]any{"id": big}}, 400, 1009},
			{"pdf as image", map[string]any{"to": to, "type": "image", "image": map[string]any{"id": pdf}}, 400, 1009},
			{"id and link", map[string]any{"to": to, "type": "image", "image": map[string]any{"id": pdf, "link": "https://example.com/a.jpg"}}, 400, 1009},
			{"neither id nor link", map[string]any{"to": to, "type": "image", "image": map[string]any{"caption": "x"}}, 400, 1008},
			{"caption on audio", map[string]any{"to": to, "type": "audio", "audio": map[string]any{"id": pdf, "caption": "x"}}, 400, 1010},
			{"not a URL", map[string]any{"to": to, "type": "image", "image": map[string]any{"link": "file:///etc/passwd"}}, 400, 1009},
			{"unknown provider", map[string]any{"to": to, "type": "image", "image": map[string]any{"link": "https://example.com/a.jpg", "provider": map[string]string{"name": "nope"}}}, 400, 1009},
		} {
			r := s.Do("POST", "/v1/messages", bearer(tok), c.body)
			if r.Status != c.status || r.ErrorCode() != c.code {
				t.Errorf("%s: POST /v1/messages = %d %s, want %d with code %d", c.name, r.Status, r.Raw, c.status, c.code)
			}
		}
	})

	t.Run("links to private addresses", func(t *testing.T) {
		for _, link := range []string{private.URL + "/a.jpg", "http://169.254.169.254/latest/meta-data/a.jpg", strings.Replace(private.URL, "127.0.0.1", "localhost", 1) + "/a.jpg"} {
			msg := send(t, s, tok, map[string]any{"to": phone.Number(), "type": "image", "image": map[string]any{"link": link}})
			ps := hook.Wait(60*time.Second, "failed status of "+msg, func(ps []stack.Payload) bool {
				return strings.Contains(strings.Join(stack.StatusesOf(ps, msg), ","), "failed")
			})
			var errs []stack.Error
			for _, p := range ps {
				for _, st := range p.Statuses {
					if st.ID == msg && st.Status == "failed" {
						errs = st.Errors
					}
				}
			}
			if len(errs) != 1 || errs[0].Code != 400 || !strings.Contains(errs[0].Details, "not public") {
				t.Errorf("link %s: failed status errors %+v, want a 400 saying the address is not public", link, errs)
			}
		}
		if n := privateHits.Load(); n != 0 {
			t.Errorf("the private server was reached %d times", n)
		}
	})

	t.Run("corrupted blob, on demand", func(t *testing.T) {
		if r := s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{"media": map[string]any{"auto_download": []string{}}}); r.Status != 200 {
			t.Fatalf("PATCH = %d %s", r.Status, r.Raw)
		}
		want := randomFile(50_000)
		path := filepath.Join(t.TempDir(), "a.jpg")
		os.WriteFile(path, want, 0o600)
		id, err := phone.SendMedia(context.Background(), bizWaID, path, "image", "", "", "")
		if err != nil {
			t.Fatal(err)
		}
		_, md, _ := inboundMedia(t, hook, id)
		if md == nil || md.ID == "" {
			t.Fatalf("webhook media %+v", md)
		}
		if corruptBlobs(t, s, false) == 0 {
			t.Fatal("no blob on chatd's media server")
		}
		r := s.Do("GET", "/v1/media/"+md.ID, bearer(tok), nil)
		if r.Status != 400 || r.ErrorCode() != 400 || !strings.Contains(string(r.Raw), "Media download error") {
			t.Errorf("GET a corrupted file = %d %s, want 400 Media download error", r.Status, r.Raw)
		}
		if onVolume(s, sha(want)) {
			t.Error("a corrupted file was stored")
		}
	})

	t.Run("truncated blob, auto-download", func(t *testing.T) {
		s.Do("DELETE", "/v1/settings/application", bearer(tok), nil)
		if r := s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{"webhooks": map[string]any{"url": hook.URL}}); r.Status != 200 {
			t.Fatalf("PATCH = %d %s", r.Status, r.Raw)
		}
		// With coreapp down, the phone's file waits on the media server,
		// where it is truncated before coreapp can fetch it.
		s.KillCoreapp()
		before := len(blobs(t, s))
		want := randomFile(80_000)
		path := filepath.Join(t.TempDir(), "b.mp4")
		os.WriteFile(path, want, 0o600)
		id, err := phone.SendMedia(context.Background(), bizWaID, path, "video", "clip", "", "")
		if err != nil {
			t.Fatal(err)
		}
		phone.WaitFor(30*time.Second, "sent receipt", func(e waphone.Event) bool { return e.Event == "receipt" && e.ID == id && e.Status == "sent" })
		if n := len(blobs(t, s)); n != before+1 {
			t.Fatalf("%d blobs on the media server after the phone sent one more than %d", n, before)
		}
		corruptBlobs(t, s, true)
		s.RestartCoreapp()
		typ, md, errs := inboundMedia(t, hook, id)
		if typ != "video" || md == nil || md.ID != "" || md.SHA256 != sha(want) || md.Caption != "clip" || len(errs) != 1 || errs[0].Code != 400 || errs[0].Title != "Media download error" {
			t.Errorf("webhook of a truncated file: type %q media %+v errors %+v; want a video without id and a 400 Media download error", typ, md, errs)
		}
		if onVolume(s, sha(want)) {
			t.Error("a truncated file was stored")
		}
	})
}

// zeros reads zero bytes forever.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
