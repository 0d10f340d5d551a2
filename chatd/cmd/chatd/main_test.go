package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/openwaba/openwaba/chatd/wire"
)

// TestWriteRootKey: the key file is created with its directory, is readable
// by everyone (0644, whatever the umask) and parses back; a restart rewrites
// it in place.
func TestWriteRootKey(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	pub, _, err := wire.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "new", "dir", rootKeyFile)
	for range 2 {
		if err := writeRootKey(path, wire.EncodeRootKey(pub)); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := wire.ParseRootKey(string(b))
	if err != nil || !got.Equal(pub) {
		t.Errorf("file holds %q (%v), want the key", b, err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}
