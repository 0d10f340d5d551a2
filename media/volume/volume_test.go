package volume

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestPutOpenRemove(t *testing.T) {
	v, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("media "), 10000)
	sum := sha256.Sum256(data)
	sha, size, err := v.Put(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if sha != hex.EncodeToString(sum[:]) || size != int64(len(data)) {
		t.Fatalf("Put = %s, %d", sha, size)
	}
	again, _, err := v.Put(bytes.NewReader(data), 1<<20)
	if err != nil || again != sha {
		t.Fatalf("second Put = %s, %v", again, err)
	}
	f, n, err := v.Open(sha)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if n != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatal("content read back differs")
	}
	if err := v.Remove(sha); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Open(sha); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after Remove = %v, want ErrNotFound", err)
	}
	tmps, _ := os.ReadDir(filepath.Join(v.Root(), "tmp"))
	if len(tmps) != 0 {
		t.Errorf("%d temporary files left", len(tmps))
	}
}

func TestLimitsLeaveNothing(t *testing.T) {
	v, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Put(bytes.NewReader(make([]byte, 101)), 100); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize Put = %v, want ErrTooLarge", err)
	}
	if _, _, err := v.Put(bytes.NewReader(nil), 100); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty Put = %v, want ErrEmpty", err)
	}
	if _, _, err := v.Put(bytes.NewReader(make([]byte, 100)), 100); err != nil {
		t.Errorf("Put at the limit = %v", err)
	}
	tmps, _ := os.ReadDir(filepath.Join(v.Root(), "tmp"))
	if len(tmps) != 0 {
		t.Errorf("%d temporary files left", len(tmps))
	}
	if _, err := v.Path("../../etc/passwd"); err == nil {
		t.Error("a non-hash name was accepted")
	}
}
