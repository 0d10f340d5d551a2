package auth

import (
	"testing"
	"time"
)

func TestCacheIsBoundedAndExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newCache[string](2)
	k := func(b byte) [32]byte { return [32]byte{b} }

	c.put(k(1), "one", now.Add(time.Second), now, c.generation())
	c.put(k(2), "two", now.Add(10*time.Second), now, c.generation())
	if v, ok := c.get(k(1), now); !ok || v != "one" {
		t.Fatalf("get(1) = %q, %v; want one, true", v, ok)
	}

	// Full: the expired entry 1 is pruned to make room for 3.
	later := now.Add(2 * time.Second)
	c.put(k(3), "three", later.Add(time.Second), later, c.generation())
	if n := c.len(); n != 2 {
		t.Errorf("len = %d, want 2", n)
	}
	if _, ok := c.get(k(1), later); ok {
		t.Errorf("expired entry 1 still cached")
	}
	if _, ok := c.get(k(2), later); !ok {
		t.Errorf("live entry 2 was dropped although an expired one could go")
	}

	// Full of live entries: one of them makes room, the size stays bounded.
	c.put(k(4), "four", later.Add(time.Second), later, c.generation())
	if n := c.len(); n != 2 {
		t.Errorf("len = %d, want 2", n)
	}
	if v, ok := c.get(k(4), later); !ok || v != "four" {
		t.Errorf("get(4) = %q, %v; want four, true", v, ok)
	}

	// Entries expire by their own deadline.
	if _, ok := c.get(k(4), later.Add(time.Second)); ok {
		t.Errorf("entry 4 outlived its deadline")
	}

	// Already expired values are not stored at all; a zero-size cache stores nothing.
	c.put(k(5), "five", later, later, c.generation())
	if _, ok := c.get(k(5), later.Add(-time.Second)); ok {
		t.Errorf("an already expired entry was stored")
	}
	z := newCache[string](0)
	z.put(k(1), "one", now.Add(time.Hour), now, z.generation())
	if z.len() != 0 {
		t.Errorf("zero-size cache stored an entry")
	}

	c.deleteFunc(func(v string) bool { return v == "two" })
	if _, ok := c.get(k(2), later); ok {
		t.Errorf("deleteFunc left entry 2")
	}
}

// TestCacheDropsResultsReadBeforeAnEviction: a validation that read the
// database before a revocation must not cache its result after the
// revocation evicted the credential.
func TestCacheDropsResultsReadBeforeAnEviction(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newCache[string](10)
	k := [32]byte{1}

	gen := c.generation() // the validation starts and reads the database
	c.delete(k)           // meanwhile the credential is revoked and evicted
	c.put(k, "revoked", now.Add(time.Minute), now, gen)
	if v, ok := c.get(k, now); ok {
		t.Errorf("get = %q after an eviction raced with the read; want a miss", v)
	}

	gen = c.generation()
	c.deleteFunc(func(string) bool { return false })
	c.put(k, "revoked", now.Add(time.Minute), now, gen)
	if _, ok := c.get(k, now); ok {
		t.Errorf("deleteFunc did not invalidate a concurrent read")
	}

	c.put(k, "fresh", now.Add(time.Minute), now, c.generation())
	if v, ok := c.get(k, now); !ok || v != "fresh" {
		t.Errorf("get = %q, %v; want fresh, true", v, ok)
	}
}
