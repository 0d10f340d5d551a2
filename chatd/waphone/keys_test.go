package waphone

import (
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
	before, _ := os.Stat(filepath.Join(home, keysFile))
	phone.preopen(ctx, append(msgs, bad))
	after, _ := os.Stat(filepath.Join(home, keysFile))
	if !after.ModTime().After(before.ModTime()) && after.Size() == before.Size() {
		t.Error("preopen did not store the keys")
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
