package webphone_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/openwaba/openwaba/chatd/server"
	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/chatd/webphone"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
)

// TestMain fails the package if a goroutine outlives the tests: the host
// owns every phone and every live channel.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 15 * time.Second

// network is a real chatd on loopback.
type network struct {
	addrs []string
	admin string
}

func newNetwork(t *testing.T) network {
	t.Helper()
	var ls []net.Listener
	for range 4 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	srv := server.New(server.Config{Listeners: ls[:2], Admin: ls[2], Media: ls[3], MediaDir: t.TempDir(), DB: dbtest.New(t, db.Chatd),
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return network{addrs: []string{ls[0].Addr().String(), ls[1].Addr().String()}, admin: ls[2].Addr().String()}
}

// webPhone is a running host and its API.
type webPhone struct {
	url  string
	stop func()
}

func startWebPhone(t *testing.T, n network, dir string) webPhone {
	t.Helper()
	host := webphone.NewHost(webphone.Config{Dir: dir, Network: n.addrs, Admin: n.admin,
		Session: session.Config{BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- host.Run(ctx) }()
	srv := httptest.NewServer(webphone.NewServer(host).Handler())
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		srv.Close()
	}
	t.Cleanup(stop)
	select {
	case <-host.Ready():
	case err := <-done:
		t.Fatalf("host.Run = %v", err)
	}
	return webPhone{url: srv.URL, stop: stop}
}

func call(t *testing.T, base, method, path, contentType, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// peer is a plain waphone on the network: the other side of the chats.
func peer(t *testing.T, n network, number string) *waphone.Phone {
	t.Helper()
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := waphone.Register(ctx, waphone.RegisterOptions{Home: home, Network: n.addrs, Admin: n.admin, Number: number, Name: "Biz"}); err != nil {
		t.Fatal(err)
	}
	p, err := waphone.Open(home, waphone.Options{Session: session.Config{BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(rctx) }()
	t.Cleanup(func() {
		stop()
		<-done
		for range p.Events() {
		}
	})
	next(t, p, "ready", func(e waphone.Event) bool { return e.Event == "ready" })
	return p
}

func next(t *testing.T, p *waphone.Phone, what string, pred func(waphone.Event) bool) waphone.Event {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case e := <-p.Events():
			if pred(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("phone %s: no %s within %v", p.Number(), what, wait)
		}
	}
}

// records waits until the chat's records satisfy ok and returns them.
func records(t *testing.T, base, phone, chat string, ok func([]webphone.Record) bool) []webphone.Record {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		code, b := call(t, base, "GET", "/api/phones/"+phone+"/chats/"+chat+"/messages", "", "")
		var out struct{ Records []webphone.Record }
		json.Unmarshal(b, &out)
		if code == 200 && ok(out.Records) {
			return out.Records
		}
		if time.Now().After(deadline) {
			t.Fatalf("records of %s/%s: %d %s", phone, chat, code, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func has(rs []webphone.Record, pred func(webphone.Record) bool) bool {
	for _, r := range rs {
		if pred(r) {
			return true
		}
	}
	return false
}

// TestAPIErrors: every refusal is a clear JSON error with the right status,
// and the page's own routes serve the page.
func TestAPIErrors(t *testing.T) {
	n := newNetwork(t)
	wp := startWebPhone(t, n, t.TempDir())
	if code, b := call(t, wp.url, "POST", "/api/phones", "application/json", `{"number":"15550001111","name":"Kim"}`); code != 201 || !strings.Contains(string(b), `"number":"15550001111"`) {
		t.Fatalf("create = %d %s", code, b)
	}
	for _, c := range []struct {
		method, path, ctype, body string
		code                      int
		want                      string
	}{
		{"POST", "/api/phones", "application/json", `{"number":"15550001111"}`, 409, "exists"},
		{"POST", "/api/phones", "application/json", `{"number":"12ab"}`, 400, "5 to 20 digits"},
		{"POST", "/api/phones", "application/json", `{"number":"15550001112","name":"` + strings.Repeat("x", 26) + `"}`, 400, "at most 25"},
		{"POST", "/api/phones", "application/json", `{"number":"15550001112","pin":1}`, 400, "unknown field"},
		{"POST", "/api/phones", "text/plain", `{"number":"15550001112"}`, 415, "JSON"},
		{"POST", "/api/phones", "application/json", `{"number":"` + strings.Repeat("1", 70_000) + `"}`, 413, "over"},
		{"GET", "/api/phones/15559999999/chats", "", "", 404, "no phone"},
		{"GET", "/api/phones/15550001111/chats/abc/messages", "", "", 400, "business's number"},
		{"GET", "/api/phones/15550001111/chats/15550002222/messages?limit=0", "", "", 400, "limit"},
		{"POST", "/api/phones/15550001111/chats/15550002222/messages", "application/json", `{"type":"text","text":" "}`, 400, "text"},
		{"POST", "/api/phones/15550001111/chats/15550002222/messages", "application/json", `{"type":"template"}`, 400, "customer sends"},
		{"POST", "/api/phones/15550001111/chats/15550002222/messages", "application/json", `{"type":"location"}`, 400, "location"},
		{"POST", "/api/phones/15550001111/chats/15550002222/messages", "application/json", `{"type":"location","location":{"latitude":"north"}}`, 400, "latitude"},
		{"POST", "/api/phones/15550001111/messages/nope/choose", "application/json", `{"choice":"1"}`, 404, "no received message"},
		{"GET", "/api/phones/15550001111/files/..%2fphone.json", "", "", 404, "no file"},
		{"GET", "/api/phones/15550001111/files/" + strings.Repeat("a", 64) + ".jpg", "", "", 404, "no file"},
		{"GET", "/api/nothing", "", "", 404, "no such route"},
		{"DELETE", "/api/phones", "", "", 405, "not allowed"},
		{"POST", "/api/phones/15550001111/messages/x/choose", "application/json", `{"choice":"` + strings.Repeat("c", 300) + `"}`, 404, "no received message"},
		{"POST", "/api/phones/15550001111/chats/15550002222/messages", "multipart/form-data; boundary=x", "--x\r\nnot a part", 400, "multipart"},
		{"POST", "/api/phones/15550001111/chats/15550002222/messages", "multipart/form-data; boundary=x",
			"--x\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\n" + strings.Repeat("c", 5000) + "\r\n--x--\r\n", 400, "over 4096 bytes"},
		{"POST", "/api/phones/15550001111/chats/15550002222/messages", "multipart/form-data; boundary=x",
			"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n\r\n--x--\r\n", 400, "empty"},
	} {
		code, b := call(t, wp.url, c.method, c.path, c.ctype, c.body)
		var e struct {
			Error struct{ Message string }
		}
		if code != c.code || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error.Message, c.want) {
			t.Errorf("%s %s %.60s = %d %.200s, want %d with %q", c.method, c.path, c.body, code, b, c.code, c.want)
		}
	}
	// A page on another site cannot post to the API.
	if code, b := call(t, wp.url, "POST", "/api/phones", "application/json", `{"number":"15550001113"}`, "Sec-Fetch-Site", "cross-site"); code != 403 {
		t.Errorf("a cross-site POST = %d %s, want 403", code, b)
	}
	for _, path := range []string{"/", "/phones/15550001111", "/phones/15550001111/chats/15550002222"} {
		if code, b := call(t, wp.url, "GET", path, "", ""); code != 200 || !bytes.Contains(b, []byte(`<script src="/static/app.js"`)) {
			t.Errorf("GET %s = %d, want the page", path, code)
		}
	}
	if code, _ := call(t, wp.url, "GET", "/static/app.js", "", ""); code != 200 {
		t.Errorf("GET /static/app.js = %d", code)
	}
}

// TestHostCheck: on loopback the server answers only its own host names,
// so a site that rebinds its DNS name to 127.0.0.1 cannot reach it.
func TestHostCheck(t *testing.T) {
	host := webphone.NewHost(webphone.Config{Dir: t.TempDir()})
	srv := webphone.NewServer(host)
	ts := httptest.NewServer(nil)
	srv.Hosts = webphone.LoopbackHosts(ts.Listener.Addr())
	ts.Config.Handler = srv.Handler()
	defer ts.Close()
	if code, _ := call(t, ts.URL, "GET", "/", "", ""); code != 200 {
		t.Errorf("GET / on its own address = %d", code)
	}
	if code, b := call(t, ts.URL, "GET", "/", "", "", "Host", "evil.example:80"); code != http.StatusMisdirectedRequest {
		t.Errorf("GET / with Host evil.example = %d %s, want 421", code, b)
	}
	if hs := webphone.LoopbackHosts(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 80}); hs != nil {
		t.Errorf("LoopbackHosts of a public address = %v, want nil", hs)
	}
}

// TestConversation: a hosted phone receives, sends text and a file, reads,
// answers a choice; the live channel carries each record; a new host on
// the same directory has the same history and the phone is online again.
func TestConversation(t *testing.T) {
	n := newNetwork(t)
	dir := t.TempDir()
	wp := startWebPhone(t, n, dir)
	const me = "15550003333"
	if code, b := call(t, wp.url, "POST", "/api/phones", "application/json", `{"number":"`+me+`","name":"Kim"}`); code != 201 {
		t.Fatalf("create = %d %s", code, b)
	}
	biz := peer(t, n, "15550004444")

	// The live channel.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", wp.url+"/api/phones/"+me+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %v %v", err, resp)
	}
	live := make(chan webphone.Record, 64)
	go func() {
		defer close(live)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var r webphone.Record
				json.Unmarshal([]byte(data), &r)
				live <- r
			}
		}
	}()
	defer resp.Body.Close()

	id, err := biz.SendText(t.Context(), me, "Welcome, Kim", "", "")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-live:
		if r.Kind != "message" || r.Dir != "in" || r.ID != id || r.Text != "Welcome, Kim" || r.Chat != biz.Number() || r.Seq != 1 {
			t.Errorf("live record %+v, want the message", r)
		}
	case <-time.After(wait):
		t.Fatal("no live record for the received message")
	}
	code, b := call(t, wp.url, "GET", "/api/phones/"+me+"/chats", "", "")
	var chats struct{ Chats []webphone.ChatInfo }
	json.Unmarshal(b, &chats)
	if code != 200 || len(chats.Chats) != 1 || chats.Chats[0].Unread != 1 || chats.Chats[0].Last == nil || chats.Chats[0].Last.ID != id {
		t.Errorf("chats = %d %s, want one chat with one unread", code, b)
	}

	// Read: the business gets the read receipt; the chat has none unread.
	if code, b := call(t, wp.url, "POST", "/api/phones/"+me+"/chats/"+biz.Number()+"/read", "application/json", `{}`); code != 200 || !strings.Contains(string(b), `"read":1`) {
		t.Errorf("read = %d %s", code, b)
	}
	next(t, biz, "the read receipt", func(e waphone.Event) bool { return e.Event == "receipt" && e.ID == id && e.Status == "read" })
	if _, b := call(t, wp.url, "POST", "/api/phones/"+me+"/chats/"+biz.Number()+"/read", "application/json", `{}`); !strings.Contains(string(b), `"read":0`) {
		t.Errorf("reading again = %s, want nothing new", b)
	}

	// Text out, with its statuses.
	code, b = call(t, wp.url, "POST", "/api/phones/"+me+"/chats/"+biz.Number()+"/messages", "application/json", `{"type":"text","text":"Thanks!","reply_to":"`+id+`"}`)
	var out webphone.Record
	json.Unmarshal(b, &out)
	if code != 202 || out.ID == "" || out.Status != "pending" || out.Context == nil || out.Context.ID != id {
		t.Fatalf("send = %d %s", code, b)
	}
	got := next(t, biz, "the text", func(e waphone.Event) bool { return e.Event == "message" && e.ID == out.ID })
	if got.Text != "Thanks!" || got.Context == nil || got.Context.ID != id {
		t.Errorf("the business got %+v", got)
	}
	if err := biz.Read(t.Context(), out.ID); err != nil {
		t.Fatal(err)
	}
	records(t, wp.url, me, biz.Number(), func(rs []webphone.Record) bool {
		return has(rs, func(r webphone.Record) bool { return r.Kind == "status" && r.ID == out.ID && r.Status == "read" })
	})

	// A file: the business receives the same bytes.
	file := bytes.Repeat([]byte("openwaba "), 2000)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("caption", "notes")
	mw.WriteField("reply_to", id)
	fw, _ := mw.CreateFormFile("file", "notes.txt")
	fw.Write(file)
	mw.Close()
	code, b = call(t, wp.url, "POST", "/api/phones/"+me+"/chats/"+biz.Number()+"/messages", mw.FormDataContentType(), form.String())
	json.Unmarshal(b, &out)
	sum := sha256.Sum256(file)
	if code != 202 || out.Type != "document" || out.Filename != "notes.txt" || out.SHA256 != hex.EncodeToString(sum[:]) || out.Size != int64(len(file)) {
		t.Fatalf("send a file = %d %s", code, b)
	}
	got = next(t, biz, "the document", func(e waphone.Event) bool { return e.Event == "message" && e.ID == out.ID })
	if got.Type != "document" || got.SHA256 != hex.EncodeToString(sum[:]) || got.Caption != "notes" || got.Filename != "notes.txt" ||
		got.Context == nil || got.Context.ID != id {
		t.Errorf("the business got %+v (context %+v), want the document replying to %s", got, got.Context, id)
	}
	if code, b := call(t, wp.url, "GET", "/api/phones/"+me+"/files/"+out.File, "", ""); code != 200 || !bytes.Equal(b, file) {
		t.Errorf("GET the sent file = %d, %d bytes", code, len(b))
	}
	var empty bytes.Buffer
	mw = multipart.NewWriter(&empty)
	mw.WriteField("caption", "no file")
	mw.Close()
	if code, b := call(t, wp.url, "POST", "/api/phones/"+me+"/chats/"+biz.Number()+"/messages", mw.FormDataContentType(), empty.String()); code != 400 || !strings.Contains(string(b), "no file") {
		t.Errorf("a form without a file = %d %s", code, b)
	}

	// A message to a number the network does not know fails, and does not
	// hold up the next one.
	const nobody = "15550007777"
	code, b = call(t, wp.url, "POST", "/api/phones/"+me+"/chats/"+nobody+"/messages", "application/json", `{"text":"hello?"}`)
	var lost webphone.Record
	json.Unmarshal(b, &lost)
	if code != 202 {
		t.Fatalf("send to %s = %d %s", nobody, code, b)
	}
	code, b = call(t, wp.url, "POST", "/api/phones/"+me+"/chats/"+biz.Number()+"/messages", "application/json", `{"text":"after that"}`)
	json.Unmarshal(b, &out)
	next(t, biz, "the message after the lost one", func(e waphone.Event) bool { return e.Event == "message" && e.ID == out.ID })
	records(t, wp.url, me, nobody, func(rs []webphone.Record) bool {
		return has(rs, func(r webphone.Record) bool {
			return r.Kind == "status" && r.ID == lost.ID && r.Status == "failed" && strings.Contains(r.Error, "not on the network")
		})
	})

	// A choice on a message that has none is the phone's clear error.
	if code, b := call(t, wp.url, "POST", "/api/phones/"+me+"/messages/"+id+"/choose", "application/json", `{"choice":"1"}`); code != 400 {
		t.Errorf("choose on a text = %d %s, want 400", code, b)
	}

	// A new host on the same directory: the history is there and the
	// phone receives again.
	before := records(t, wp.url, me, biz.Number(), func([]webphone.Record) bool { return true })
	wp.stop()
	for range live { // the live channel ends with the host
	}
	wp = startWebPhone(t, n, dir)
	after := records(t, wp.url, me, biz.Number(), func(rs []webphone.Record) bool { return len(rs) >= len(before) })
	for i := range before {
		if before[i].Seq != after[i].Seq || before[i].ID != after[i].ID || before[i].Kind != after[i].Kind {
			t.Fatalf("record %d after the restart %+v, before %+v", i, after[i], before[i])
		}
	}
	id2, err := biz.SendText(t.Context(), me, "Still there?", "", "")
	if err != nil {
		t.Fatal(err)
	}
	rs := records(t, wp.url, me, biz.Number(), func(rs []webphone.Record) bool {
		return has(rs, func(r webphone.Record) bool { return r.ID == id2 })
	})
	if last := rs[len(rs)-1]; last.Seq <= before[len(before)-1].Seq {
		t.Errorf("the new record's seq %d does not follow the history's %d", last.Seq, before[len(before)-1].Seq)
	}
}

// TestDamagedHistory: a last line a crash cut short is dropped, a complete
// last line without its newline is kept, a damaged line in the middle is
// skipped, and the history goes on from there, across restarts.
func TestDamagedHistory(t *testing.T) {
	n := newNetwork(t)
	dir := t.TempDir()
	const me, chat = "15550005555", "15550006666"
	wp := startWebPhone(t, n, dir)
	if code, b := call(t, wp.url, "POST", "/api/phones", "application/json", `{"number":"`+me+`"}`); code != 201 {
		t.Fatalf("create = %d %s", code, b)
	}
	send := func(text string) {
		t.Helper()
		if code, b := call(t, wp.url, "POST", "/api/phones/"+me+"/chats/"+chat+"/messages", "application/json", `{"text":"`+text+`"}`); code != 202 {
			t.Fatalf("send %s = %d %s", text, code, b)
		}
	}
	texts := func() []string {
		t.Helper()
		var out []string
		for _, r := range records(t, wp.url, me, chat, func([]webphone.Record) bool { return true }) {
			if r.Kind == "message" {
				out = append(out, fmt.Sprintf("%d:%s", r.Seq, r.Text))
			}
		}
		return out
	}
	path := filepath.Join(dir, me, "history.jsonl")
	damage := func(f func(b []byte) []byte) {
		t.Helper()
		wp.stop()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, f(b), 0o600); err != nil {
			t.Fatal(err)
		}
		wp = startWebPhone(t, n, dir)
	}
	send("one")
	send("two")
	// A torn last line.
	damage(func(b []byte) []byte { return append(b, `{"seq":99,"kind":"mess`...) })
	send("three")
	// A complete last line without its newline.
	damage(func(b []byte) []byte { return bytes.TrimSuffix(b, []byte("\n")) })
	send("four")
	// A damaged line in the middle (the first record's).
	damage(func(b []byte) []byte {
		first := bytes.IndexByte(b, '\n')
		return append([]byte(`{"seq":1,"kind":"message","chat":"x`+"\n"), b[first+1:]...)
	})
	send("five")
	damage(func(b []byte) []byte { return b }) // and a clean restart
	got := texts()
	// Records are status and message lines; only messages are listed.
	want := []string{"two", "three", "four", "five"}
	if len(got) != len(want) {
		t.Fatalf("the history after the damage: %v, want %v", got, want)
	}
	last := int64(0)
	for i, g := range got {
		var seq int64
		var text string
		fmt.Sscanf(strings.Replace(g, ":", " ", 1), "%d %s", &seq, &text)
		if text != want[i] || seq <= last {
			t.Errorf("the history after the damage: %v, want %v in increasing seq", got, want)
		}
		last = seq
	}
	b, _ := os.ReadFile(path)
	if bytes.Contains(b, []byte(`"kind":"mess`+"\n")) || bytes.Contains(b, []byte{0}) || !bytes.HasSuffix(b, []byte("\n")) {
		t.Errorf("the history file:\n%s", b)
	}
}
