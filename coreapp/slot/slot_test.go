package slot

import (
	"fmt"
	"testing"
)

func TestAssignSlots(t *testing.T) {
	keys := func(n int) []Key {
		var out []Key
		for i := range n {
			out = append(out, Key{AccountID: int64(1 + i/4), Shard: uint32(i % 4)})
		}
		return out
	}
	counts := func(a map[Key]string) map[string]int {
		c := map[string]int{}
		for _, n := range a {
			c[n]++
		}
		return c
	}
	const now = 1000
	live := func(owner string) lease { return lease{owner: owner, expires: now + 1} }

	t.Run("fair and complete", func(t *testing.T) {
		for _, c := range []struct{ slots, nodes int }{{1, 1}, {1, 3}, {4, 2}, {5, 2}, {8, 3}, {32, 5}} {
			var nodes []string
			for i := range c.nodes {
				nodes = append(nodes, fmt.Sprintf("core%d", i+1))
			}
			a := assignSlots(keys(c.slots), map[Key]lease{}, nodes, now)
			if len(a) != c.slots {
				t.Errorf("%d slots on %d nodes: %d assigned", c.slots, c.nodes, len(a))
			}
			lo, hi := c.slots, 0
			for _, n := range nodes {
				lo, hi = min(lo, counts(a)[n]), max(hi, counts(a)[n])
			}
			if hi-lo > 1 {
				t.Errorf("%d slots on %d nodes: counts %v differ by more than one", c.slots, c.nodes, counts(a))
			}
		}
	})

	t.Run("current owners keep their slots", func(t *testing.T) {
		ks := keys(4)
		leases := map[Key]lease{ks[0]: live("core2"), ks[1]: live("core2"), ks[2]: live("core1"), ks[3]: live("core1")}
		a := assignSlots(ks, leases, []string{"core1", "core2"}, now)
		for _, k := range ks {
			if a[k] != leases[k].owner {
				t.Errorf("slot %v moved from %s to %s although the shares were fair", k, leases[k].owner, a[k])
			}
		}
	})

	t.Run("a joining node gets a fair share, moving as little as needed", func(t *testing.T) {
		ks := keys(6)
		leases := map[Key]lease{}
		for _, k := range ks {
			leases[k] = lease{owner: "core1", expires: now + 1, assignedTo: "core1"}
		}
		a := assignSlots(ks, leases, []string{"core1", "core2", "core3"}, now)
		if c := counts(a); c["core1"] != 2 || c["core2"] != 2 || c["core3"] != 2 {
			t.Errorf("counts %v, want 2 each", c)
		}
	})

	t.Run("a dead node's slots go to the live ones", func(t *testing.T) {
		ks := keys(4)
		leases := map[Key]lease{ks[0]: {owner: "core3", expires: now - 1, assignedTo: "core3"}, ks[1]: {owner: "core3", expires: now - 1, assignedTo: "core3"},
			ks[2]: live("core1"), ks[3]: live("core2")}
		a := assignSlots(ks, leases, []string{"core1", "core2"}, now)
		if a[ks[2]] != "core1" || a[ks[3]] != "core2" {
			t.Errorf("live owners lost their slots: %v", a)
		}
		if c := counts(a); c["core1"] != 2 || c["core2"] != 2 || c["core3"] != 0 {
			t.Errorf("counts %v, want 2 and 2", c)
		}
	})

	t.Run("no nodes", func(t *testing.T) {
		if a := assignSlots(keys(2), nil, nil, now); len(a) != 0 {
			t.Errorf("assigned %v to no nodes", a)
		}
	})
}
