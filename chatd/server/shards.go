package server

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openwaba/openwaba/chatd/shard"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

var (
	errNotOwner    = errors.New("static key is not the account's registered key")
	errNotBusiness = errors.New("not a business account")
)

// remapChunk caps the senders of one re-mapping statement.
const remapChunk = 1000

// setShards changes the shard count of the registration connection's
// account. In one transaction it updates the account and moves what is
// queued for it to the slots of the new count (epochs in slots are never
// touched); after the commit it drops the cached account and ends the
// account's sessions with StreamError{RESTART}, so their owners log in again
// under the new mapping.
func (s *Server) setShards(ctx context.Context, c *conn, typ chatdv1.IQType, req *chatdv1.SetShards) (*chatdv1.IQ, *chatdv1.IQError) {
	switch {
	case typ != chatdv1.IQType_IQ_TYPE_SET:
		return nil, &chatdv1.IQError{Code: 400, Text: "set shards is a set request"}
	case !c.registerOnly:
		return nil, &chatdv1.IQError{Code: 400, Text: "set shards on a registration connection only"}
	case !shard.Valid(int(req.GetShards())):
		return nil, &chatdv1.IQError{Code: 400, Text: "shards must be 1, 2, 4, 8, 16 or 32"}
	}
	number, shards := c.login.Account, int(req.GetShards())
	var (
		old      int
		remapped int64
	)
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		old, remapped = 0, 0
		var (
			kind int32
			pub  []byte
		)
		// The account row first: resolveShards locks it too, before the
		// queue, so the two never wait for each other the other way round.
		err := tx.QueryRowContext(ctx, "SELECT kind, static_pub, shards FROM accounts WHERE number = ? FOR UPDATE", number).Scan(&kind, &pub, &old)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return errNoAccount
		case err != nil:
			return err
		case subtle.ConstantTimeCompare(pub, c.wc.PeerStatic) != 1:
			return errNotOwner
		case chatdv1.AccountKind(kind) != chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS:
			return errNotBusiness
		case old == shards:
			return nil
		}
		if _, err := tx.ExecContext(ctx, "UPDATE accounts SET shards = ?, updated_at = ? WHERE number = ?", shards, time.Now().UnixMilli(), number); err != nil {
			return err
		}
		remapped, err = remapQueue(ctx, tx, number, shards)
		return err
	})
	switch {
	case errors.Is(err, errNoAccount):
		return nil, &chatdv1.IQError{Code: 404, Text: "account is not registered"}
	case errors.Is(err, errNotOwner):
		c.log.Warn("set shards refused: static key is not the account's")
		return nil, &chatdv1.IQError{Code: 403, Text: "static key does not match the registered key"}
	case errors.Is(err, errNotBusiness):
		return nil, &chatdv1.IQError{Code: 403, Text: "only business accounts have several shards"}
	case err != nil:
		s.log.Error("set shards failed", "account", number, "err", err)
		return nil, &chatdv1.IQError{Code: 500, Text: "internal error"}
	}
	closed := 0
	if old != shards {
		s.dir.forget(number)
		s.mu.Lock()
		s.reshards[number]++ // a login checked against the old count checks again
		s.mu.Unlock()
		// c is a registration connection: it holds no serveMu (see later).
		for _, v := range s.sessionsOf(number) {
			v.end(endSetShards, chatdv1.StreamErrorCode_STREAM_ERROR_CODE_RESTART, "shard count changed; log in again")
			closed++
		}
	}
	s.log.Info("shards set", "account", number, "old_shards", old, "new_shards", shards, "remapped", remapped, "sessions_closed", closed)
	return &chatdv1.IQ{Payload: &chatdv1.IQ_SetShardsResult{SetShardsResult: &chatdv1.SetShardsResult{Shards: uint32(shards)}}}, nil
}

// remapQueue moves the rows queued for number to slot shard.For(sender,
// shards) and returns how many moved. Rows keep their seq, so each peer's
// stanzas stay in order (they all move to the same slot, which is pushed
// in seq order). The server's own notifications (no sender) go to slot 0.
func remapQueue(ctx context.Context, tx *sql.Tx, number string, shards int) (int64, error) {
	rows, err := tx.QueryContext(ctx, "SELECT DISTINCT sender, shard FROM queue WHERE recipient = ? FOR UPDATE", number)
	if err != nil {
		return 0, err
	}
	moves := map[uint32][]any{} // target slot → senders with rows elsewhere
	for rows.Next() {
		var sender string
		var cur uint32
		if err := rows.Scan(&sender, &cur); err != nil {
			rows.Close()
			return 0, err
		}
		target := uint32(0)
		if sender != "" {
			target = shard.For(sender, shards)
		}
		if target != cur {
			moves[target] = append(moves[target], sender)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var moved int64
	for target, senders := range moves {
		// One sender may appear twice (rows on two slots): harmless in IN.
		for len(senders) > 0 {
			chunk := senders[:min(remapChunk, len(senders))]
			senders = senders[len(chunk):]
			args := append([]any{target, number, target}, chunk...)
			res, err := tx.ExecContext(ctx, "UPDATE queue SET shard = ? WHERE recipient = ? AND shard <> ? AND sender IN ("+db.Placeholders(len(chunk))+")", args...)
			if err != nil {
				return 0, fmt.Errorf("re-map queue: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return 0, err
			}
			moved += n
		}
	}
	return moved, nil
}
