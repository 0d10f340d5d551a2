package server

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"

	"go.mau.fi/libsignal/ecc"
	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/chatd/clientproto"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// Pre-key directory limits.
const (
	// maxUploadPreKeys caps the one-time keys of one upload.
	maxUploadPreKeys = 1000
	// maxPoolPreKeys caps the one-time keys chatd holds per account.
	maxPoolPreKeys = 5000
	// lowPreKeys: below this many left, the owner is told to upload more
	// (the clients' top-up threshold).
	lowPreKeys = clientproto.LowPreKeys
	// Bundle fetches allowed per requester for one target, and in all, per
	// minute: enough for a business writing to many new customers, not
	// enough to drain one customer's pool.
	fetchPerTarget = 10
	fetchPerMinute = 6000
)

// fetchLimiter counts bundle fetches per minute window.
type fetchLimiter struct {
	mu     sync.Mutex // guards the fields below
	window int64
	pairs  map[[2]string]int
	totals map[string]int
}

// allow reports whether requester may fetch target's bundle now.
func (l *fetchLimiter) allow(requester, target string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := time.Now().Unix() / 60; w != l.window || l.pairs == nil {
		l.window, l.pairs, l.totals = w, map[[2]string]int{}, map[string]int{}
	}
	k := [2]string{requester, target}
	if l.pairs[k] >= fetchPerTarget || l.totals[requester] >= fetchPerMinute {
		return false
	}
	l.pairs[k]++
	l.totals[requester]++
	return true
}

func validKey(b []byte) bool {
	_, err := ecc.DecodePoint(b, 0)
	return len(b) == 33 && err == nil
}

// uploadPreKeys stores an account's identity, signed pre-key and one-time
// pre-keys. A new identity key (a reinstall) discards the old pool.
func (s *Server) uploadPreKeys(ctx context.Context, number string, up *chatdv1.PreKeyUpload) (*chatdv1.IQ, *chatdv1.IQError) {
	spk := up.GetSignedPrekey()
	switch {
	case !validKey(up.IdentityKey):
		return nil, &chatdv1.IQError{Code: 400, Text: "identity_key must be a 33-byte public key"}
	case spk == nil || !validKey(spk.PublicKey) || len(spk.Signature) != 64:
		return nil, &chatdv1.IQError{Code: 400, Text: "signed_prekey must be a 33-byte public key with a 64-byte signature"}
	case len(up.Prekeys) > maxUploadPreKeys:
		return nil, &chatdv1.IQError{Code: 400, Text: "too many pre-keys in one upload"}
	case up.RegistrationId == 0:
		return nil, &chatdv1.IQError{Code: 400, Text: "registration_id is required"}
	}
	idKey, _ := ecc.DecodePoint(up.IdentityKey, 0)
	var sig [64]byte
	copy(sig[:], spk.Signature)
	if !ecc.VerifySignature(idKey, spk.PublicKey, sig) {
		return nil, &chatdv1.IQError{Code: 400, Text: "the signed pre-key's signature does not verify"}
	}
	for _, pk := range up.Prekeys {
		if !validKey(pk.PublicKey) || pk.Id == 0 {
			return nil, &chatdv1.IQError{Code: 400, Text: "a pre-key is not a 33-byte public key with an id"}
		}
	}
	var count int
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		var old []byte
		err := tx.QueryRowContext(ctx, "SELECT identity_key FROM prekey_identities WHERE number = ? FOR UPDATE", number).Scan(&old)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if old != nil && string(old) != string(up.IdentityKey) {
			if _, err := tx.ExecContext(ctx, "DELETE FROM prekeys WHERE number = ?", number); err != nil {
				return err
			}
		}
		now := time.Now().UnixMilli()
		if _, err := tx.ExecContext(ctx, `INSERT INTO prekey_identities (number, registration_id, identity_key, signed_prekey_id, signed_prekey, signed_prekey_sig, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE registration_id = VALUES(registration_id), identity_key = VALUES(identity_key),
			signed_prekey_id = VALUES(signed_prekey_id), signed_prekey = VALUES(signed_prekey), signed_prekey_sig = VALUES(signed_prekey_sig), updated_at = VALUES(updated_at)`,
			number, up.RegistrationId, up.IdentityKey, spk.Id, spk.PublicKey, spk.Signature, now); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM prekeys WHERE number = ?", number).Scan(&count); err != nil {
			return err
		}
		n := min(len(up.Prekeys), maxPoolPreKeys-count)
		if n > 0 {
			args := make([]any, 0, 3*n)
			for _, pk := range up.Prekeys[:n] {
				args = append(args, number, pk.Id, pk.PublicKey)
			}
			res, err := tx.ExecContext(ctx, "INSERT IGNORE INTO prekeys (number, key_id, public_key) VALUES "+db.Rows("(?,?,?)", n), args...)
			if err != nil {
				return err
			}
			added, _ := res.RowsAffected()
			count += int(added)
		}
		return nil
	})
	if err != nil {
		s.log.Error("pre-key upload failed", "err", err)
		return nil, &chatdv1.IQError{Code: 500, Text: "internal error"}
	}
	s.log.Debug("pre-keys published", "number", number, "pool", count)
	return &chatdv1.IQ{Payload: &chatdv1.IQ_PrekeyCount{PrekeyCount: &chatdv1.PreKeyCount{Count: uint32(count), Published: true}}}, nil
}

