package server

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// Profile limits (chatdv1.ProfileSet).
const (
	maxAbout        = 139
	maxBusinessJSON = 4 << 10
)

// pinned is the expiry of a blob that is a profile photo: it is kept
// while it is one (profileSet gives the previous photo its TTL back).
const pinned = int64(1) << 62

// profileSet stores what the connection's business publishes.
func (s *Server) profileSet(ctx context.Context, c *conn, typ chatdv1.IQType, req *chatdv1.ProfileSet) (*chatdv1.IQ, *chatdv1.IQError) {
	switch {
	case typ != chatdv1.IQType_IQ_TYPE_SET:
		return nil, iqErr(errcode.Invalid, "profile set is a set request")
	case c.registerOnly || c.account == nil || c.account.kind != chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS:
		return nil, iqErr(errcode.AccessDenied, "only a business publishes a profile")
	case utf8.RuneCountInString(req.About) > maxAbout || !utf8.ValidString(req.About):
		return nil, iqErr(errcode.Invalid, "about must be valid text of at most %d characters", maxAbout)
	case len(req.BusinessJson) > maxBusinessJSON:
		return nil, iqErr(errcode.Invalid, "the business profile is larger than %d bytes", maxBusinessJSON)
	case req.PhotoDirectPath != "" && (len(req.PhotoSha256) != 32 || req.PhotoDirectPath != "/v/"+hex.EncodeToString(req.PhotoSha256)):
		return nil, iqErr(errcode.Invalid, "photo_direct_path must be /v/<hex photo_sha256>")
	case req.PhotoDirectPath != "" && req.PhotoMime != "image/jpeg" && req.PhotoMime != "image/png":
		return nil, iqErr(errcode.Invalid, "the photo must be image/jpeg or image/png")
	}
	number := c.login.Account
	var missing bool
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		missing = false
		var oldPath string
		switch err := tx.QueryRowContext(ctx, "SELECT photo_path FROM profiles WHERE number = ? FOR UPDATE", number).Scan(&oldPath); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		}
		now := time.Now()
		if req.PhotoDirectPath != "" {
			res, err := tx.ExecContext(ctx, "UPDATE media_blobs SET expires_at = ? WHERE hash = ?", pinned, hex.EncodeToString(req.PhotoSha256))
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				var one int
				if err := tx.QueryRowContext(ctx, "SELECT 1 FROM media_blobs WHERE hash = ?", hex.EncodeToString(req.PhotoSha256)).Scan(&one); errors.Is(err, sql.ErrNoRows) {
					missing = true
					return nil
				} else if err != nil {
					return err
				}
			}
		}
		if oldPath != "" && oldPath != req.PhotoDirectPath {
			// The old photo's blob expires again, unless another account's
			// photo is the same file (blobs are stored once per hash).
			var others int
			if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM profiles WHERE photo_path = ? AND number <> ?", oldPath, number).Scan(&others); err != nil {
				return err
			}
			if others == 0 {
				if _, err := tx.ExecContext(ctx, "UPDATE media_blobs SET expires_at = ? WHERE hash = ?", now.Add(s.cfg.MediaTTL).UnixMilli(), oldPath[len("/v/"):]); err != nil {
					return err
				}
			}
		}
		var sha []byte
		if req.PhotoDirectPath != "" {
			sha = req.PhotoSha256
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO profiles (number, about, business, photo_path, photo_sha256, photo_mime, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "+
			"ON DUPLICATE KEY UPDATE about = VALUES(about), business = VALUES(business), photo_path = VALUES(photo_path), photo_sha256 = VALUES(photo_sha256), photo_mime = VALUES(photo_mime), updated_at = VALUES(updated_at)",
			number, req.About, req.BusinessJson, req.PhotoDirectPath, sha, req.PhotoMime, now.UnixMilli())
		return err
	})
	switch {
	case err != nil:
		s.log.Error("profile set failed", "err", err)
		return nil, iqInternal
	case missing:
		return nil, iqErr(errcode.NotFound, "the photo is not on the media server: upload it first")
	}
	s.log.Info("profile published", "number", number, "photo", req.PhotoDirectPath != "")
	return &chatdv1.IQ{}, nil
}

// profileGet answers an account's profile.
func (s *Server) profileGet(ctx context.Context, c *conn, req *chatdv1.ProfileGet) (*chatdv1.IQ, *chatdv1.IQError) {
	if c.registerOnly {
		return nil, iqErr(errcode.AccessDenied, "profiles are read on session connections")
	}
	if !phone.Valid(req.Number) {
		return nil, iqErr(errcode.Invalid, "not a phone number")
	}
	a, err := s.dir.lookup(ctx, req.Number, false)
	if errors.Is(err, errNoAccount) {
		return nil, iqErr(errcode.NotFound, "no account has this number")
	}
	if err != nil {
		s.log.Error("profile lookup failed", "err", err)
		return nil, iqInternal
	}
	p := &chatdv1.Profile{Number: a.number, Name: a.name, Kind: a.kind}
	err = s.db.QueryRowContext(ctx, "SELECT about, business, photo_path, photo_sha256, photo_mime FROM profiles WHERE number = ?", req.Number).
		Scan(&p.About, &p.BusinessJson, &p.PhotoDirectPath, &p.PhotoSha256, &p.PhotoMime)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		s.log.Error("profile lookup failed", "err", err)
		return nil, iqInternal
	}
	return &chatdv1.IQ{Payload: &chatdv1.IQ_Profile{Profile: p}}, nil
}
