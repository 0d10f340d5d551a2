package main

import (
	"os"
	"testing"
	"time"
)

func TestMeasure(t *testing.T) {
	a, ok := cpuTicks(os.Getpid())
	if !ok {
		t.Fatal("cannot read this process's CPU time")
	}
	// The kernel charges CPU time in ticks, sampled: burn until one is
	// charged (a second at most) rather than for a fixed count.
	b := a
	for deadline := time.Now().Add(2 * time.Second); b <= a && time.Now().Before(deadline); {
		for s, i := 0, 0; i < 5_000_000; i++ {
			s += i
		}
		b, _ = cpuTicks(os.Getpid())
	}
	if b <= a {
		t.Errorf("CPU ticks did not grow: %d → %d", a, b)
	}
	full := func(statements float64) map[string]float64 {
		m := map[string]float64{}
		for _, k := range dbCounters {
			m[k] = 0
		}
		m["statements"] = statements
		return m
	}
	c := cost("p", 100, snapshot{cpu: map[string]int64{"x": 10, "y": 0}, db: full(50)},
		snapshot{cpu: map[string]int64{"x": 30, "y": 5}, db: full(250)})
	// 20 ticks = 200 ms over 100 messages: 2 ms each.
	if c.CPUms["x"] != 2 || c.CPUms["y"] != 0.5 || c.CPUms["total"] != 2.5 || c.DB["statements"] != 2 {
		t.Errorf("cost = %+v", c)
	}
	// A snapshot whose counters could not be read gives no database figures.
	if c := cost("p", 100, snapshot{db: full(50)}, snapshot{db: map[string]float64{}}); c.DB != nil {
		t.Errorf("cost from an unread snapshot = %+v", c.DB)
	}
	// A server without one of the counters (MariaDB 10.8+ has no
	// Innodb_os_log_fsyncs) still reports the others.
	partial := full(50)
	delete(partial, "redo_fsyncs")
	after := full(150)
	delete(after, "redo_fsyncs")
	if c := cost("p", 100, snapshot{db: partial}, snapshot{db: after}); c.DB["statements"] != 1 {
		t.Errorf("cost without one counter = %+v", c.DB)
	}
	l := latencyOf([]time.Duration{5 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 100 * time.Millisecond})
	if l.P50 != 3 || l.Max != 100 || l.P99 != 5 {
		t.Errorf("latency = %+v", l)
	}
}
