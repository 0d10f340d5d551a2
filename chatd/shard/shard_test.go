package shard_test

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/openwaba/openwaba/chatd/shard"
)

// TestForGolden pins For: chatd and coreapp (and every deployed coreapp
// version) must route a peer to the same slot, so the mapping may never change.
func TestForGolden(t *testing.T) {
	counts := []int{1, 2, 4, 32}
	tests := []struct {
		peer string
		want []uint32 // for counts 1, 2, 4, 32
	}{
		{"15551234567", []uint32{0, 1, 3, 15}},
		{"447700900123", []uint32{0, 0, 2, 18}},
		{"5511987654321", []uint32{0, 0, 0, 16}},
		{"12345", []uint32{0, 0, 0, 24}},
		{"19876543210", []uint32{0, 1, 1, 21}},
	}
	for _, tt := range tests {
		t.Run(tt.peer, func(t *testing.T) {
			var got []uint32
			for _, n := range counts {
				got = append(got, shard.For(tt.peer, n))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("For(%q, %v) mismatch (-want +got):\n%s", tt.peer, counts, diff)
			}
		})
	}
}

// TestForRange checks that For is deterministic and stays within [0, shards),
// and that no slot count below 2 ever yields anything but 0.
func TestForRange(t *testing.T) {
	for _, shards := range []int{-1, 0, 1, 2, 3, 4, 7, 32, 1000} {
		t.Run(fmt.Sprint(shards), func(t *testing.T) {
			hit := map[uint32]bool{}
			for i := range 2000 {
				peer := fmt.Sprintf("1555%07d", i)
				got := shard.For(peer, shards)
				if again := shard.For(peer, shards); again != got {
					t.Fatalf("For(%q, %d) = %d then %d; want a stable result", peer, shards, got, again)
				}
				if limit := max(shards, 1); got >= uint32(limit) {
					t.Fatalf("For(%q, %d) = %d, want < %d", peer, shards, got, limit)
				}
				hit[got] = true
			}
			// 2000 peers over at most 32 slots: every slot gets traffic.
			if want := max(shards, 1); want <= 32 && len(hit) != want {
				t.Errorf("For over 2000 peers used %d of %d slots", len(hit), want)
			}
		})
	}
}

func TestValid(t *testing.T) {
	var got []int
	for n := -1; n <= 2*shard.Max; n++ {
		if shard.Valid(n) {
			got = append(got, n)
		}
	}
	if diff := cmp.Diff([]int{1, 2, 4, 8, 16, 32}, got); diff != "" {
		t.Errorf("valid shard counts mismatch (-want +got):\n%s", diff)
	}
}
