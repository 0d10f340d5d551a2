package server

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/openwaba/openwaba/api/errcode"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

func profileSetIQ(about string, photo []byte) *chatdv1.IQ {
	set := &chatdv1.ProfileSet{About: about, BusinessJson: []byte(`{"vertical":"RETAIL"}`)}
	if photo != nil {
		sum := sha256.Sum256(photo)
		set.PhotoDirectPath, set.PhotoSha256, set.PhotoMime = "/v/"+hex.EncodeToString(sum[:]), sum[:], "image/png"
	}
	return &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_ProfileSet{ProfileSet: set}}
}

// TestProfiles: a business publishes its profile, every phone reads it;
// the photo's blob is kept while it is a photo, of this business or of
// another with the same file.
func TestProfiles(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	B, B2, C := "15550007001", "15550007002", "15550007003"
	kb := n.register(t, B, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	kb2 := n.register(t, B2, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	kc := n.register(t, C, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	b := n.dial(t, B, kb, clientOpts{autoAck: true}).connected(t)
	b2 := n.dial(t, B2, kb2, clientOpts{autoAck: true}).connected(t)
	c := n.dial(t, C, kc, clientOpts{autoAck: true}).connected(t)

	logo, other := []byte("the shared logo"), []byte("another picture")
	soon := time.Now().Add(time.Hour).UnixMilli()
	for _, f := range [][]byte{logo, other} {
		sum := sha256.Sum256(f)
		if _, err := n.db.Exec("INSERT INTO media_blobs (hash, size, uploader, created_at, expires_at) VALUES (?, ?, ?, ?, ?)", hex.EncodeToString(sum[:]), len(f), B, time.Now().UnixMilli(), soon); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.iq(t, profileSetIQ("x", []byte("never uploaded"))); iqCode(t, err) != uint32(errcode.NotFound) {
		t.Errorf("a photo not on the media server = %v, want %d", err, errcode.NotFound)
	}
	if _, err := c.iq(t, profileSetIQ("x", nil)); iqCode(t, err) != uint32(errcode.AccessDenied) {
		t.Errorf("a consumer's profile set = %v, want %d", err, errcode.AccessDenied)
	}
	for _, cl := range []*client{b, b2} {
		if _, err := cl.iq(t, profileSetIQ("Tea", logo)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := c.iq(t, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_ProfileGet{ProfileGet: &chatdv1.ProfileGet{Number: B}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.GetProfile(); p.About != "Tea" || p.Name != "name of "+B || p.PhotoMime != "image/png" || string(p.BusinessJson) != `{"vertical":"RETAIL"}` {
		t.Errorf("profile = %v", p)
	}
	// B changes its photo: the logo stays kept, B2 still shows it.
	if _, err := b.iq(t, profileSetIQ("Tea", other)); err != nil {
		t.Fatal(err)
	}
	logoSum := sha256.Sum256(logo)
	var expires int64
	if err := n.db.QueryRow("SELECT expires_at FROM media_blobs WHERE hash = ?", hex.EncodeToString(logoSum[:])).Scan(&expires); err != nil || expires != pinned {
		t.Errorf("the logo B2 still shows expires at %d (%v), want it kept", expires, err)
	}
	// B2 drops it too: now it expires again.
	if _, err := b2.iq(t, profileSetIQ("Tea", nil)); err != nil {
		t.Fatal(err)
	}
	if err := n.db.QueryRow("SELECT expires_at FROM media_blobs WHERE hash = ?", hex.EncodeToString(logoSum[:])).Scan(&expires); err != nil || expires == pinned {
		t.Errorf("the logo no profile shows is still kept (%v)", err)
	}
	if _, err := c.iq(t, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_ProfileGet{ProfileGet: &chatdv1.ProfileGet{Number: "15550007999"}}}); iqCode(t, err) != uint32(errcode.NotFound) {
		t.Errorf("an unknown number's profile = %v", err)
	}
}
