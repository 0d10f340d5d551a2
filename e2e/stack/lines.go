package stack

import (
	"bufio"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// LineReader collects a command's stdout lines.
type LineReader struct {
	t      testing.TB
	mu     sync.Mutex // guards lines
	lines  []string
	signal chan struct{}
}

// NewLineReader attaches to cmd's stdout; call before cmd.Start.
func NewLineReader(t testing.TB, cmd *exec.Cmd) *LineReader {
	lr := &LineReader{t: t, signal: make(chan struct{}, 1)}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { // ends at EOF, when the command exits
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lr.mu.Lock()
			lr.lines = append(lr.lines, sc.Text())
			lr.mu.Unlock()
			select {
			case lr.signal <- struct{}{}:
			default:
			}
		}
	}()
	return lr
}

// WaitFor waits for a line containing substr and returns it.
func (lr *LineReader) WaitFor(within time.Duration, substr string) string {
	lr.t.Helper()
	deadline := time.After(within)
	for {
		lr.mu.Lock()
		for _, l := range lr.lines {
			if strings.Contains(l, substr) {
				lr.mu.Unlock()
				return l
			}
		}
		all := strings.Join(lr.lines, "\n")
		lr.mu.Unlock()
		select {
		case <-lr.signal:
		case <-deadline:
			lr.t.Fatalf("no line with %q within %s; output:\n%s", substr, within, all)
		}
	}
}
