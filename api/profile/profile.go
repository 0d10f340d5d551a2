// Package profile is the one home of a number's business profile: the
// fields the Cloud API's whatsapp_business_profile edge serves (about,
// address, description, email, websites, vertical, profile picture URL),
// their limits, and the validation of an update. The limits and the
// vertical list are those of Meta's OpenAPI description of the edge
// (business-messaging-api_v23.0.yaml: WhatsAppBusinessProfileUpdateRequest
// and WhatsAppBusinessVertical).
package profile

import (
	"bytes"
	"encoding/json"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/body"
	"github.com/openwaba/openwaba/api/errcode"
)

// Business is a number's business profile (the JSON of the Cloud edge).
type Business struct {
	About             string   `json:"about,omitempty"`
	Address           string   `json:"address,omitempty"`
	Description       string   `json:"description,omitempty"`
	Email             string   `json:"email,omitempty"`
	ProfilePictureURL string   `json:"profile_picture_url,omitempty"`
	Websites          []string `json:"websites,omitempty"`
	Vertical          string   `json:"vertical,omitempty"`
}

// Limits.
const (
	MaxAbout       = 139
	MaxAddress     = 256
	MaxDescription = 256
	MaxEmail       = 128
	MaxWebsites    = 2
	MaxWebsite     = 256
	MaxPictureURL  = 2048
)

// Verticals are the industries a profile may name.
var Verticals = []string{"OTHER", "AUTO", "BEAUTY", "APPAREL", "EDU", "ENTERTAIN", "EVENT_PLAN", "FINANCE", "GROCERY", "GOVT",
	"HOTEL", "HEALTH", "NONPROFIT", "PROF_SERVICES", "RETAIL", "TRAVEL", "RESTAURANT", "ALCOHOL", "ONLINE_GAMBLING",
	"PHYSICAL_GAMBLING", "OTC_DRUGS"}

// Fields are the fields of Business by their JSON names.
var Fields = []string{"about", "address", "description", "email", "profile_picture_url", "websites", "vertical"}

// Update applies a Cloud update body ({"messaging_product":"whatsapp",
// and any of Fields}) to cur. An empty string clears a field (about may
// not be empty, as Meta requires 1 to 139 characters).
func Update(cur Business, b []byte) (Business, error) {
	allowed := append([]string{"messaging_product", "profile_picture_handle"}, Fields...)
	o, err := body.Parse("", b, allowed...)
	if err != nil {
		return cur, err
	}
	mp, err := body.RequiredString(o, "messaging_product")
	if err != nil {
		return cur, err
	}
	if mp != "whatsapp" {
		return cur, errcode.New(errcode.Invalid, `messaging_product must be "whatsapp"`)
	}
	if o.Has("profile_picture_handle") {
		return cur, errcode.New(errcode.Invalid, "profile_picture_handle is not supported: give profile_picture_url")
	}
	changed := false
	next := cur
	for _, f := range []struct {
		name string
		dst  *string
		max  int
	}{{"about", &next.About, MaxAbout}, {"address", &next.Address, MaxAddress}, {"description", &next.Description, MaxDescription},
		{"email", &next.Email, MaxEmail}, {"profile_picture_url", &next.ProfilePictureURL, MaxPictureURL}, {"vertical", &next.Vertical, 64}} {
		v, present, err := body.Field[string](o, f.name)
		if err != nil {
			return cur, err
		}
		if !present {
			continue
		}
		if utf8.RuneCountInString(v) > f.max {
			return cur, errcode.New(errcode.TooLong, "%s is longer than %d characters", f.name, f.max)
		}
		*f.dst, changed = v, true
	}
	if ws, present, err := body.Field[[]string](o, "websites"); err != nil {
		return cur, err
	} else if present {
		next.Websites, changed = ws, true
	}
	if !changed {
		return cur, errcode.New(errcode.Missing, "give at least one of %s", strings.Join(Fields, ", "))
	}
	return next, Check(next)
}

// Check validates a whole profile.
func Check(p Business) error {
	switch {
	case p.About != "" && strings.TrimSpace(p.About) == "":
		return errcode.New(errcode.Invalid, "about must not be blank")
	case p.Email != "" && !validEmail(p.Email):
		return errcode.New(errcode.Invalid, "email must be an email address")
	case p.Vertical != "" && !slices.Contains(Verticals, p.Vertical):
		return errcode.New(errcode.Invalid, "vertical must be one of %s", strings.Join(Verticals, ", "))
	case len(p.Websites) > MaxWebsites:
		return errcode.New(errcode.Invalid, "websites has %d entries, at most %d", len(p.Websites), MaxWebsites)
	case p.ProfilePictureURL != "" && !webURL(p.ProfilePictureURL):
		return errcode.New(errcode.Invalid, "profile_picture_url must be an http or https URL")
	}
	for _, w := range p.Websites {
		if len(w) > MaxWebsite || !webURL(w) {
			return errcode.New(errcode.Invalid, "websites must be http or https URLs of at most %d characters", MaxWebsite)
		}
	}
	return nil
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

func webURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// Select returns the profile's JSON with only the named fields
// (comma-separated, as Graph's fields parameter; empty: all) and
// messaging_product.
func Select(p Business, fields string) (map[string]any, error) {
	var all map[string]any
	b, _ := json.Marshal(p)
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&all); err != nil {
		return nil, err
	}
	out := map[string]any{"messaging_product": "whatsapp"}
	want := Fields
	if fields != "" {
		want = strings.Split(fields, ",")
	}
	for _, f := range want {
		f = strings.TrimSpace(f)
		if f == "messaging_product" {
			continue
		}
		if !slices.Contains(Fields, f) {
			return nil, errcode.New(errcode.Invalid, "fields: unknown field %q (fields are %s)", f, strings.Join(Fields, ", "))
		}
		if v, ok := all[f]; ok {
			out[f] = v
		}
	}
	return out, nil
}

// Profile photo limits (POST /v1/settings/profile/photo): on-prem asks for
// 640×640 pixels at least; the file travels in one gRPC message and in a
// backup (coreapp/backup.MaxData, 3 MiB of base64 for everything).
const (
	MinPhotoSide = 640
	MaxPhoto     = 2 << 20
)

// CheckPhoto checks an uploaded profile photo and returns its MIME type,
// image/jpeg or image/png, read from the file itself.
func CheckPhoto(b []byte) (string, error) {
	if len(b) == 0 {
		return "", errcode.New(errcode.Missing, "the body must be the photo: a JPEG or PNG file")
	}
	if len(b) > MaxPhoto {
		return "", errcode.New(errcode.Invalid, "the photo is larger than %d bytes", MaxPhoto)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil || (format != "jpeg" && format != "png") {
		return "", errcode.New(errcode.Invalid, "the photo must be a JPEG or PNG file")
	}
	if cfg.Width < MinPhotoSide || cfg.Height < MinPhotoSide {
		return "", errcode.New(errcode.Invalid, "the photo is %d×%d pixels; it must be at least %d×%d", cfg.Width, cfg.Height, MinPhotoSide, MinPhotoSide)
	}
	return "image/" + format, nil
}
