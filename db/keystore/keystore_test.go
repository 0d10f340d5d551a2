package keystore

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	ks, created, err := Load("", t.TempDir())
	if err != nil || !created {
		t.Fatalf("Load = %v, created %v", err, created)
	}
	secret := []byte("an identity private key, 32 byt")
	sealed := ks.Seal(secret, "identity/1")
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := ks.Open(sealed, "identity/1")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := ks.Open(sealed, "identity/2"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open under another context = %v, want ErrCorrupt", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := ks.Open(sealed, "identity/1"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open of a tampered value = %v, want ErrCorrupt", err)
	}
}

func TestSecretFileIsReusedAndPrivate(t *testing.T) {
	dir := t.TempDir()
	a, created, err := Load("", dir)
	if err != nil || !created {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode = %v (%v), want 0600", st.Mode(), err)
	}
	b, created, err := Load("", dir)
	if err != nil || created {
		t.Fatalf("second Load = %v, created %v", err, created)
	}
	if _, err := b.Open(a.Seal([]byte("x"), "c"), "c"); err != nil {
		t.Errorf("a value sealed before a restart does not open after: %v", err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, FileName))
	c, _, err := Load(string(raw), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(a.Seal([]byte("x"), "c"), "c"); err != nil {
		t.Errorf("WA_KEYSTORE_SECRET with the file's content does not open: %v", err)
	}
	if _, _, err := Load(base64.StdEncoding.EncodeToString([]byte("short")), ""); err == nil {
		t.Error("a short secret was accepted")
	}
}
