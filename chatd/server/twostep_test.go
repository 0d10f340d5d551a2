package server

import (
	"testing"

	"github.com/openwaba/openwaba/api/errcode"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

func twoStepIQ(pin string) *chatdv1.IQ {
	return &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_TwoStep{TwoStep: &chatdv1.TwoStep{Pin: pin}}}
}

func registerWithPin(number, pin string) *chatdv1.IQ {
	iq := registerIQ(number, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	iq.GetRegister().Pin = pin
	return iq
}

// TestTwoStep: with a PIN set, another key registering the number needs it;
// wrong PINs are counted and lock the number after maxPinFailures; the
// number's own key re-registers without it; clearing the PIN lifts it.
func TestTwoStep(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	B := "15550006001"
	kb := n.register(t, B, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	set := func(pin string) error {
		return n.registration(t, B, kb, func(call iqFunc) error { _, err := call(t.Context(), twoStepIQ(pin)); return err })
	}
	if err := set("12345"); iqCode(t, err) != uint32(errcode.Invalid) {
		t.Errorf("a 5-digit pin = %v, want %d", err, errcode.Invalid)
	}
	if err := set("123456"); err != nil {
		t.Fatalf("set pin: %v", err)
	}
	other := newKey(t)
	reg := func(pin string) error {
		return n.registration(t, B, other, func(call iqFunc) error { _, err := call(t.Context(), registerWithPin(B, pin)); return err })
	}
	// Another key cannot set the pin.
	if err := n.registration(t, B, other, func(call iqFunc) error { _, err := call(t.Context(), twoStepIQ("000000")); return err }); iqCode(t, err) != uint32(errcode.AccessDenied) {
		t.Errorf("two-step from another key = %v, want %d", err, errcode.AccessDenied)
	}
	if err := reg(""); iqCode(t, err) != uint32(errcode.AccessDenied) {
		t.Errorf("registration without the pin = %v, want %d", err, errcode.AccessDenied)
	}
	if err := reg("654321"); iqCode(t, err) != uint32(errcode.AccessDenied) {
		t.Errorf("registration with a wrong pin = %v, want %d", err, errcode.AccessDenied)
	}
	if err := reg("123456"); err != nil {
		t.Errorf("registration with the pin = %v, want a code sent", err)
	}
	// The number's own key is not asked for it.
	if err := n.registration(t, B, kb, func(call iqFunc) error { _, err := call(t.Context(), registerWithPin(B, "")); return err }); err != nil {
		t.Errorf("re-registration with the number's key = %v", err)
	}
	// Wrong pins lock the number's takeover, even with the right pin.
	for range maxPinFailures {
		if err := reg("000000"); iqCode(t, err) != uint32(errcode.AccessDenied) {
			t.Fatalf("wrong pin = %v", err)
		}
	}
	if err := reg("123456"); iqCode(t, err) != uint32(errcode.TooManyRequests) {
		t.Errorf("the right pin after %d wrong ones = %v, want %d", maxPinFailures, err, errcode.TooManyRequests)
	}
	// Off: anyone with a code may register again.
	if err := set(""); err != nil {
		t.Fatalf("clear pin: %v", err)
	}
	if err := reg(""); err != nil {
		t.Errorf("registration after the pin was cleared = %v", err)
	}
	var hash []byte
	if err := n.db.QueryRow("SELECT pin_hash FROM accounts WHERE number = ?", B).Scan(&hash); err != nil || len(hash) != 0 {
		t.Errorf("pin hash after clearing = %q, %v", hash, err)
	}
}
