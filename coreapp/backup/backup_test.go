package backup

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/openwaba/openwaba/api/profile"
	"github.com/openwaba/openwaba/coreapp/account"
	"github.com/openwaba/openwaba/coreapp/signalstore"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/db/keystore"
)

func newKeystore(t *testing.T) *keystore.Keystore {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	ks, err := keystore.New(secret)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func exec(t *testing.T, d *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := d.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// source is a deployment with one registered number (id 7) and its state.
func source(t *testing.T) (*sql.DB, *keystore.Keystore, account.Account) {
	d, ks := dbtest.New(t, db.Core), newKeystore(t)
	const id = 7
	exec(t, d, "INSERT INTO accounts (id, wa_id, cc, phone_number, state, vname, cert, shards, created_at, verified_at) VALUES (?, '15550100', '1', '5550100', 'verified', 'Acme', 'Y2VydA==', 2, 1, 1)", id)
	exec(t, d, "INSERT INTO chat_keys (account_id, static_priv, static_pub, created_at) VALUES (?, ?, ?, 1)", id, ks.Seal([]byte("chat-private"), account.ChatKeyContext(id)), []byte("chat-public"))
	exec(t, d, "INSERT INTO signal_identity (account_id, registration_id, identity_priv, next_prekey_id, created_at) VALUES (?, 4242, ?, 31, 1)", id, ks.Seal([]byte("identity-private"), signalstore.IdentityContext(id)))
	exec(t, d, "INSERT INTO signal_prekeys (account_id, key_id, priv, created_at) VALUES (?, 30, ?, 1)", id, ks.Seal([]byte("prekey-30"), signalstore.PreKeyContext(id, 30)))
	exec(t, d, "INSERT INTO signal_signed_prekeys (account_id, key_id, priv, signature, ts) VALUES (?, 2, ?, ?, 99)", id, ks.Seal([]byte("spk-2"), signalstore.SignedPreKeyContext(id, 2)), []byte("sig"))
	exec(t, d, "INSERT INTO signal_sessions (account_id, address, record, updated_at) VALUES (?, '15551234567.0', ?, 1)", id, ks.Seal([]byte("session-record"), signalstore.SessionContext(id, "15551234567.0")))
	exec(t, d, "INSERT INTO signal_identities (account_id, address, identity_key, updated_at) VALUES (?, '15551234567.0', ?, 1)", id, []byte("peer-key"))
	sealedApp, _ := jsonBytes(ks.Seal([]byte("app-secret"), webhook.AppSecretContext))
	exec(t, d, "INSERT INTO app_settings (account_id, doc, updated_at) VALUES (?, ?, 1)", id, `{"application":{"sent_status":true},"webhook_format":"cloud","webhook_app_secret":`+sealedApp+`}`)
	exec(t, d, "INSERT INTO business_profiles (account_id, doc, updated_at) VALUES (?, ?, 1)", id, []byte(`{"about":"Tea"}`))
	exec(t, d, "INSERT INTO business_photos (account_id, mime, sha256, data, updated_at) VALUES (?, 'image/png', ?, ?, 1)", id, []byte("0123456789abcdef0123456789abcdef"), []byte("png bytes"))
	exec(t, d, "INSERT INTO webhook_endpoints (account_id, is_default, url, headers, format, events, by_tenant, secret, prev_secret, prev_secret_until, created_at, updated_at) VALUES (?, 0, 'https://hooks.example/in', '{}', 'cloud', '[]', 0, ?, NULL, 0, 1, 1)",
		id, ks.Seal([]byte("whsec_x"), webhook.SecretContext))
	return d, ks, account.Account{ID: id, WaID: "15550100", CC: "1", PhoneNumber: "5550100", State: account.StateVerified, VName: "Acme", Shards: 2}
}

func jsonBytes(b []byte) (string, error) {
	return `"` + base64.StdEncoding.EncodeToString(b) + `"`, nil
}

func TestBackupRestoresOnAnotherDeployment(t *testing.T) {
	src, srcKS, a := source(t)
	data, err := New(src, srcKS).Backup(t.Context(), a, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(data), []byte("Acme")) {
		t.Error("the backup is not encrypted")
	}

	dst, dstKS := dbtest.New(t, db.Core), newKeystore(t)
	exec(t, dst, "INSERT INTO accounts (wa_id, cc, phone_number, state, vname, cert, shards, created_at) VALUES ('15559999', '1', '5559999', 'verified', '', '', 1, 1)") // another number: ids differ
	r := New(dst, dstKS)
	if _, err := r.Restore(t.Context(), data, "wrong horse"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("restore with a wrong password = %v, want ErrDecrypt", err)
	}
	raw, _ := base64.StdEncoding.DecodeString(data)
	raw[len(raw)/2] ^= 1
	if _, err := r.Restore(t.Context(), base64.StdEncoding.EncodeToString(raw), "correct horse"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("restore of damaged data = %v, want ErrDecrypt", err)
	}
	if _, err := r.Restore(t.Context(), "not base64!", "correct horse"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("restore of garbage = %v, want ErrDecrypt", err)
	}
	var n int
	if err := dst.QueryRow("SELECT COUNT(*) FROM accounts WHERE wa_id = '15550100'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a refused restore wrote the account (%d, %v)", n, err)
	}

	waID, err := r.Restore(t.Context(), data, "correct horse")
	if err != nil || waID != "15550100" {
		t.Fatalf("restore = %q, %v", waID, err)
	}
	var id int64
	var state, cert string
	var shards int
	if err := dst.QueryRow("SELECT id, state, cert, shards FROM accounts WHERE wa_id = '15550100'").Scan(&id, &state, &cert, &shards); err != nil {
		t.Fatal(err)
	}
	if id == a.ID || state != account.StateVerified || cert != "Y2VydA==" || shards != 2 {
		t.Errorf("account = id %d, %s, cert %q, %d shards", id, state, cert, shards)
	}
	open := func(q, ctx string) string {
		t.Helper()
		var sealed []byte
		if err := dst.QueryRow(q, id).Scan(&sealed); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		b, err := dstKS.Open(sealed, ctx)
		if err != nil {
			t.Fatalf("%s does not open with the new deployment's keystore for account %d: %v", q, id, err)
		}
		return string(b)
	}
	for q, want := range map[string][2]string{
		"SELECT static_priv FROM chat_keys WHERE account_id = ?":                                {account.ChatKeyContext(id), "chat-private"},
		"SELECT identity_priv FROM signal_identity WHERE account_id = ?":                        {signalstore.IdentityContext(id), "identity-private"},
		"SELECT priv FROM signal_prekeys WHERE account_id = ? AND key_id = 30":                  {signalstore.PreKeyContext(id, 30), "prekey-30"},
		"SELECT priv FROM signal_signed_prekeys WHERE account_id = ? AND key_id = 2":            {signalstore.SignedPreKeyContext(id, 2), "spk-2"},
		"SELECT record FROM signal_sessions WHERE account_id = ? AND address = '15551234567.0'": {signalstore.SessionContext(id, "15551234567.0"), "session-record"},
		"SELECT secret FROM webhook_endpoints WHERE account_id = ?":                             {webhook.SecretContext, "whsec_x"},
	} {
		if got := open(q, want[0]); got != want[1] {
			t.Errorf("%s = %q, want %q", q, got, want[1])
		}
	}
	var reg, next uint32
	if err := dst.QueryRow("SELECT registration_id, next_prekey_id FROM signal_identity WHERE account_id = ?", id).Scan(&reg, &next); err != nil || reg != 4242 || next != 31 {
		t.Errorf("registration id %d, next pre-key %d (%v); want 4242, 31", reg, next, err)
	}
	var doc string
	if err := dst.QueryRow("SELECT doc FROM app_settings WHERE account_id = ?", id).Scan(&doc); err != nil {
		t.Fatal(err)
	}
	settings, secret, err := r.openSettings([]byte(doc))
	if err != nil || string(secret) != "app-secret" || !bytes.Contains(settings, []byte(`"sent_status":true`)) || !bytes.Contains(settings, []byte(`"webhook_format":"cloud"`)) {
		t.Errorf("settings = %s, app secret %q (%v)", settings, secret, err)
	}
	var profile []byte
	if err := dst.QueryRow("SELECT doc FROM business_profiles WHERE account_id = ?", id).Scan(&profile); err != nil || string(profile) != `{"about":"Tea"}` {
		t.Errorf("profile = %s (%v)", profile, err)
	}
	var mime, photo string
	if err := dst.QueryRow("SELECT mime, data FROM business_photos WHERE account_id = ?", id).Scan(&mime, &photo); err != nil || mime != "image/png" || photo != "png bytes" {
		t.Errorf("photo = %s %q (%v)", mime, photo, err)
	}
	// The number is now here: a second restore is refused.
	if _, err := r.Restore(t.Context(), data, "correct horse"); !errors.Is(err, ErrExists) {
		t.Errorf("second restore = %v, want ErrExists", err)
	}
}

func TestBackupNeedsARegisteredNumber(t *testing.T) {
	d, ks, a := source(t)
	a.State = account.StatePending
	if _, err := New(d, ks).Backup(t.Context(), a, "correct horse"); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("backup of a pending number = %v", err)
	}
}

