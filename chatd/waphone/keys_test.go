package waphone

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// TestPreopen: a batch of messages is decrypted and the keys are stored
// once, before any is acted on; a phone that dies right after finds every
// one in its stored buffer.
func TestPreopen(t *testing.T) {
	ctx := t.Context()
	sender, err := openKeyring(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	phone, err := openKeyring(home)
	if err != nil {
		t.Fatal(err)
	}
	up, err := phone.preKeyUpload(1)
	if err != nil {
		t.Fatal(err)
	}
	b := &chatdv1.PreKeyBundle{Number: "4915112345678", RegistrationId: up.RegistrationId, IdentityKey: up.IdentityKey, SignedPrekey: up.SignedPrekey, Prekey: up.Prekeys[0]}
	var msgs []*chatdv1.Message
	for i, text := range []string{"one", "two", "three", "four"} {
		var bundle *chatdv1.PreKeyBundle
		if i == 0 {
			bundle = b
		}
		enc, err := sender.seal(ctx, "4915112345678", &messagev1.Content{Body: &messagev1.Content_Text{Text: &messagev1.Text{Body: text}}}, bundle)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, &chatdv1.Message{Id: text, From: "15550100", Enc: enc})
	}
	bad := &chatdv1.Message{Id: "bad", From: "15550100", Enc: &chatdv1.Enc{Type: chatdv1.EncType_ENC_TYPE_MSG, V: 2, Ciphertext: []byte("garbage")}}
	before, _ := os.Stat(filepath.Join(home, journalFile))
	phone.preopen(ctx, append(msgs, bad))
	after, _ := os.Stat(filepath.Join(home, journalFile))
	if after.Size() <= before.Size() {
		t.Error("preopen did not store the keys (no journal line)")
	}
	// The phone dies now: the stored state has every message.
	again, err := openKeyring(home)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if _, ok := again.buffer[m.From+" "+m.Id]; !ok {
			t.Errorf("%s is not in the stored buffer", m.Id)
		}
		c, err := again.open(ctx, m.From, m.Id, m.Enc)
		if err != nil || c.GetText().GetBody() != m.Id {
			t.Errorf("after a restart, %s opened as %v, %v", m.Id, c, err)
		}
	}
	if _, ok := again.buffer[bad.From+" "+bad.Id]; ok {
		t.Error("the undecryptable message is in the buffer")
	}
	if _, err := again.open(ctx, bad.From, bad.Id, bad.Enc); err == nil {
		t.Error("garbage opened")
	}
}

// TestJournal: the keys survive a restart through the journal, a torn last
// line (a crash while appending) is ignored, lines already in a snapshot
// are skipped, and a large journal is folded into a snapshot.
func TestJournal(t *testing.T) {
	ctx := t.Context()
	home := t.TempDir()
	k, err := openKeyring(home)
	if err != nil {
		t.Fatal(err)
	}
	other, err := openKeyring(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up, err := k.preKeyUpload(1)
	if err != nil {
		t.Fatal(err)
	}
	b := &chatdv1.PreKeyBundle{Number: "4915112345678", RegistrationId: up.RegistrationId, IdentityKey: up.IdentityKey, SignedPrekey: up.SignedPrekey, Prekey: up.Prekeys[0]}
	send := func(i int) *chatdv1.Message {
		var bundle *chatdv1.PreKeyBundle
		if i == 0 {
			bundle = b
		}
		enc, err := other.seal(ctx, "4915112345678", &messagev1.Content{Body: &messagev1.Content_Text{Text: &messagev1.Text{Body: fmt.Sprint(i)}}}, bundle)
		if err != nil {
			t.Fatal(err)
		}
		return &chatdv1.Message{Id: fmt.Sprint("m", i), From: "15550100", Enc: enc}
	}
	for i := range 3 {
		m := send(i)
		if _, err := k.open(ctx, m.From, m.Id, m.Enc); err != nil {
			t.Fatal(err)
		}
	}
	// A torn line after the stored ones: ignored.
	f, _ := os.OpenFile(filepath.Join(home, journalFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"gen":999,"store":{"sess`)
	f.Close()
	k2, err := openKeyring(home)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, ok := k2.buffer["15550100 m"+fmt.Sprint(i)]; !ok {
			t.Errorf("m%d lost across the restart", i)
		}
	}
	// The session went on from the stored state: the next message opens.
	m := send(3)
	if c, err := k2.open(ctx, m.From, m.Id, m.Enc); err != nil || c.GetText().GetBody() != "3" {
		t.Fatalf("after the restart: %v, %v", c, err)
	}
	// The open folded the journal into a snapshot: the old lines (below
	// its generation) are skipped if they come back.
	old, _ := os.ReadFile(filepath.Join(home, journalFile))
	k3, err := openKeyring(home)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(home, journalFile), append(old, []byte("\n")...), 0o600)
	k4, err := openKeyring(home)
	if err != nil || len(k4.buffer) != len(k3.buffer) {
		t.Errorf("replaying old lines changed the buffer: %d → %d, %v", len(k3.buffer), len(k4.buffer), err)
	}
	// Many stores: the journal stays bounded.
	for i := 4; i < 400; i++ {
		m := send(i)
		if _, err := k4.open(ctx, m.From, m.Id, m.Enc); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := os.Stat(filepath.Join(home, journalFile)); st.Size() > maxJournal+(64<<10) {
		t.Errorf("the journal grew to %d bytes", st.Size())
	}
	k5, err := openKeyring(home)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := k5.buffer["15550100 m399"]; !ok || len(k5.buffer) != bufferSize {
		t.Errorf("after many stores: %d in the buffer, m399 there: %v", len(k5.buffer), ok)
	}
}
