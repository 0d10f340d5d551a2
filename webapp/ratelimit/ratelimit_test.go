package ratelimit

import (
	"log/slog"
	"testing"
	"time"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Limit{"50/150": {50, 150}, "20": {20, 60}, "off": {}, "0": {}, "": {}, "0.5/1": {0.5, 1}} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"fast", "-1/2", "5/0", "5/x", "NaN"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}

func TestBucket(t *testing.T) {
	l := New(map[string]Limit{GroupMessages: {10, 5}, GroupDefault: {2, 2}}, nil, "w1", slog.New(slog.DiscardHandler))
	now := time.Unix(1000, 0)
	for i := range 5 {
		if ok, _ := l.Allow(GroupMessages, "number:1", now); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow(GroupMessages, "number:1", now)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Errorf("past the burst: %v, retry after %v; want refused, about 100 ms", ok, wait)
	}
	if ok, _ := l.Allow(GroupMessages, "number:2", now); !ok {
		t.Error("another caller shares the first one's bucket")
	}
	if ok, _ := l.Allow(GroupDefault, "number:1", now); !ok {
		t.Error("another group shares the messages bucket")
	}
	if ok, _ := l.Allow(GroupMessages, "number:1", now.Add(100*time.Millisecond)); !ok {
		t.Error("a token did not come back after 1/rate")
	}
	off := New(map[string]Limit{GroupDefault: {}}, nil, "w1", slog.New(slog.DiscardHandler))
	for range 1000 {
		if ok, _ := off.Allow(GroupDefault, "x", now); !ok {
			t.Fatal("an off limit refused")
		}
	}
}

// Two webapps on one database share a limit: each fills at half the rate.
func TestShared(t *testing.T) {
	d := dbtest.New(t, db.Core)
	log := slog.New(slog.DiscardHandler)
	limits := map[string]Limit{GroupDefault: {10, 10}}
	a, b := New(limits, d, "a", log), New(limits, d, "b", log)
	for _, l := range []*Limiter{a, b, a} { // a counts b after b's first beat
		if err := l.beat(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if a.Share() != 2 || b.Share() != 2 {
		t.Fatalf("shares %d and %d, want 2 each", a.Share(), b.Share())
	}
	now := time.Unix(1000, 0)
	allowed := 0
	for range 20 {
		for _, l := range []*Limiter{a, b} {
			if ok, _ := l.Allow(GroupDefault, "user:admin", now); ok {
				allowed++
			}
		}
	}
	if allowed != 10 {
		t.Errorf("%d requests allowed by the two webapps at once, want the burst of 10", allowed)
	}
	// b stops beating: after Alive a has the whole limit.
	if _, err := d.Exec("UPDATE webapp_nodes SET heartbeat_at = heartbeat_at - ? WHERE id = 'b'", (2 * Alive).Milliseconds()); err != nil {
		t.Fatal(err)
	}
	if err := a.beat(t.Context()); err != nil || a.Share() != 1 {
		t.Errorf("share after b died = %d (%v), want 1", a.Share(), err)
	}
}
