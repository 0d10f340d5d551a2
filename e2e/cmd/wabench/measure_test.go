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
	for s, i := 0, 0; i < 50_000_000; i++ {
		s += i
	}
	b, _ := cpuTicks(os.Getpid())
	if b <= a {
		t.Errorf("CPU ticks did not grow: %d → %d", a, b)
	}
	c := cost("p", 100, snapshot{cpu: map[string]int64{"x": 10, "y": 0}, db: map[string]float64{"statements": 50}},
		snapshot{cpu: map[string]int64{"x": 30, "y": 5}, db: map[string]float64{"statements": 250}})
	// 20 ticks = 200 ms over 100 messages: 2 ms each.
	if c.CPUms["x"] != 2 || c.CPUms["y"] != 0.5 || c.CPUms["total"] != 2.5 || c.DB["statements"] != 2 {
		t.Errorf("cost = %+v", c)
	}
	l := latencyOf([]time.Duration{5 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 100 * time.Millisecond})
	if l.P50 != 3 || l.Max != 100 || l.P99 != 5 {
		t.Errorf("latency = %+v", l)
	}
}
