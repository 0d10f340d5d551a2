package auth

import (
	"sync"
	"time"
)

// cache is a bounded map of validated credentials, keyed by the SHA-256 of
// the credential, each entry valid until its own deadline.
//
// A credential is revoked in the database first and then evicted here. A
// validation that read the database before the revocation and stores its
// result after the eviction would bring the revoked credential back: so a
// validation takes the generation before it reads the database, and put
// drops its result if an eviction happened since (every eviction bumps it).
type cache[V any] struct {
	max int

	mu  sync.Mutex // guards m and gen
	m   map[[32]byte]cacheEntry[V]
	gen uint64 // incremented by every eviction
}

type cacheEntry[V any] struct {
	v     V
	until time.Time
}

func newCache[V any](max int) *cache[V] {
	return &cache[V]{max: max, m: make(map[[32]byte]cacheEntry[V])}
}

func (c *cache[V]) get(k [32]byte, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if ok && now.Before(e.until) {
		return e.v, true
	}
	if ok {
		delete(c.m, k)
	}
	var zero V
	return zero, false
}

// generation is taken before reading the database, and given to put.
func (c *cache[V]) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put stores v until the given time, unless an eviction happened since gen
// was taken. When the map is full it first drops expired entries, then, if
// still full, an arbitrary one.
func (c *cache[V]) put(k [32]byte, v V, until, now time.Time, gen uint64) {
	if c.max <= 0 || !now.Before(until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for key, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, key)
			}
		}
		for key := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = cacheEntry[V]{v: v, until: until}
}

func (c *cache[V]) delete(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, k)
}

// deleteFunc removes every entry whose value matches.
func (c *cache[V]) deleteFunc(match func(V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, e := range c.m {
		if match(e.v) {
			delete(c.m, k)
		}
	}
}

func (c *cache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
