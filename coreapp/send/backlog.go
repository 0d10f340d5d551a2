package send

import (
	"context"
	"sync"
	"time"

	"github.com/openwaba/openwaba/coreapp/account"
	"github.com/openwaba/openwaba/db"
)

// Concurrent rate limiting (on-prem's 503): a number whose messages
// accepted and not yet sent pass a depth takes no more until they drain.
// The depth is read at most once per backlogEvery per number and node,
// counting no further than the limit (the pending rows of each slot, on
// the index that the senders read), so a check costs one bounded query a
// second, not one per send.

// backlogEvery is how long a number's pending count is reused.
const backlogEvery = time.Second

type backlog struct {
	at time.Time
	n  int
}

type backlogs struct {
	mu sync.Mutex
	m  map[int64]backlog
}

// Backlogged reports whether account a has at least limit messages
// accepted and not yet sent (limit <= 0: never).
func (s *Store) Backlogged(ctx context.Context, a account.Account, limit int) (bool, error) {
	if limit <= 0 {
		return false, nil
	}
	now := time.Now()
	s.backlogs.mu.Lock()
	if s.backlogs.m == nil {
		s.backlogs.m = map[int64]backlog{}
	}
	b, ok := s.backlogs.m[a.ID]
	stale := !ok || now.Sub(b.at) > backlogEvery
	if stale {
		// This send reads the count; the ones meanwhile use the last one.
		s.backlogs.m[a.ID] = backlog{at: now, n: b.n}
	}
	s.backlogs.mu.Unlock()
	if stale {
		shards := make([]any, max(a.Shards, 1))
		for i := range shards {
			shards[i] = i
		}
		args := append(append([]any{a.ID}, shards...), StatusAccepted, limit)
		var n int
		if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM (SELECT 1 FROM outbound_messages WHERE account_id = ? AND shard IN ("+db.Placeholders(len(shards))+") AND status = ? LIMIT ?) pending",
			args...).Scan(&n); err != nil {
			return false, err
		}
		b = backlog{at: now, n: n}
		s.backlogs.mu.Lock()
		s.backlogs.m[a.ID] = b
		s.backlogs.mu.Unlock()
	}
	return b.n >= limit, nil
}

// RequestAccepted reports whether the account already has a message with
// request id requestID (a retry, which the backlog limit lets through).
func (s *Store) RequestAccepted(ctx context.Context, accountID int64, requestID string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbound_messages WHERE account_id = ? AND request_id = ?", accountID, requestID).Scan(&n)
	return n > 0, err
}
