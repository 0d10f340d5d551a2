package slot

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/openwaba/openwaba/chatd/shard"
	"github.com/openwaba/openwaba/coreapp/account"
	"github.com/openwaba/openwaba/db"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// Errors of the calls that must reach a particular node.
var (
	// ErrNotMaster: the call runs on the primary master only (1017).
	ErrNotMaster = errors.New("this node is not the primary master")
	// ErrNotOwner: another node holds the connected slot the call needs
	// (1018).
	ErrNotOwner = errors.New("another node owns the account's connected slot")
	// ErrReshard: a shard change could not complete now; it is retried by
	// the primary master.
	ErrReshard = errors.New("the shard change could not complete")
)

// ValidShards are the shard counts an account may have.
var ValidShards = []int{1, 2, 4, 8, 16, 32}

// Health returns the account's gateway status for the deployment
// (connected when every slot of the account is connected; connecting while
// only some are, or while its shard count changes; else disconnected) and
// every live node with
// the account's status on it and its role.
func (m *Manager) Health(ctx context.Context, a account.Account) (string, []*corev1.NodeHealth, error) {
	rows, err := m.cfg.DB.QueryContext(ctx, "SELECT shard, owner, connected FROM slot_leases WHERE account_id = ? AND owner <> '' AND expires_at > "+db.NowSQL, a.ID)
	if err != nil {
		return "", nil, err
	}
	defer rows.Close()
	connectedOn := map[string]bool{}
	connected := 0
	for rows.Next() {
		var sh int
		var owner string
		var conn bool
		if err := rows.Scan(&sh, &owner, &conn); err != nil {
			return "", nil, err
		}
		if sh >= a.Shards {
			continue
		}
		if conn {
			connected++
			connectedOn[owner] = true
		}
	}
	if err := rows.Err(); err != nil {
		return "", nil, err
	}
	status := "disconnected"
	switch {
	case a.ReshardingTo == 0 && connected >= max(a.Shards, 1):
		status = "connected"
	case connected > 0 || a.ReshardingTo != 0:
		status = "connecting"
	}
	view := m.cfg.Cluster.View()
	var nodes []*corev1.NodeHealth
	for _, n := range view.Nodes {
		if !n.Alive {
			continue
		}
		gs := "disconnected"
		if connectedOn[n.ID] {
			gs = "connected"
		}
		nodes = append(nodes, &corev1.NodeHealth{Node: n.Key(), GatewayStatus: gs, Role: view.Role(n.ID)})
	}
	return status, nodes, nil
}

// OwnerElsewhere reports whether another node holds a connected slot of
// the account (so a call needing one should go there: 1018).
func (m *Manager) OwnerElsewhere(ctx context.Context, accountID int64) bool {
	var n int
	err := m.cfg.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM slot_leases WHERE account_id = ? AND owner <> ? AND connected = 1 AND expires_at > "+db.NowSQL,
		accountID, m.cfg.Node).Scan(&n)
	return err == nil && n > 0
}

// RequireMaster returns ErrNotMaster unless this node is the primary
// master.
func (m *Manager) RequireMaster() error {
	if !m.cfg.Cluster.IsMaster() {
		return ErrNotMaster
	}
	return nil
}

// SetShards changes the account's number of connection slots, on the
// primary master: every slot of the account stops (the slot owners see
// accounts.resharding_to and give their slots up; what they sent and chatd
// did not ack is sent again by the new owners, with the same ids), chatd
// learns the new count, and in one transaction the pending messages and
// receipts are re-mapped to the new slots and the count changes. Accepts
// lock the account row shared, so none is mapped with a stale count. A
// change interrupted by a crash is completed by the next primary master.
func (m *Manager) SetShards(ctx context.Context, a account.Account, n int) (account.Account, error) {
	if err := m.RequireMaster(); err != nil {
		return a, err
	}
	if !slices.Contains(ValidShards, n) {
		return a, fmt.Errorf("shards %d: want 1, 2, 4, 8, 16 or 32", n)
	}
	done := false
	err := db.Tx(ctx, m.cfg.DB, func(tx *sql.Tx) error {
		var cur, to int
		if err := tx.QueryRowContext(ctx, "SELECT shards, resharding_to FROM accounts WHERE id = ? FOR UPDATE", a.ID).Scan(&cur, &to); err != nil {
			return err
		}
		if cur == n && to == 0 {
			done = true
			return nil
		}
		_, err := tx.ExecContext(ctx, "UPDATE accounts SET resharding_to = ?, resharding_since = ? WHERE id = ?", n, db.NowMillis(), a.ID)
		return err
	})
	if err != nil || done {
		return a, err
	}
	m.log.Info("shard change started", "wa_id", a.WaID, "from", a.Shards, "to", n)
	m.cfg.Accounts.Forget()
	m.Reconcile()
	if err := m.finishReshard(ctx, a.ID, n); err != nil {
		return a, err
	}
	return m.cfg.Accounts.ByID(ctx, a.ID)
}