// preKeyCount tells an account how many one-time keys chatd holds for it.
func (s *Server) preKeyCount(ctx context.Context, number string) (*chatdv1.IQ, *chatdv1.IQError) {
	var published, count int
	err := s.db.QueryRowContext(ctx,
		"SELECT (SELECT COUNT(*) FROM prekey_identities WHERE number = ?), (SELECT COUNT(*) FROM prekeys WHERE number = ?)", number, number).
		Scan(&published, &count)
	if err != nil {
		s.log.Error("pre-key count failed", "err", err)
		return nil, &chatdv1.IQError{Code: 500, Text: "internal error"}
	}
	return &chatdv1.IQ{Payload: &chatdv1.IQ_PrekeyCount{PrekeyCount: &chatdv1.PreKeyCount{Count: uint32(count), Published: published > 0}}}, nil
}

// fetchBundle hands out target's bundle with one one-time key, which is
// deleted in the same transaction so it is never handed out twice.
func (s *Server) fetchBundle(ctx context.Context, requester, target string) (*chatdv1.IQ, *chatdv1.IQError) {
	if !phone.Valid(target) {
		return nil, &chatdv1.IQError{Code: 400, Text: "number must be 5 to 20 digits"}
	}
	if !s.fetches.allow(requester, target) {
		return nil, &chatdv1.IQError{Code: 429, Text: "too many bundle fetches; retry later"}
	}
	b := &chatdv1.PreKeyBundle{Number: target, SignedPrekey: &chatdv1.SignedPreKey{}}
	var left int
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		b.Prekey = nil
		err := tx.QueryRowContext(ctx, "SELECT registration_id, identity_key, signed_prekey_id, signed_prekey, signed_prekey_sig FROM prekey_identities WHERE number = ?", target).
			Scan(&b.RegistrationId, &b.IdentityKey, &b.SignedPrekey.Id, &b.SignedPrekey.PublicKey, &b.SignedPrekey.Signature)
		if err != nil {
			return err
		}
		pk := &chatdv1.PreKey{}
		err = tx.QueryRowContext(ctx, "SELECT key_id, public_key FROM prekeys WHERE number = ? ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED", target).Scan(&pk.Id, &pk.PublicKey)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil // a bundle without a one-time key: X3DH allows it
		case err != nil:
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM prekeys WHERE number = ? AND key_id = ?", target, pk.Id); err != nil {
			return err
		}
		b.Prekey = pk
		return tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM prekeys WHERE number = ?", target).Scan(&left)
	})
	if errors.Is(err, sql.ErrNoRows) {
		// Not registered (404: a sender gives up), or registered and not
		// connected yet to publish its keys (503: a sender tries again).
		var one int
		switch err := s.db.QueryRowContext(ctx, "SELECT 1 FROM accounts WHERE number = ?", target).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			return nil, &chatdv1.IQError{Code: 404, Text: "this number is not on the network"}
		case err != nil:
			s.log.Error("bundle fetch failed", "err", err)
			return nil, &chatdv1.IQError{Code: 500, Text: "internal error"}
		}
		return nil, &chatdv1.IQError{Code: 503, Text: "this account has not published its keys yet; retry later"}
	}
	if err != nil {
		s.log.Error("bundle fetch failed", "err", err)
		return nil, &chatdv1.IQError{Code: 500, Text: "internal error"}
	}
	if b.Prekey != nil && left < lowPreKeys && (left%5 == 0 || left == lowPreKeys-1) {
		s.notifyPreKeysLow(target)
	}
	return &chatdv1.IQ{Payload: &chatdv1.IQ_PrekeyBundle{PrekeyBundle: b}}, nil
}

// notifyPreKeysLow queues a PREKEYS_LOW notification for the owner.
func (s *Server) notifyPreKeysLow(number string) {
	n := &chatdv1.Notification{Id: s.newID(), Type: chatdv1.NotificationType_NOTIFICATION_TYPE_PREKEYS_LOW, T: time.Now().Unix()}
	payload, err := proto.Marshal(&chatdv1.Stanza{Body: &chatdv1.Stanza_Notification{Notification: n}})
	if err != nil {
		return
	}
	it := &storeItem{kind: kindNotification, id: n.Id, t: n.T, recipient: number, payload: payload}
	s.queue.Go(it, func(err error) {
		if err != nil {
			s.log.Warn("queueing a pre-keys-low notice failed", "err", err)
			return
		}
		s.deliver(number, 0, it.seq, payload)
	})
}
