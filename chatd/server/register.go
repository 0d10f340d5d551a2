package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// maxVerifyAttempts is the number of wrong codes after which a pending
// registration must be requested again.
const maxVerifyAttempts = 5

func (s *Server) newID() string { return rand.Text()[:16] }

func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// register issues a verification code for a number, to be proven by the
// same static key in verify.
func (s *Server) register(ctx context.Context, c *conn, req *chatdv1.RegisterRequest) (*chatdv1.IQ, *chatdv1.IQError) {
	if !phone.Valid(req.Number) {
		return nil, &chatdv1.IQError{Code: 400, Text: "number must be 5 to 20 digits"}
	}
	if req.Kind != chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS && req.Kind != chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER {
		return nil, &chatdv1.IQError{Code: 400, Text: "kind must be business or consumer"}
	}
	if req.Method != "" && req.Method != "sms" && req.Method != "voice" {
		return nil, &chatdv1.IQError{Code: 400, Text: "method must be sms or voice"}
	}
	if len(req.Name) > 256 || len(req.Cert) > 8192 {
		return nil, &chatdv1.IQError{Code: 400, Text: "name or cert too long"}
	}
	if req.Pin != "" && !validPin(req.Pin) {
		return nil, iqErr(errcode.Invalid, "pin must be 6 digits")
	}
	if a, err := s.dir.lookup(ctx, req.Number, true); err == nil && subtle.ConstantTimeCompare(a.staticPub, c.wc.PeerStatic) == 1 {
		return registerResult("registered"), nil
	} else if err == nil {
		// Another key takes the number over: its two-step pin, if any.
		if e := s.checkPin(ctx, req.Number, req.Pin); e != nil {
			return nil, e
		}
	} else if !errors.Is(err, errNoAccount) {
		s.log.Error("registration lookup failed", "err", err)
		return nil, &chatdv1.IQError{Code: 500, Text: "internal error"}
	}
	code, err := newCode()
	if err != nil {
		return nil, &chatdv1.IQError{Code: 500, Text: "internal error"}
	}
	now := time.Now()
	_, err = s.db.ExecContext(ctx, `INSERT INTO registrations (number, kind, static_pub, name, cert, code, attempts, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)
		ON DUPLICATE KEY UPDATE kind = VALUES(kind), static_pub = VALUES(static_pub), name = VALUES(name), cert = VALUES(cert),
			code = VALUES(code), attempts = 0, expires_at = VALUES(expires_at), created_at = VALUES(created_at)`,
		req.Number, int32(req.Kind), c.wc.PeerStatic, req.Name, req.Cert, code, now.Add(s.cfg.CodeTTL).UnixMilli(), now.UnixMilli())
	if err != nil {
		s.log.Error("registration failed", "err", err)
		return nil, &chatdv1.IQError{Code: 500, Text: "internal error"}
	}
	s.log.Info("verification code issued", "number", req.Number, "kind", req.Kind.String(), "method", req.Method)
	return registerResult("code_sent"), nil
}

func registerResult(status string) *chatdv1.IQ {
	return &chatdv1.IQ{Payload: &chatdv1.IQ_RegisterResult{RegisterResult: &chatdv1.RegisterResult{Status: status}}}
}

var (
	errNoPending   = errors.New("no pending registration")
	errWrongCode   = errors.New("wrong code")
	errTooMany     = errors.New("too many wrong codes")
	errOtherClient = errors.New("the registration was requested with another key")
)

// verify checks the code and makes the connection's static key the
// number's credential.
func (s *Server) verify(ctx context.Context, c *conn, req *chatdv1.VerifyRequest) (*chatdv1.IQ, *chatdv1.IQError) {
	if !phone.Valid(req.Number) || len(req.Code) != 6 {
		return nil, &chatdv1.IQError{Code: 400, Text: "number and a 6-digit code are required"}
	}
	var keyChanged, wrongCode bool
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		keyChanged, wrongCode = false, false
		var (
			kind             int32
			pub              []byte
			name, cert, code string
			attempts         int
			expires          int64
		)
		err := tx.QueryRowContext(ctx, "SELECT kind, static_pub, name, cert, code, attempts, expires_at FROM registrations WHERE number = ? FOR UPDATE", req.Number).
			Scan(&kind, &pub, &name, &cert, &code, &attempts, &expires)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && expires < time.Now().UnixMilli()) {
			return errNoPending
		}
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(pub, c.wc.PeerStatic) != 1 {
			return errOtherClient
		}
		if attempts >= maxVerifyAttempts {
			return errTooMany
		}
		if subtle.ConstantTimeCompare([]byte(code), []byte(req.Code)) != 1 {
			if _, err := tx.ExecContext(ctx, "UPDATE registrations SET attempts = attempts + 1 WHERE number = ?", req.Number); err != nil {
				return err
			}
			// Commit the counted attempt: returning an error would roll it back.
			wrongCode = true
			return nil
		}
		var old []byte
		err = tx.QueryRowContext(ctx, "SELECT static_pub FROM accounts WHERE number = ? FOR UPDATE", req.Number).Scan(&old)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		keyChanged = old != nil && subtle.ConstantTimeCompare(old, pub) != 1
		if keyChanged {
			// A new install: the old install's Signal keys must not be
			// handed out any more; the new one publishes its own.
			if _, err := tx.ExecContext(ctx, "DELETE FROM prekey_identities WHERE number = ?", req.Number); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM prekeys WHERE number = ?", req.Number); err != nil {
				return err
			}
		}
		now := time.Now().UnixMilli()
		if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (number, kind, static_pub, name, cert, shards, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, 1, ?, ?)
			ON DUPLICATE KEY UPDATE kind = VALUES(kind), static_pub = VALUES(static_pub), name = VALUES(name), cert = VALUES(cert), updated_at = VALUES(updated_at)`,
			req.Number, kind, pub, name, cert, now, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM registrations WHERE number = ?", req.Number)
		return err
	})
	if err == nil && wrongCode {
		err = errWrongCode
	}
	switch {
	case errors.Is(err, errWrongCode):
		// The attempt was counted in the committed transaction above.
		return nil, &chatdv1.IQError{Code: 401, Text: "wrong verification code"}
	case errors.Is(err, errNoPending):
		return nil, &chatdv1.IQError{Code: 404, Text: "no pending registration for this number; request a code first"}
	case errors.Is(err, errTooMany):
		return nil, &chatdv1.IQError{Code: 429, Text: "too many wrong codes; request a new code"}
	case errors.Is(err, errOtherClient):
		return nil, &chatdv1.IQError{Code: 409, Text: "the code was requested by another client"}
	case err != nil:
		s.log.Error("verification failed", "err", err)
		return nil, &chatdv1.IQError{Code: 500, Text: "internal error"}
	}
	s.dir.forget(req.Number)
	if keyChanged {
		c.later(func() { s.kickAll(req.Number) })
	}
	s.log.Info("account registered", "number", req.Number, "key_changed", keyChanged)
	return &chatdv1.IQ{Payload: &chatdv1.IQ_VerifyResult{VerifyResult: &chatdv1.VerifyResult{}}}, nil
}