// finishReshard waits until no slot of the account is owned, tells chatd
// and re-maps. It is idempotent: a retry after a failure at any step
// completes the change.
func (m *Manager) finishReshard(ctx context.Context, accountID int64, n int) error {
	t := m.cfg.Cluster.Timings()
	deadline := time.Now().Add(t.Unhealthy + 2*t.Heartbeat + 5*time.Second)
	for {
		var live int
		if err := m.cfg.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM slot_leases WHERE account_id = ? AND owner <> '' AND expires_at > "+db.NowSQL, accountID).Scan(&live); err != nil {
			return err
		}
		if live == 0 && !m.runsAccount(accountID) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d slots of the account are still owned", ErrReshard, live)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	a, err := m.cfg.Accounts.ByID(ctx, accountID)
	if err != nil {
		return err
	}
	if err := m.cfg.Accounts.SetNetworkShards(ctx, a, n); err != nil {
		return fmt.Errorf("%w: the chat network: %v", ErrReshard, err)
	}
	moved := 0
	err = db.Tx(ctx, m.cfg.DB, func(tx *sql.Tx) error {
		moved = 0
		var to int
		if err := tx.QueryRowContext(ctx, "SELECT resharding_to FROM accounts WHERE id = ? FOR UPDATE", accountID).Scan(&to); err != nil {
			return err
		}
		if to != n {
			return nil // finished by someone else, or replaced by a newer change
		}
		for _, table := range []string{"outbound_messages", "outbound_receipts"} {
			where := "account_id = ?"
			if table == "outbound_messages" {
				where += " AND status = 0"
			}
			rows, err := tx.QueryContext(ctx, "SELECT DISTINCT peer FROM "+table+" WHERE "+where, accountID)
			if err != nil {
				return err
			}
			byShard := map[uint32][]any{}
			for rows.Next() {
				var p string
				if err := rows.Scan(&p); err != nil {
					rows.Close()
					return err
				}
				sh := shard.For(p, n)
				byShard[sh] = append(byShard[sh], p)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for sh, peers := range byShard {
				for len(peers) > 0 {
					k := min(len(peers), 500)
					res, err := tx.ExecContext(ctx, "UPDATE "+table+" SET shard = ? WHERE "+where+" AND shard <> ? AND peer IN ("+db.Placeholders(k)+")",
						append([]any{sh, accountID, sh}, peers[:k]...)...)
					if err != nil {
						return err
					}
					c, _ := res.RowsAffected()
					moved += int(c)
					peers = peers[k:]
				}
			}
		}
		_, err := tx.ExecContext(ctx, "UPDATE accounts SET shards = ?, resharding_to = 0, resharding_since = 0 WHERE id = ?", n, accountID)
		return err
	})
	if err != nil {
		return err
	}
	m.log.Info("shard change done", "wa_id", a.WaID, "shards", n, "rows_remapped", moved)
	m.cfg.Accounts.Forget()
	m.Reconcile()
	return nil
}

func (m *Manager) runsAccount(accountID int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.runners {
		if k.AccountID == accountID {
			return true
		}
	}
	return false
}

// resumeReshards (primary master) completes shard changes left unfinished
// for longer than staleReshard (their coordinator died or failed).
func (m *Manager) resumeReshards(ctx context.Context, accts []account.Account) {
	for _, a := range accts {
		if a.ReshardingTo == 0 {
			continue
		}
		var since int64
		if err := m.cfg.DB.QueryRowContext(ctx, "SELECT resharding_since FROM accounts WHERE id = ?", a.ID).Scan(&since); err != nil {
			continue
		}
		if time.Since(time.UnixMilli(since)) < staleReshard {
			continue
		}
		m.mu.Lock()
		busy := m.resharding[a.ID]
		if !busy {
			m.resharding[a.ID] = true
		}
		m.mu.Unlock()
		if busy {
			continue
		}
		m.log.Warn("resuming an unfinished shard change", "wa_id", a.WaID, "to", a.ReshardingTo)
		m.mu.Lock()
		ctx := m.runCtx // not the reconcile's: the change may take longer
		m.mu.Unlock()
		m.wg.Go(func() {
			defer func() {
				m.mu.Lock()
				delete(m.resharding, a.ID)
				m.mu.Unlock()
			}()
			if _, err := m.cfg.DB.ExecContext(ctx, "UPDATE accounts SET resharding_since = ? WHERE id = ? AND resharding_to = ?", db.NowMillis(), a.ID, a.ReshardingTo); err != nil {
				return
			}
			if err := m.finishReshard(ctx, a.ID, a.ReshardingTo); err != nil && ctx.Err() == nil {
				m.log.Warn("shard change still unfinished; retrying later", "wa_id", a.WaID, "err", err)
			}
		})
	}
}

// staleReshard: a shard change unfinished for this long is resumed by the
// primary master.
const staleReshard = 30 * time.Second
