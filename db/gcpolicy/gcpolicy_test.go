package gcpolicy

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
)

// restore puts the runtime's settings back after a test changed them.
func restore(t *testing.T) {
	percent := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
}

func TestApplySetsBoth(t *testing.T) {
	restore(t)
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Setenv(k, "") // restored after the test
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
	Apply(Policy{Percent: 400, Limit: 256 << 20})
	if got := debug.SetGCPercent(-1); got != 400 {
		t.Errorf("GC percent = %d, want 400", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 256<<20 {
		t.Errorf("memory limit = %d, want %d", got, 256<<20)
	}
}

func TestOperatorWins(t *testing.T) {
	restore(t)
	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetGCPercent(150) // what the runtime read from GOGC at start
	Apply(Policy{Percent: 400, Limit: 256 << 20})
	if got := debug.SetGCPercent(-1); got != 150 {
		t.Errorf("GC percent = %d, want the operator's 150", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit = %d, want it left alone", got)
	}
}