// A number whose sessions do not fit is backed up without them.
func TestBackupLeavesOutSessionsThatDoNotFit(t *testing.T) {
	src, ks, a := source(t)
	big := make([]byte, 64<<10)
	for i := range MaxData / len(big) {
		rand.Read(big) // incompressible
		addr := "1555000" + string(rune('a'+i%26)) + base64.RawURLEncoding.EncodeToString(big[:6]) + ".0"
		exec(t, src, "INSERT INTO signal_sessions (account_id, address, record, updated_at) VALUES (?, ?, ?, 1)", a.ID, addr, ks.Seal(big, signalstore.SessionContext(a.ID, addr)))
	}
	// and the largest photo, which does not compress either.
	photo := make([]byte, profile.MaxPhoto)
	rand.Read(photo)
	exec(t, src, "UPDATE business_photos SET data = ? WHERE account_id = ?", photo, a.ID)
	data, err := New(src, ks).Backup(t.Context(), a, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > MaxData {
		t.Fatalf("backup of %d bytes, over MaxData", len(data))
	}
	dst := dbtest.New(t, db.Core)
	if _, err := New(dst, newKeystore(t)).Restore(t.Context(), data, "correct horse"); err != nil {
		t.Fatal(err)
	}
	var sessions, identities int
	dst.QueryRow("SELECT COUNT(*) FROM signal_sessions").Scan(&sessions)
	dst.QueryRow("SELECT COUNT(*) FROM signal_identity").Scan(&identities)
	if sessions != 0 || identities != 1 {
		t.Errorf("restored %d sessions and %d identities; want the identity without sessions", sessions, identities)
	}
}
