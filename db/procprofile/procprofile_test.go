package procprofile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStart(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvDir, dir)
	stop, err := Start("x")
	if err != nil {
		t.Fatal(err)
	}
	s := 0
	for i := range 1_000_000 {
		s += i
	}
	_ = s
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"x.cpu.pprof", "x.allocs.pprof"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	t.Setenv(EnvDir, "")
	stop, err = Start("y")
	if err != nil || stop() != nil {
		t.Errorf("without the variable: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "y.cpu.pprof")); err == nil {
		t.Error("a profile without WA_PROFILE_DIR")
	}
}
