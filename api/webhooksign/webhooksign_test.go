package webhooksign

import (
	"strings"
	"testing"
	"time"
)

// The vector of the Standard Webhooks specification's reference libraries
// (secret, id, timestamp, payload and the signature they compute).
const (
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTS     = 1614265330
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestKnownVector(t *testing.T) {
	key, err := Key(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := Sign(key, vecID, vecTS, []byte(vecBody)); got != vecSig {
		t.Fatalf("Sign = %s, want %s", got, vecSig)
	}
	if err := Verify(vecSecret, vecID, "1614265330", vecSig, []byte(vecBody), time.Unix(vecTS+10, 0)); err != nil {
		t.Fatalf("Verify of the vector: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	now := time.Unix(vecTS, 0)
	for _, c := range []struct {
		name, id, ts, sig, body string
		at                      time.Time
		want                    error
	}{
		{"body changed", vecID, "1614265330", vecSig, `{"test": 2432232315}`, now, ErrNoMatch},
		{"id changed", "msg_other", "1614265330", vecSig, vecBody, now, ErrNoMatch},
		{"timestamp changed", vecID, "1614265331", vecSig, vecBody, now, ErrNoMatch},
		{"too old", vecID, "1614265330", vecSig, vecBody, now.Add(Tolerance + time.Second), ErrTimestamp},
		{"from the future", vecID, "1614265330", vecSig, vecBody, now.Add(-Tolerance - time.Second), ErrTimestamp},
		{"no timestamp", vecID, "", vecSig, vecBody, now, ErrTimestamp},
		{"no signature", vecID, "1614265330", "", vecBody, now, ErrNoMatch},
	} {
		if err := Verify(vecSecret, c.id, c.ts, c.sig, []byte(c.body), c.at); err != c.want {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
}

// TestRotation: during a rotation's grace period the header carries a
// signature per secret and a receiver holding either one accepts.
func TestRotation(t *testing.T) {
	old, next := NewSecret(), NewSecret()
	if old == next {
		t.Fatal("two new secrets are equal")
	}
	ko, _ := Key(old)
	kn, _ := Key(next)
	h := Header([][]byte{kn, ko}, "evt_1", vecTS, []byte("{}"))
	if n := len(strings.Fields(h)); n != 2 {
		t.Fatalf("header %q has %d signatures, want 2", h, n)
	}
	for _, s := range []string{old, next} {
		if err := Verify(s, "evt_1", "1614265330", h, []byte("{}"), time.Unix(vecTS, 0)); err != nil {
			t.Errorf("a receiver with one of the two secrets refused: %v", err)
		}
	}
	if err := Verify(NewSecret(), "evt_1", "1614265330", h, []byte("{}"), time.Unix(vecTS, 0)); err != ErrNoMatch {
		t.Errorf("a third secret: Verify = %v, want ErrNoMatch", err)
	}
}

func TestKeyRefusesMalformedSecrets(t *testing.T) {
	for _, s := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_c2hvcnQ=", "whsec_" + strings.Repeat("QUFB", 30)} {
		if _, err := Key(s); err == nil {
			t.Errorf("Key(%q) accepted it", s)
		}
	}
}
