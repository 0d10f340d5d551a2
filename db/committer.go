package db

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrCommitterClosed is returned for work submitted after a Batcher stopped.
var ErrCommitterClosed = errors.New("committer stopped")

// Batcher collects items from many callers and writes them in shared
// transactions (group commit) through one flush function per batch, so a
// batch costs a few multi-row statements and one commit instead of a
// transaction per item.
//
// When a batch fails, it is rolled back and each item is flushed again alone,
// so one bad item does not fail its neighbours. A flush function may
// therefore see an item more than once: it must only overwrite the results
// it stores in items, never accumulate them.
//
// A Batcher is safe for concurrent use. Run owns the worker goroutines; when
// it returns, none is left and every queued item has been flushed.
type Batcher[T any] struct {
	db       *sql.DB
	log      *slog.Logger
	flush    func(ctx context.Context, tx *sql.Tx, items []T) error
	jobs     chan job[T]
	maxBatch int
	workers  int
	name     string // BatchOptions.Name

	mu      sync.RWMutex // guards stopped; held for reading while submitting
	stopped bool
}

type job[T any] struct {
	item T
	done func(error)
}

// BatchOptions tune a Batcher; zero values pick the defaults.
type BatchOptions struct {
	// MaxBatch caps the items per transaction (default 256).
	MaxBatch int
	// Workers is the number of transactions in flight at once (default 4).
	// With one worker, batches commit in submission order.
	Workers int
	// Queue is the number of items waiting before submitters block
	// (default 4096).
	Queue int
	// Name labels the batcher's transactions for SetBatchObserver
	// ("batch" when empty).
	Name string
}

// BatchObserver is told of every group transaction a Batcher ran: the
// batcher's name, its items, how long it took and its error.
type BatchObserver func(name string, items int, took time.Duration, err error)

var batchObserver atomic.Pointer[BatchObserver]

// SetBatchObserver makes every Batcher of the process report its
// transactions to fn (the process's metrics; nil stops it).
func SetBatchObserver(fn BatchObserver) {
	if fn == nil {
		batchObserver.Store(nil)
		return
	}
	batchObserver.Store(&fn)
}

// NewBatcher returns a Batcher writing with flush. Call Run to start it.
func NewBatcher[T any](d *sql.DB, log *slog.Logger, o BatchOptions, flush func(ctx context.Context, tx *sql.Tx, items []T) error) *Batcher[T] {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.Name == "" {
		o.Name = "batch"
	}
	return &Batcher[T]{db: d, log: log, flush: flush, jobs: make(chan job[T], o.Queue), maxBatch: o.MaxBatch, workers: o.Workers, name: o.Name}
}

// Run flushes submitted items until ctx ends, then flushes what is queued and
// returns.
func (b *Batcher[T]) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range b.workers {
		wg.Go(b.work)
	}
	<-ctx.Done()
	b.mu.Lock()
	b.stopped = true
	close(b.jobs)
	b.mu.Unlock()
	wg.Wait()
	return nil
}

// Go queues item and returns at once; done is called with the outcome after
// the commit (or rollback). done runs on a worker goroutine: it must not
// block and must not submit to this Batcher. Go blocks while the queue is
// full.
func (b *Batcher[T]) Go(item T, done func(error)) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.stopped {
		done(ErrCommitterClosed)
		return
	}
	b.jobs <- job[T]{item: item, done: done}
}

// Do flushes item in a shared transaction and returns once it is committed.
func (b *Batcher[T]) Do(ctx context.Context, item T) error {
	ch := make(chan error, 1)
	b.mu.RLock()
	if b.stopped {
		b.mu.RUnlock()
		return ErrCommitterClosed
	}
	select {
	case b.jobs <- job[T]{item: item, done: func(err error) { ch <- err }}:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.mu.RUnlock()
		return ctx.Err()
	}
	// The item is queued: wait for it even if ctx ends, so the caller never
	// reports failure for a write that then commits.
	return <-ch
}

func (b *Batcher[T]) work() {
	batch := make([]job[T], 0, b.maxBatch)
	items := make([]T, 0, b.maxBatch)
	for {
		j, ok := <-b.jobs
		if !ok {
			return
		}
		batch = append(batch[:0], j)
	gather:
		for len(batch) < b.maxBatch {
			select {
			case j, ok := <-b.jobs:
				if !ok {
					break gather
				}
				batch = append(batch, j)
			default:
				break gather
			}
		}
		items = items[:0]
		for _, j := range batch {
			items = append(items, j.item)
		}
		b.commit(batch, items)
	}
}

// commit runs a batch detached from any caller's context, with its own
// deadline, so a shutdown never leaves a half-reported transaction.
func (b *Batcher[T]) commit(batch []job[T], items []T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := func(items []T) error {
		start := time.Now()
		err := Tx(ctx, b.db, func(tx *sql.Tx) error { return b.flush(ctx, tx, items) })
		if obs := batchObserver.Load(); obs != nil {
			(*obs)(b.name, len(items), time.Since(start), err)
		}
		return err
	}
	if len(batch) > 1 {
		err := run(items)
		if err == nil {
			for _, j := range batch {
				j.done(nil)
			}
			return
		}
		b.log.Debug("group commit failed; writing its items one by one", "items", len(batch), "err", err)
	}
	for i, j := range batch {
		j.done(run(items[i : i+1]))
	}
}

// Committer batches arbitrary write functions: each runs in turn inside the
// shared transaction.
type Committer = Batcher[func(*sql.Tx) error]

// CommitterOptions tune a Committer.
type CommitterOptions = BatchOptions

// NewCommitter returns a Committer writing to d. Call Run to start it.
func NewCommitter(d *sql.DB, log *slog.Logger, o CommitterOptions) *Committer {
	return NewBatcher(d, log, o, func(_ context.Context, tx *sql.Tx, fns []func(*sql.Tx) error) error {
		for _, fn := range fns {
			if err := fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
}

// Placeholders returns "?,?,…" with n marks, for IN lists and VALUES rows.
func Placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	b := make([]byte, 2*n-1)
	for i := range b {
		if i%2 == 0 {
			b[i] = '?'
		} else {
			b[i] = ','
		}
	}
	return string(b)
}

// Rows returns n copies of row ("(?,?,?)") joined by commas, for multi-row
// VALUES.
func Rows(row string, n int) string {
	if n <= 0 {
		return ""
	}
	b := make([]byte, 0, n*(len(row)+1))
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, row...)
	}
	return string(b)
}
