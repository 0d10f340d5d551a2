package signalstore

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"testing"

	"github.com/openwaba/openwaba/chatd/e2ee"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/db/keystore"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

func newKeystore(t *testing.T) *keystore.Keystore {
	secret := make([]byte, 32)
	rand.Read(secret)
	ks, err := keystore.New(secret)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// TestPrivateKeysAreSealedAtRest reads the rows back raw: no private key or
// session record may appear in them in the clear, and a second keystore
// (another secret) cannot load them.
func TestPrivateKeysAreSealedAtRest(t *testing.T) {
	ctx := t.Context()
	d := dbtest.New(t, db.Core)
	ks := newKeystore(t)
	id, err := LoadIdentity(ctx, d, 1, ks)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadIdentity(ctx, d, 1, ks)
	if err != nil || !bytes.Equal(again.PrivateKey(), id.PrivateKey()) || again.RegistrationID != id.RegistrationID {
		t.Fatalf("LoadIdentity is not stable: %v", err)
	}
	up, err := PreKeyUpload(ctx, d, 1, id, ks, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(up.Prekeys) != 5 || up.SignedPrekey == nil {
		t.Fatalf("upload = %d pre-keys, signed %v", len(up.Prekeys), up.SignedPrekey)
	}

	// A customer builds a session with the account, which decrypts it.
	phoneID, _ := e2ee.NewIdentity()
	phone := e2ee.NewMemStore(phoneID)
	b := &chatdv1.PreKeyBundle{Number: "15550100", RegistrationId: up.RegistrationId, IdentityKey: up.IdentityKey, SignedPrekey: up.SignedPrekey, Prekey: up.Prekeys[0]}
	enc, err := e2ee.Seal(ctx, phone, "15550100", []byte("hello"), b)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Tx(ctx, d, func(tx *sql.Tx) error {
		st := New(tx, 1, id, ks)
		o, err := e2ee.Open(ctx, st, "15551234567", enc)
		if err != nil || string(o.Plaintext) != "hello" {
			t.Errorf("Open = %q, %v", o.Plaintext, err)
		}
		return st.Flush(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}

	raw := func(q string) [][]byte {
		rows, err := d.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out [][]byte
		for rows.Next() {
			var b []byte
			rows.Scan(&b)
			out = append(out, b)
		}
		return out
	}
	for _, v := range raw("SELECT identity_priv FROM signal_identity") {
		if bytes.Contains(v, id.PrivateKey()) {
			t.Error("the identity private key is stored in the clear")
		}
	}
	if n := len(raw("SELECT priv FROM signal_prekeys")); n != 4 {
		t.Errorf("one-time keys left = %d, want 4 (one used by the session)", n)
	}
	sessions := raw("SELECT record FROM signal_sessions")
	if len(sessions) != 1 {
		t.Fatalf("sessions = %d, want 1", len(sessions))
	}
	// Another secret cannot read any of it.
	other := newKeystore(t)
	if _, err := LoadIdentity(ctx, d, 1, other); err == nil {
		t.Error("the identity loaded with another keystore secret")
	}
	err = db.Tx(ctx, d, func(tx *sql.Tx) error {
		_, err := New(tx, 1, id, other).LoadSession(ctx, e2ee.Address("15551234567"))
		return err
	})
	if err == nil {
		t.Error("a session loaded with another keystore secret")
	}
	missing, err := MissingSessions(ctx, d, 1, []string{"15551234567", "15559999999"})
	if err != nil || len(missing) != 1 || missing[0] != "15559999999" {
		t.Errorf("MissingSessions = %v, %v", missing, err)
	}
}
