package server

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// Two-step verification (chatdv1.TwoStep): the PIN is kept as a bcrypt hash
// on the account row and checked when another key registers the number.
const (
	// maxPinFailures wrong PINs lock the number's registration for
	// pinLockout after the last of them.
	maxPinFailures = 10
	pinLockout     = time.Hour
	pinCost        = bcrypt.DefaultCost
)

// validPin is 6 digits.
func validPin(pin string) bool { return len(pin) == 6 && phone.Digits(pin) }

// twoStep sets or clears the PIN of the connection's account.
func (s *Server) twoStep(ctx context.Context, c *conn, typ chatdv1.IQType, req *chatdv1.TwoStep) (*chatdv1.IQ, *chatdv1.IQError) {
	switch {
	case typ != chatdv1.IQType_IQ_TYPE_SET:
		return nil, iqErr(errcode.Invalid, "two-step is a set request")
	case !c.registerOnly:
		return nil, iqErr(errcode.Invalid, "two-step on a registration connection only")
	case req.Pin != "" && !validPin(req.Pin):
		return nil, iqErr(errcode.Invalid, "pin must be 6 digits")
	}
	var hash []byte
	if req.Pin != "" {
		var err error
		if hash, err = bcrypt.GenerateFromPassword([]byte(req.Pin), pinCost); err != nil {
			return nil, iqInternal
		}
	}
	var owner bool
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		var pub []byte
		err := tx.QueryRowContext(ctx, "SELECT static_pub FROM accounts WHERE number = ? FOR UPDATE", c.login.Account).Scan(&pub)
		if errors.Is(err, sql.ErrNoRows) {
			owner = false
			return nil
		}
		if err != nil {
			return err
		}
		if owner = subtle.ConstantTimeCompare(pub, c.wc.PeerStatic) == 1; !owner {
			return nil
		}
		_, err = tx.ExecContext(ctx, "UPDATE accounts SET pin_hash = ?, pin_failures = 0, pin_failed_at = 0 WHERE number = ?", hash, c.login.Account)
		return err
	})
	switch {
	case err != nil:
		s.log.Error("two-step update failed", "err", err)
		return nil, iqInternal
	case !owner:
		return nil, iqErr(errcode.AccessDenied, "only the number's registered key sets its two-step pin")
	}
	s.log.Info("two-step verification changed", "number", c.login.Account, "on", req.Pin != "")
	return &chatdv1.IQ{}, nil
}

// checkPin decides a registration of number by a key other than its own:
// nil when the number has no PIN or pin is right. Attempts are counted;
// maxPinFailures wrong ones lock the check for pinLockout after the last.
func (s *Server) checkPin(ctx context.Context, number, pin string) *chatdv1.IQError {
	var hash []byte
	err := s.db.QueryRowContext(ctx, "SELECT pin_hash FROM accounts WHERE number = ?", number).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && len(hash) == 0) {
		return nil
	}
	if err != nil {
		s.log.Error("two-step lookup failed", "err", err)
		return iqInternal
	}
	if pin == "" {
		return iqErr(errcode.AccessDenied, "two-step verification is on for this number: the 6-digit pin is required")
	}
	// Every attempt is counted as a wrong one before the pin is compared,
	// in one statement, so attempts made at once cannot share a count; a
	// right pin clears the count. The statement matches no row while the
	// number is locked out (maxPinFailures within pinLockout).
	now := time.Now()
	res, err := s.db.ExecContext(ctx, "UPDATE accounts SET pin_failures = CASE WHEN pin_failures >= ? THEN 1 ELSE pin_failures + 1 END, pin_failed_at = ? "+
		"WHERE number = ? AND (pin_failures < ? OR pin_failed_at < ?)",
		maxPinFailures, now.UnixMilli(), number, maxPinFailures, now.Add(-pinLockout).UnixMilli())
	if err != nil {
		s.log.Error("counting a pin attempt failed", "err", err)
		return iqInternal
	}
	if n, err := res.RowsAffected(); err != nil {
		return iqInternal
	} else if n == 0 {
		return iqErr(errcode.TooManyRequests, "too many wrong two-step pins; try again later")
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pin)) != nil {
		return iqErr(errcode.AccessDenied, "the two-step verification pin is wrong")
	}
	if _, err := s.db.ExecContext(ctx, "UPDATE accounts SET pin_failures = 0, pin_failed_at = 0 WHERE number = ?", number); err != nil {
		s.log.Error("clearing the pin attempts failed", "err", err)
	}
	return nil
}
