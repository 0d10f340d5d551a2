// Package procprofile writes a process's CPU and allocation profiles for
// the benchmark (make bench PROFILE=1): when WA_PROFILE_DIR is set, chatd,
// coreapp and webapp profile their CPU from start to stop into
// <dir>/<name>.cpu.pprof and write <dir>/<name>.allocs.pprof when they
// stop. Read them with `go tool pprof`.
package procprofile

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
)

// EnvDir names the directory of the profiles.
const EnvDir = "WA_PROFILE_DIR"

// Start starts profiling name when WA_PROFILE_DIR is set; stop writes the
// profiles and must be called before the process exits. Without the
// variable both do nothing.
func Start(name string) (stop func() error, err error) {
	dir := os.Getenv(EnvDir)
	if dir == "" {
		return func() error { return nil }, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cpu, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := cpu.Close(); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(dir, name+".allocs.pprof"))
		if err != nil {
			return err
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return fmt.Errorf("allocation profile: %w", err)
		}
		return nil
	}, nil
}
