package e2ee

import (
	"bytes"
	"errors"
	"testing"

	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// device is one side of a conversation: a store and its published bundle
// source.
type device struct {
	number string
	st     *MemStore
}

func newDevice(t *testing.T, number string) *device {
	t.Helper()
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return &device{number: number, st: NewMemStore(id)}
}

// bundle is what chatd would hand out for d (one one-time key taken).
func (d *device) bundle(t *testing.T) *chatdv1.PreKeyBundle {
	t.Helper()
	spk, err := d.st.SignedPreKey()
	if err != nil {
		t.Fatal(err)
	}
	pks, err := d.st.GeneratePreKeys(1)
	if err != nil {
		t.Fatal(err)
	}
	up := Upload(d.st.Identity(), spk, pks)
	return &chatdv1.PreKeyBundle{Number: d.number, RegistrationId: up.RegistrationId, IdentityKey: up.IdentityKey, SignedPrekey: up.SignedPrekey, Prekey: up.Prekeys[0]}
}

func TestConversation(t *testing.T) {
	ctx := t.Context()
	biz, phone := newDevice(t, "15550100"), newDevice(t, "15551234567")

	// First message builds the session from the bundle: a pre-key message.
	enc, err := Seal(ctx, biz.st, phone.number, []byte("hello"), phone.bundle(t))
	if err != nil {
		t.Fatal(err)
	}
	if enc.Type != chatdv1.EncType_ENC_TYPE_PKMSG {
		t.Fatalf("first message type = %s, want PKMSG", enc.Type)
	}
	if bytes.Contains(enc.Ciphertext, []byte("hello")) {
		t.Fatal("plaintext visible in the ciphertext")
	}
	got, err := Open(ctx, phone.st, biz.number, enc)
	if err != nil || string(got.Plaintext) != "hello" {
		t.Fatalf("Open = %q, %v", got.Plaintext, err)
	}
	// The one-time key is consumed.
	if n := len(phone.st.prekeys); n != 0 {
		t.Errorf("one-time keys left after the pre-key message = %d, want 0", n)
	}
	// Opening it again is a duplicate.
	if _, err := Open(ctx, phone.st, biz.number, enc); !errors.Is(err, ErrDuplicate) && !errors.Is(err, ErrUndecryptable) {
		t.Errorf("second Open = %v, want a duplicate or undecryptable", err)
	}

	// Reply and a second message use the session.
	reply, err := Seal(ctx, phone.st, biz.number, []byte("hi back"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Open(ctx, biz.st, phone.number, reply); err != nil || string(got.Plaintext) != "hi back" {
		t.Fatalf("reply Open = %q, %v", got.Plaintext, err)
	}
	m2, err := Seal(ctx, biz.st, phone.number, []byte("second"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Type != chatdv1.EncType_ENC_TYPE_MSG {
		t.Errorf("message after the reply type = %s, want MSG", m2.Type)
	}
	if got, err := Open(ctx, phone.st, biz.number, m2); err != nil || string(got.Plaintext) != "second" {
		t.Fatalf("second Open = %q, %v", got.Plaintext, err)
	}
	if _, err := Open(ctx, phone.st, biz.number, m2); !errors.Is(err, ErrDuplicate) {
		t.Errorf("replayed message = %v, want ErrDuplicate", err)
	}

	// Without a session and a bundle, sealing fails clearly.
	if _, err := Seal(ctx, biz.st, "15559999999", []byte("x"), nil); !errors.Is(err, ErrNoSession) {
		t.Errorf("Seal without session or bundle = %v, want ErrNoSession", err)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	ctx := t.Context()
	biz, phone := newDevice(t, "15550100"), newDevice(t, "15551234567")
	enc, err := Seal(ctx, biz.st, phone.number, []byte("one"), phone.bundle(t))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := phone.st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored, err := LoadMemStore(snap)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Open(ctx, restored, biz.number, enc); err != nil || string(got.Plaintext) != "one" {
		t.Fatalf("Open with the restored store = %q, %v", got.Plaintext, err)
	}
}

func TestIdentityChange(t *testing.T) {
	ctx := t.Context()
	biz, phone := newDevice(t, "15550100"), newDevice(t, "15551234567")
	if _, err := Seal(ctx, biz.st, phone.number, []byte("one"), phone.bundle(t)); err != nil {
		t.Fatal(err)
	}
	// The phone reinstalls: new identity, new bundle.
	phone2 := newDevice(t, phone.number)
	b := phone2.bundle(t)
	if err := biz.st.DeleteSession(ctx, Address(phone.number)); err != nil {
		t.Fatal(err)
	}
	if _, err := Seal(ctx, biz.st, phone.number, []byte("two"), b); !errors.Is(err, ErrIdentityChanged) {
		t.Fatalf("Seal to a reinstalled phone = %v, want ErrIdentityChanged", err)
	}
	key, err := BundleIdentity(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := Trust(ctx, biz.st, phone.number, key); err != nil {
		t.Fatal(err)
	}
	enc, err := Seal(ctx, biz.st, phone.number, []byte("two"), b)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Open(ctx, phone2.st, biz.number, enc); err != nil || string(got.Plaintext) != "two" {
		t.Fatalf("Open on the new install = %q, %v", got.Plaintext, err)
	}
	// A pre-key message from the new install to a business that still
	// trusts the old identity is refused until it is trusted.
	biz2 := newDevice(t, "15550100")
	old := newDevice(t, "15557654321")
	if _, err := Seal(ctx, old.st, biz2.number, []byte("a"), biz2.bundle(t)); err != nil {
		t.Fatal(err)
	}
	first, _ := Seal(ctx, old.st, biz2.number, []byte("a2"), nil)
	if _, err := Open(ctx, biz2.st, old.number, first); err != nil {
		t.Fatal(err)
	}
	reinstalled := newDevice(t, old.number)
	pk, err := Seal(ctx, reinstalled.st, biz2.number, []byte("new me"), biz2.bundle(t))
	if err != nil {
		t.Fatal(err)
	}
	opened, err := Open(ctx, biz2.st, old.number, pk)
	if !errors.Is(err, ErrIdentityChanged) || opened.Identity == nil {
		t.Fatalf("Open from a reinstalled phone = %v (identity %v), want ErrIdentityChanged with the new key", err, opened.Identity)
	}
	if err := Trust(ctx, biz2.st, old.number, opened.Identity); err != nil {
		t.Fatal(err)
	}
	if got, err := Open(ctx, biz2.st, old.number, pk); err != nil || string(got.Plaintext) != "new me" {
		t.Fatalf("Open after trusting = %q, %v", got.Plaintext, err)
	}
}

func TestPadding(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 17, 1000} {
		b := bytes.Repeat([]byte{7}, n)
		p := Pad(b)
		if d := len(p) - len(b); d < 1 || d > 16 {
			t.Errorf("Pad added %d bytes", d)
		}
		got, err := Unpad(p)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("Unpad(Pad(%d bytes)) = %d bytes, %v", n, len(got), err)
		}
	}
	for _, bad := range [][]byte{nil, {0}, {17}, {1, 2, 2, 3}} {
		if _, err := Unpad(bad); err == nil {
			t.Errorf("Unpad(%v) accepted bad padding", bad)
		}
	}
}

// TestTamperedMessageLeavesTheSession: a message whose MAC fails changes
// nothing the store keeps (libsignal advances the decoded record before it
// checks the MAC; MemStore hands out its last stored record decoded, and a
// record loaded and not stored back is forgotten), so the real message and
// the one skipped before it still open.
func TestTamperedMessageLeavesTheSession(t *testing.T) {
	ctx := t.Context()
	biz, phone := newDevice(t, "15550100"), newDevice(t, "15551234567")
	first, err := Seal(ctx, biz.st, phone.number, []byte("hello"), phone.bundle(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, phone.st, biz.number, first); err != nil {
		t.Fatal(err)
	}
	reply, err := Seal(ctx, phone.st, biz.number, []byte("hi back"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, biz.st, phone.number, reply); err != nil {
		t.Fatal(err)
	}
	var msgs []*chatdv1.Enc
	for _, text := range []string{"second", "third"} {
		m, err := Seal(ctx, biz.st, phone.number, []byte(text), nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	tampered := &chatdv1.Enc{Type: msgs[1].Type, Ciphertext: bytes.Clone(msgs[1].Ciphertext)}
	tampered.Ciphertext[len(tampered.Ciphertext)-1] ^= 0xff // the MAC
	if _, err := Open(ctx, phone.st, biz.number, tampered); err == nil {
		t.Fatal("a message with a broken MAC opened")
	}
	for i, want := range []string{"third", "second"} {
		m := msgs[1-i]
		if got, err := Open(ctx, phone.st, biz.number, m); err != nil || string(got.Plaintext) != want {
			t.Fatalf("Open %q after the tampered copy = %q, %v", want, got.Plaintext, err)
		}
	}
}
