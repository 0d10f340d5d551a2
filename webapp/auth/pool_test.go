package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestHashingPool: bcrypt work never runs on more than PoolSize workers;
// requests beyond the queue are refused at once, and a request that waits
// longer than PoolWait is refused.
func TestHashingPool(t *testing.T) {
	s := New(nil, Options{Throttle: ThrottleOptions{PoolSize: 2, PoolQueue: 1, PoolWait: 200 * time.Millisecond}})
	release := make(chan struct{})
	var mu sync.Mutex
	running, peak := 0, 0
	work := func() {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make(chan error, 3)
	for range 3 { // two run, one waits
		wg.Go(func() { results <- s.withHasher(ctx, work) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.waiting.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// A fourth finds the queue full.
	if err := s.withHasher(ctx, work); !errors.Is(err, ErrBusy) {
		t.Fatalf("fourth = %v, want ErrBusy", err)
	}
	close(release)
	wg.Wait()
	close(results)
	busy := 0
	for err := range results {
		if errors.Is(err, ErrBusy) {
			busy++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if peak > 2 {
		t.Errorf("%d hashes ran at once, more than the pool's 2", peak)
	}
	// The waiting one either ran after a worker freed or gave up after
	// PoolWait; both are bounded.
	if busy > 1 {
		t.Errorf("%d of 3 were refused", busy)
	}
}
