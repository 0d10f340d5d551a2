package waphone

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// maxPhoto bounds a downloaded profile photo.
const maxPhoto = 8 << 20

// Profile is what the network shows of an account: its name, and what a
// business published (about, business profile, photo).
type Profile struct {
	Number, Name, About string
	Business            json.RawMessage // the Graph whatsapp_business_profile JSON (nil: none)
	PhotoSHA256         string          // hex ("": no photo)
	PhotoMime           string
	Photo               []byte
}

// Profile asks the network for number's profile and downloads its photo,
// checking it against the hash the network gave.
func (p *Phone) Profile(ctx context.Context, number string) (Profile, error) {
	res, err := p.sess.IQ(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_ProfileGet{ProfileGet: &chatdv1.ProfileGet{Number: number}}})
	if err != nil {
		return Profile{}, fmt.Errorf("profile of %s: %w", number, err)
	}
	pr := res.GetProfile()
	if pr == nil {
		return Profile{}, fmt.Errorf("profile of %s: the network answered %T", number, res.Payload)
	}
	out := Profile{Number: pr.Number, Name: pr.Name, About: pr.About, PhotoMime: pr.PhotoMime}
	if len(pr.BusinessJson) > 0 && json.Valid(pr.BusinessJson) {
		out.Business = pr.BusinessJson
	}
	if pr.PhotoDirectPath != "" {
		var buf bytes.Buffer
		if _, err := p.media.Download(ctx, pr.PhotoDirectPath, &buf, maxPhoto); err != nil {
			return Profile{}, fmt.Errorf("profile photo of %s: %w", number, err)
		}
		sum := sha256.Sum256(buf.Bytes())
		if !bytes.Equal(sum[:], pr.PhotoSha256) {
			return Profile{}, fmt.Errorf("profile photo of %s: the file does not match its hash", number)
		}
		out.Photo, out.PhotoSHA256 = buf.Bytes(), hex.EncodeToString(sum[:])
	}
	return out, nil
}

// Event is the profile as a "profile" event.
func (pr Profile) Event() Event {
	return Event{Event: "profile", Number: pr.Number, Name: pr.Name, About: pr.About, PhotoSHA256: pr.PhotoSHA256, Business: pr.Business}
}
