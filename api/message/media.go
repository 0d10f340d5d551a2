package message

import (
	"encoding/hex"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/body"
	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/media"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Limits on media messages (on-prem reference §2.1; caption as the Cloud
// media object: 1024 characters).
const (
	MaxCaption  = 1024 // a media caption, in characters
	MaxFilename = 240  // a document's filename, in characters
	MaxLink     = 2048 // a media link, in bytes
	MaxMediaID  = 256  // a media id from POST /v1/media, in bytes
)

// MediaObject is the API's media object: what a business sends (id or
// link, provider, caption, filename), what a webhook reports of a
// customer's file (id, mime_type, sha256, caption, filename) and what a
// phone shows of a file it received.
type MediaObject struct {
	ID       string        `json:"id,omitempty"`
	Link     string        `json:"link,omitempty"`
	Provider *ProviderName `json:"provider,omitempty"`
	MimeType string        `json:"mime_type,omitempty"`
	SHA256   string        `json:"sha256,omitempty"`
	Caption  string        `json:"caption,omitempty"`
	Filename string        `json:"filename,omitempty"`
}

// ProviderName names a media provider in a media object.
type ProviderName struct {
	Name string `json:"name"`
}

// mediaTypes are the Types of the media family, one per media.Kinds entry.
func mediaTypes() []Type {
	var out []Type
	for _, k := range media.Kinds {
		out = append(out, mediaType(k))
	}
	return out
}

func mediaType(k media.Kind) Type {
	return Type{
		Name: k.Name,
		Kind: "media",
		Of:   func(c *messagev1.Content) bool { return c.GetMedia() != nil && c.GetMedia().GetType() == k.Name },
		Parse: func(top body.Object) (*messagev1.Content, error) {
			m, err := parseMediaObject(top, k.Name, k)
			if err != nil {
				return nil, err
			}
			return &messagev1.Content{Body: &messagev1.Content_Media{Media: m}}, nil
		},
		Check: func(c *messagev1.Content) error { return CheckMedia(c.GetMedia(), k.Name+".") },
		Show: func(c *messagev1.Content) any {
			md := c.GetMedia()
			return MediaObject{MimeType: md.GetMimeType(), SHA256: hex.EncodeToString(md.GetFileSha256()), Caption: md.GetCaption(), Filename: md.GetFilename()}
		},
		Webhook: func(c *messagev1.Content) (string, any) {
			md := c.GetMedia()
			return k.Name, &MediaObject{MimeType: md.GetMimeType(), SHA256: hex.EncodeToString(md.GetFileSha256()), Caption: md.GetCaption(), Filename: md.GetFilename()}
		},
		// A phone sends a file through its own path (encrypt, upload):
		// waphone's SendMedia.
	}
}

// mediaFields are the keys of a media object of kind k in a send body.
func mediaFields(k media.Kind) []string {
	f := []string{"id", "link", "provider"}
	if k.Caption {
		f = append(f, "caption")
	}
	if k.Filename {
		f = append(f, "filename")
	}
	return f
}

// parseMediaObject decodes top[name] as the media object of kind k: exactly
// one of id and link, provider only with a link, caption and filename
// where the type has them.
func parseMediaObject(top body.Object, name string, k media.Kind) (*messagev1.Media, error) {
	mo, present, err := body.Nested(top, name, mediaFields(k)...)
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, errcode.New(errcode.Missing, "%s%s is required", top.Path, name)
	}
	m := &messagev1.Media{Type: k.Name}
	if m.MediaId, err = body.String(mo, "id"); err != nil {
		return nil, err
	}
	if m.Link, err = body.String(mo, "link"); err != nil {
		return nil, err
	}
	prov, present, err := body.Nested(mo, "provider", "name")
	if err != nil {
		return nil, err
	}
	if present {
		if m.Link == "" {
			return nil, errcode.New(errcode.NotRequired, "parameter %sprovider is only expected with %slink", mo.Path, mo.Path)
		}
		if m.Provider, err = body.RequiredString(prov, "name"); err != nil {
			return nil, err
		}
		if !media.ValidProviderName(m.Provider) {
			return nil, errcode.New(errcode.Invalid, "%sname must be 1 to %d characters of A-Z, a-z, 0-9, '_', '.' and '-'", prov.Path, media.MaxProviderName)
		}
	}
	if m.Caption, err = body.String(mo, "caption"); err != nil {
		return nil, err
	}
	if m.Filename, err = body.String(mo, "filename"); err != nil {
		return nil, err
	}
	if m.MediaId == "" && m.Link == "" {
		return nil, errcode.New(errcode.Missing, "%sid or %slink is required", mo.Path, mo.Path)
	}
	return m, nil
}

// CheckMedia validates a media object a business sends (path names it in
// errors: "image.", "interactive.header.image."): exactly one of media id
// and link, a valid link, caption and filename within their limits and
// only where the type has them.
func CheckMedia(m *messagev1.Media, path string) error {
	k, ok := media.KindOf(m.GetType())
	if !ok || m.GetType() == media.Voice {
		return errcode.New(errcode.Invalid, "%q is not a media type: use %s", m.GetType(), strings.Join(media.Names(), ", "))
	}
	switch {
	case m.MediaId == "" && m.Link == "":
		return errcode.New(errcode.Missing, "%sid or %slink is required", path, path)
	case m.MediaId != "" && m.Link != "":
		return errcode.New(errcode.Invalid, "%s send either id or link, not both", strings.TrimSuffix(path, "."))
	case m.MediaId != "" && (len(m.MediaId) > MaxMediaID || !printable(m.MediaId)):
		return errcode.New(errcode.Invalid, "%sid must be a media id from POST /v1/media", path)
	case m.Provider != "" && m.Link == "":
		return errcode.New(errcode.NotRequired, "parameter %sprovider is only expected with %slink", path, path)
	case m.Caption != "" && !k.Caption:
		return errcode.New(errcode.NotRequired, "parameter %scaption is not expected for %s", path, k.Name)
	case m.Filename != "" && !k.Filename:
		return errcode.New(errcode.NotRequired, "parameter %sfilename is not expected for %s", path, k.Name)
	}
	if m.Link != "" {
		u, err := url.Parse(m.Link)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(m.Link) > MaxLink {
			return errcode.New(errcode.Invalid, "%slink must be an absolute http or https URL of at most %d characters", path, MaxLink)
		}
	}
	if n := utf8.RuneCountInString(m.Caption); n > MaxCaption {
		return errcode.New(errcode.Invalid, "%scaption has %d characters, more than %d", path, n, MaxCaption)
	}
	if n := utf8.RuneCountInString(m.Filename); n > MaxFilename || strings.ContainsAny(m.Filename, `/\`) || strings.ContainsFunc(m.Filename, unicode.IsControl) {
		return errcode.New(errcode.Invalid, "%sfilename must be at most %d characters, without path separators or control characters", path, MaxFilename)
	}
	return nil
}
