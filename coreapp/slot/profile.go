package slot

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/openwaba/openwaba/coreapp/profile"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// publishTimeout bounds publishing the profile when a slot connects.
const publishTimeout = time.Minute

// Profiles is where a slot reads what its number publishes.
type Profiles interface {
	Published(ctx context.Context, accountID int64) (profile.Published, error)
}

// PublishProfile publishes the account's profile (about, business profile,
// photo) to the network now, over one of its connected slots on this node;
// ErrNotConnected when there is none here. Shard 0 also publishes it each
// time it connects.
func (m *Manager) PublishProfile(ctx context.Context, accountID int64) error {
	r := m.connectedRunner(accountID)
	if r == nil {
		return ErrNotConnected
	}
	return r.publishProfile(ctx)
}

// publishProfile sends the stored profile to chatd unless chatd already
// shows it; the photo is uploaded to the media server first (a blob chatd
// keeps while it is the photo).
func (r *runner) publishProfile(ctx context.Context) error {
	if r.m.cfg.Profiles == nil {
		return nil
	}
	p, err := r.m.cfg.Profiles.Published(ctx, r.acct.ID)
	if err != nil {
		return err
	}
	set := &chatdv1.ProfileSet{About: p.About, BusinessJson: p.Business}
	if p.Photo.Data != nil {
		set.PhotoDirectPath, set.PhotoSha256, set.PhotoMime = "/v/"+hex.EncodeToString(p.Photo.SHA256), p.Photo.SHA256, p.Photo.Mime
	}
	res, err := r.sess.IQ(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_ProfileGet{ProfileGet: &chatdv1.ProfileGet{Number: r.acct.WaID}}})
	if err != nil {
		return fmt.Errorf("read the published profile: %w", err)
	}
	if cur := res.GetProfile(); cur != nil && cur.About == set.About && bytes.Equal(cur.BusinessJson, set.BusinessJson) &&
		cur.PhotoDirectPath == set.PhotoDirectPath && cur.PhotoMime == set.PhotoMime {
		return nil // the network shows it already
	}
	if p.Photo.Data != nil {
		if _, err := r.media.Upload(ctx, "image", bytes.NewReader(p.Photo.Data), int64(len(p.Photo.Data)), p.Photo.SHA256); err != nil {
			return fmt.Errorf("upload the profile photo: %w", err)
		}
	}
	if _, err := r.sess.IQ(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_ProfileSet{ProfileSet: set}}); err != nil {
		return fmt.Errorf("publish the profile: %w", err)
	}
	r.m.log.Info("profile published", "wa_id", r.acct.WaID, "photo", p.Photo.Data != nil)
	return nil
}
