package server

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// block blocks or unblocks a customer of the caller (chatdv1.Block). The
// block is a mark on the pair's window row, which applyWindow reads in the
// queue writer's transaction: a message committed before the block is
// delivered, one after it is not.
func (s *Server) block(ctx context.Context, c *conn, req *chatdv1.Block) (*chatdv1.IQ, *chatdv1.IQError) {
	if c.registerOnly || c.account == nil || c.account.kind != chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS {
		return nil, iqErr(errcode.AccessDenied, "only a business blocks customers")
	}
	if !phone.Valid(req.Number) || req.Number == c.login.Account {
		return nil, iqErr(errcode.Invalid, "not a customer's number")
	}
	business := c.login.Account
	if !req.Blocked {
		if _, err := s.db.ExecContext(ctx, "UPDATE windows SET blocked = 0 WHERE business = ? AND customer = ?", business, req.Number); err != nil {
			s.log.Error("unblock failed", "err", err)
			return nil, iqInternal
		}
		return &chatdv1.IQ{}, nil
	}
	a, err := s.dir.lookup(ctx, req.Number, false)
	switch {
	case errors.Is(err, errNoAccount):
		return nil, iqErr(errcode.NotEngaged, "Invalid Request. This contact has not engaged with you in the last 24 hrs.")
	case err != nil:
		s.log.Error("block: account lookup failed", "err", err)
		return nil, iqInternal
	case a.kind == chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS:
		return nil, iqErr(errcode.Invalid, "another business cannot be blocked")
	}
	now := s.clock.now()
	var engaged bool
	err = db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		var last, blocked int64
		err := tx.QueryRowContext(ctx, "SELECT last_inbound, blocked FROM windows WHERE business = ? AND customer = ?", business, req.Number).Scan(&last, &blocked)
		if errors.Is(err, sql.ErrNoRows) {
			engaged = false
			return nil
		}
		if err != nil {
			return err
		}
		if blocked != 0 { // already blocked: nothing to do
			engaged = true
			return nil
		}
		if engaged = now.Unix()-last < int64(conversationLength/time.Second); !engaged {
			return nil
		}
		_, err = tx.ExecContext(ctx, "UPDATE windows SET blocked = ? WHERE business = ? AND customer = ?", now.Unix(), business, req.Number)
		return err
	})
	if err != nil {
		s.log.Error("block failed", "err", err)
		return nil, iqInternal
	}
	if !engaged {
		return nil, iqErr(errcode.NotEngaged, "Invalid Request. This contact has not engaged with you in the last 24 hrs.")
	}
	return &chatdv1.IQ{}, nil
}
