// Package shard maps a customer's number to one of an account's connection
// slots. chatd and coreapp use the same function, so all traffic between a
// business and one customer goes through one slot, in order.
package shard

import "hash/fnv"

// For returns the shard of peer among shards slots (0 when shards ≤ 1).
func For(peer string, shards int) uint32 {
	if shards <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(peer))
	return h.Sum32() % uint32(shards)
}

// Max is the largest number of slots an account may have.
const Max = 32

// Valid reports whether an account may have shards slots: 1, 2, 4, 8, 16
// or 32 (chatd refuses any other count in SetShards).
func Valid(shards int) bool { return shards >= 1 && shards <= Max && shards&(shards-1) == 0 }
