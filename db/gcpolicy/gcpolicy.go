// Package gcpolicy sets how often a binary's garbage collector runs. Go's
// default (GOGC=100: collect when the heap has doubled) makes chatd,
// coreapp and webapp spend 5–10 % of their CPU marking a small live heap
// over and over at thousands of messages per second. Each binary names a
// larger percent and a soft memory limit instead: the collector runs a
// quarter as often while the heap is small, and as often as it must to
// stay under the limit once it is not (the runtime's own GC CPU cap keeps
// that from thrashing). docs/performance.md has the measurements.
//
// An operator's GOGC or GOMEMLIMIT wins: Apply leaves a setting alone when
// its variable is set, so the runtime's reading of it stands.
package gcpolicy

import (
	"os"
	"runtime/debug"
)

// Policy is a binary's garbage collection setting.
type Policy struct {
	// Percent is GOGC's value: the heap grows by this percentage of the
	// live heap before the next collection.
	Percent int
	// Limit is GOMEMLIMIT's value in bytes: the soft limit on the memory
	// the Go runtime holds (0: none).
	Limit int64
}

// Apply sets p, except what GOGC or GOMEMLIMIT already set.
func Apply(p Policy) {
	if _, ok := os.LookupEnv("GOGC"); !ok && p.Percent > 0 {
		debug.SetGCPercent(p.Percent)
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok && p.Limit > 0 {
		debug.SetMemoryLimit(p.Limit)
	}
}
