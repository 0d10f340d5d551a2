package receive

import (
	"context"
	"crypto/rand"
	"database/sql"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/chatd/e2ee"
	"github.com/openwaba/openwaba/coreapp/e2e"
	"github.com/openwaba/openwaba/coreapp/medialib"
	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/db/keystore"
	"github.com/openwaba/openwaba/media/volume"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

const biz = "15550100"

type fixture struct {
	s      *Store
	d      *sql.DB
	sealer *e2e.Signal
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	d := dbtest.New(t, db.Core)
	secret := make([]byte, 32)
	rand.Read(secret)
	ks, err := keystore.New(secret)
	if err != nil {
		t.Fatal(err)
	}
	sealer := e2e.NewSignal(d, ks)
	vol, err := volume.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ml := medialib.New(d, vol, ks, slog.New(slog.DiscardHandler))
	s := NewStore(d, sealer, settings.NewStore(d), ml, slog.New(slog.DiscardHandler), func() {})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &fixture{s: s, d: d, sealer: sealer}
}

// bundle publishes the business's keys and returns the bundle chatd would
// hand a customer (with the i-th one-time key).
func (f *fixture) bundle(t *testing.T, i int) *chatdv1.PreKeyBundle {
	t.Helper()
	up, err := f.sealer.PreKeys(t.Context(), 1, i+1)
	if err != nil {
		t.Fatal(err)
	}
	return &chatdv1.PreKeyBundle{Number: biz, RegistrationId: up.RegistrationId, IdentityKey: up.IdentityKey, SignedPrekey: up.SignedPrekey, Prekey: up.Prekeys[i]}
}

// phone is a customer's device.
type phone struct {
	number string
	st     *e2ee.MemStore
}

func newPhone(t *testing.T, number string) *phone {
	id, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return &phone{number: number, st: e2ee.NewMemStore(id)}
}

func (p *phone) message(t *testing.T, id, body string, b *chatdv1.PreKeyBundle) *chatdv1.Message {
	t.Helper()
	return p.content(t, id, &messagev1.Content{Body: &messagev1.Content_Text{Text: &messagev1.Text{Body: body}}}, b)
}

func (p *phone) content(t *testing.T, id string, c *messagev1.Content, b *chatdv1.PreKeyBundle) *chatdv1.Message {
	t.Helper()
	plain, _ := proto.Marshal(c)
	enc, err := e2ee.Seal(t.Context(), p.st, biz, plain, b)
	if err != nil {
		t.Fatal(err)
	}
	return &chatdv1.Message{Id: id, From: p.number, T: 1700000000, PushName: "Kerry", Enc: enc}
}

func (f *fixture) store(t *testing.T, forceUnknown bool, ms ...*chatdv1.Message) []Outcome {
	t.Helper()
	var wg sync.WaitGroup
	out := make([]Outcome, len(ms))
	for i, m := range ms {
		wg.Add(1)
		f.s.Message(1, 0, m, forceUnknown, func(o Outcome, err error) {
			if err != nil {
				t.Error(err)
			}
			out[i] = o
			wg.Done()
		})
	}
	wg.Wait()
	return out
}

func count(t *testing.T, d *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := d.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func webhooks(t *testing.T, d *sql.DB) []string {
	t.Helper()
	rows, err := d.Query("SELECT payload FROM webhook_events ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		rows.Scan(&p)
		out = append(out, p)
	}
	return out
}

func TestRedeliveryIsStoredAndAnnouncedOnce(t *testing.T) {
	f := newFixture(t)
	kerry, jo := newPhone(t, "15551234567"), newPhone(t, "15557654321")
	m := kerry.message(t, "3EB0A", "hi", f.bundle(t, 0))
	other := jo.message(t, "3EB0A", "same id, other customer", f.bundle(t, 1))
	f.store(t, false, m, m, other)
	f.store(t, false, m)
	if n := count(t, f.d, "SELECT COUNT(*) FROM inbound_messages"); n != 2 {
		t.Errorf("stored = %d, want 2", n)
	}
	if n := len(webhooks(t, f.d)); n != 2 {
		t.Errorf("webhook events = %d, want 2", n)
	}
	// The plaintext is stored; the session was committed with it.
	var content []byte
	if err := f.d.QueryRow("SELECT content FROM inbound_messages WHERE peer = ?", kerry.number).Scan(&content); err != nil {
		t.Fatal(err)
	}
	var c messagev1.Content
	if err := proto.Unmarshal(content, &c); err != nil || c.GetText().GetBody() != "hi" {
		t.Errorf("stored content = %v (%v)", &c, err)
	}
	if n := count(t, f.d, "SELECT COUNT(*) FROM signal_sessions"); n != 2 {
		t.Errorf("sessions = %d, want 2", n)
	}
	// A later message on the same session decrypts too.
	m2 := kerry.message(t, "3EB0B", "second", nil)
	if out := f.store(t, false, m2); out[0] != Stored {
		t.Errorf("second message outcome = %v", out[0])
	}
	if n := count(t, f.d, "SELECT COUNT(*) FROM inbound_messages"); n != 3 {
		t.Errorf("stored after the second = %d, want 3", n)
	}
}

func TestUndecryptableAsksForARetry(t *testing.T) {
	f := newFixture(t)
	f.bundle(t, 0) // the account has keys
	bad := &chatdv1.Message{Id: "3EB0C", From: "15551234567", T: 1700000000, PushName: "Kerry",
		Enc: &chatdv1.Enc{Type: chatdv1.EncType_ENC_TYPE_MSG, Ciphertext: []byte("not a signal message")}}
	if out := f.store(t, false, bad); out[0] != Undecryptable {
		t.Fatalf("outcome = %v, want Undecryptable", out[0])
	}
	if n := count(t, f.d, "SELECT COUNT(*) FROM inbound_messages"); n != 0 {
		t.Errorf("an undecryptable message was stored (%d rows)", n)
	}
	// After the retries, it is stored as an unsupported message.
	if out := f.store(t, true, bad); out[0] != Stored {
		t.Fatalf("forced outcome = %v, want Stored", out[0])
	}
	hooks := webhooks(t, f.d)
	want := `{"contact":{"profile":{"name":"Kerry"},"wa_id":"15551234567"},"message":{"from":"15551234567","id":"3EB0C","timestamp":"1700000000","type":"unknown","errors":[{"code":501,"title":"Message type is not currently supported"}]}}`
	if len(hooks) != 1 || hooks[0] != want {
		t.Errorf("webhook events = %v, want [%s]", hooks, want)
	}
}

func TestIdentityChangeIsTrustedAndReported(t *testing.T) {
	f := newFixture(t)
	kerry := newPhone(t, "15551234567")
	f.store(t, false, kerry.message(t, "m1", "before", f.bundle(t, 0)))
	reinstalled := newPhone(t, kerry.number)
	if out := f.store(t, false, reinstalled.message(t, "m2", "after reinstall", f.bundle(t, 1))); out[0] != Stored {
		t.Fatalf("outcome = %v, want Stored", out[0])
	}
	hooks := webhooks(t, f.d)
	var system, msg bool
	for _, h := range hooks {
		system = system || strings.Contains(h, `"type":"user_identity_changed"`) && strings.Contains(h, `"customer":"15551234567"`)
		msg = msg || strings.Contains(h, `"body":"after reinstall"`)
	}
	if !system || !msg {
		t.Errorf("webhooks = %v, want the message and a user_identity_changed system message", hooks)
	}
}

func TestMarkReadCoversEarlierMessages(t *testing.T) {
	f := newFixture(t)
	kerry, jo := newPhone(t, "15551234567"), newPhone(t, "15557654321")
	b := f.bundle(t, 0)
	for i, id := range []string{"m1", "m2", "m3"} {
		if i > 0 {
			b = nil
		}
		f.store(t, false, kerry.message(t, id, id, b))
	}
	f.store(t, false, jo.message(t, "other", "x", f.bundle(t, 1)))
	if _, err := f.s.MarkRead(t.Context(), 1, "m2"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, f.d, "SELECT COUNT(*) FROM inbound_messages WHERE read_at > 0"); n != 2 {
		t.Errorf("read = %d, want m1 and m2", n)
	}
	var ids string
	if err := f.d.QueryRow("SELECT message_ids FROM outbound_receipts").Scan(&ids); err != nil {
		t.Fatal(err)
	}
	if ids != "m1,m2" {
		t.Errorf("receipt ids = %q, want m1,m2", ids)
	}
	if _, err := f.s.MarkRead(t.Context(), 1, "m2"); err != nil {
		t.Fatalf("marking read twice: %v", err)
	}
	if n := count(t, f.d, "SELECT COUNT(*) FROM outbound_receipts"); n != 1 {
		t.Errorf("receipts after a second mark = %d, want 1", n)
	}
	if _, err := f.s.MarkRead(t.Context(), 1, "nope"); err == nil {
		t.Error("marking an unknown id read succeeded")
	}
}

// TestMediaMessages: a media message of an auto_download type is stored with
// its file pending and its webhook held back (the download sends it); other
// types are announced at once with a media id to fetch on demand; a message
// that describes no usable file is announced as a failed download.
func TestMediaMessages(t *testing.T) {
	f := newFixture(t)
	if _, err := f.s.settings.Update(t.Context(), 1, []byte(`{"media":{"auto_download":["image"]}}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	kerry := newPhone(t, "15551234567")
	file := func(typ, mimeType string) *messagev1.Content {
		return &messagev1.Content{Body: &messagev1.Content_Media{Media: &messagev1.Media{Type: typ, MimeType: mimeType, Caption: "look",
			DirectPath: "/v/abc", MediaKey: make([]byte, 32), FileSha256: make([]byte, 32), FileEncSha256: make([]byte, 32), FileLength: 1000}}}
	}
	broken := file("document", "application/pdf")
	broken.GetMedia().MediaKey = []byte("short")
	f.store(t, false,
		kerry.content(t, "img", file("image", "image/jpeg"), f.bundle(t, 0)),
		kerry.content(t, "doc", file("document", "application/pdf"), nil),
		kerry.content(t, "bad", broken, nil))
	if n := count(t, f.d, "SELECT COUNT(*) FROM inbound_messages"); n != 3 {
		t.Fatalf("stored = %d, want 3", n)
	}
	if n := count(t, f.d, "SELECT COUNT(*) FROM media WHERE download = 1 AND webhook IS NOT NULL AND msg_type = 'image'"); n != 1 {
		t.Errorf("pending image downloads = %d, want 1", n)
	}
	if n := count(t, f.d, "SELECT COUNT(*) FROM media WHERE download = 0 AND webhook IS NULL AND msg_type = 'document'"); n != 1 {
		t.Errorf("on-demand documents = %d, want 1", n)
	}
	if n := count(t, f.d, "SELECT COUNT(*) FROM media WHERE media_key LIKE '%short%'"); n != 0 {
		t.Error("a media key was stored in the clear")
	}
	hooks := webhooks(t, f.d)
	if len(hooks) != 2 {
		t.Fatalf("webhooks = %v, want the document and the broken one (the image waits for its download)", hooks)
	}
	var docID string
	if err := f.d.QueryRow("SELECT id FROM media WHERE msg_type = 'document'").Scan(&docID); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(hooks[0], `"id":"bad"`) {
		hooks[0], hooks[1] = hooks[1], hooks[0] // the three may be stored in separate batches
	}
	zero := strings.Repeat("0", 64)
	wantDoc := `"type":"document","document":{"id":"` + docID + `","mime_type":"application/pdf","sha256":"` + zero + `","caption":"look"}`
	if !strings.Contains(hooks[0], wantDoc) {
		t.Errorf("document webhook = %s, want it to contain %s", hooks[0], wantDoc)
	}
	if !strings.Contains(hooks[1], `"document":{"mime_type":"application/pdf"`) || !strings.Contains(hooks[1], `"code":400,"title":"Media download error"`) {
		t.Errorf("broken media webhook = %s, want a media object without id and a 400 error", hooks[1])
	}
}
