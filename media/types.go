package media

import (
	"mime"
	"slices"
	"strings"
)

// StreamChunk is the largest piece of a file in one gRPC message between
// webapp and coreapp (UploadMedia, DownloadMedia). grpc-go marshals each
// message into a buffer of its pool's next size up (256 B, 4, 16, 32 KiB,
// then 1 MiB, grpc/mem): a 64 KiB chunk took a 1 MiB buffer per message,
// which a burst of concurrent uploads made the webapp's peak memory; a chunk
// a little under 32 KiB fits the 32 KiB tier with its framing.
const StreamChunk = 32<<10 - 64

// MaxUpload is the largest file POST /v1/media accepts (on-prem: 100 MB).
const MaxUpload = 100 << 20

// Kind is one media message type. Kinds is the one table that the API
// (message types and their fields), coreapp (limits, auto-download), chatd
// (the media server's upload types), encryption (the HKDF info) and waphone
// derive from.
type Kind struct {
	// Name is the message type ("image").
	Name string
	// Max is the largest file of this type that can be sent (on-prem
	// documentation, after processing: images 5 MB, video and audio 16 MB,
	// documents 100 MB, stickers 500 KB for animated ones, 100 KB static).
	Max int64
	// HKDFInfo is the info string of the media key expansion (WhatsApp's:
	// stickers use the image keys).
	HKDFInfo string
	// Caption and Filename say which of those fields the type has
	// (on-prem: caption for image, video and document; filename for
	// document).
	Caption, Filename bool
	// MIME are the content types it can be sent as; a document takes any
	// accepted type.
	MIME []string
}

// HKDF info strings of media keys (WhatsApp's).
const (
	InfoImage    = "WhatsApp Image Keys"
	InfoVideo    = "WhatsApp Video Keys"
	InfoAudio    = "WhatsApp Audio Keys"
	InfoDocument = "WhatsApp Document Keys"
)

// Kinds are the media message types, in the order the API lists them.
var Kinds = []Kind{
	{Name: "image", Max: 5 << 20, HKDFInfo: InfoImage, Caption: true, MIME: []string{"image/jpeg", "image/png"}},
	{Name: "audio", Max: 16 << 20, HKDFInfo: InfoAudio, MIME: []string{"audio/aac", "audio/mp4", "audio/mpeg", "audio/amr", "audio/ogg"}},
	{Name: "video", Max: 16 << 20, HKDFInfo: InfoVideo, Caption: true, MIME: []string{"video/mp4", "video/3gpp", "video/3gp"}},
	{Name: "document", Max: 100 << 20, HKDFInfo: InfoDocument, Caption: true, Filename: true, MIME: []string{
		"text/plain", "application/pdf", "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
		"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
		"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
		"application/vnd.openxmlformats-officedocument.presentationml.presentation"}},
	{Name: "sticker", Max: 500 << 10, HKDFInfo: InfoImage, MIME: []string{"image/webp"}},
}

// Voice is the inbound type of a voice note (an audio file recorded in the
// app): it is received, and auto-downloaded, like audio.
const Voice = "voice"

// KindOf returns the media type called name ("voice" is audio).
func KindOf(name string) (Kind, bool) {
	if name == Voice {
		name = "audio"
	}
	for _, k := range Kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// Names are the media message types.
func Names() []string {
	out := make([]string, len(Kinds))
	for i, k := range Kinds {
		out[i] = k.Name
	}
	return out
}

// AutoDownloadTypes are the types media.auto_download may name: every media
// type and voice.
func AutoDownloadTypes() []string { return append(Names(), Voice) }

// BaseType returns the MIME type without parameters, lower-cased
// ("audio/ogg; codecs=opus" → "audio/ogg").
func BaseType(contentType string) string {
	t, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0]))
	}
	return t
}

// AcceptedTypes are the MIME types that can be uploaded, sorted.
func AcceptedTypes() []string {
	var out []string
	for _, k := range Kinds {
		out = append(out, k.MIME...)
	}
	slices.Sort(out)
	return out
}

// Accepted reports whether a Content-Type can be uploaded.
func Accepted(contentType string) bool {
	t := BaseType(contentType)
	for _, k := range Kinds {
		if slices.Contains(k.MIME, t) {
			return true
		}
	}
	return false
}

// Limit is the largest file that can be sent as msgType (0: not a media
// type).
func Limit(msgType string) int64 {
	k, _ := KindOf(msgType)
	return k.Max
}

// Sendable reports whether a file of this MIME type can be sent as msgType.
// Any accepted file can be sent as a document.
func Sendable(contentType, msgType string) bool {
	k, ok := KindOf(msgType)
	switch {
	case !ok:
		return false
	case k.Filename: // document
		return true
	}
	return slices.Contains(k.MIME, BaseType(contentType))
}

// MaxProviderName is the longest media provider name.
const MaxProviderName = 64

// ValidProviderName reports whether name is 1 to 64 characters of
// [A-Za-z0-9_.-], the names of media providers
// (/v1/settings/application/media/providers).
func ValidProviderName(name string) bool {
	if len(name) == 0 || len(name) > MaxProviderName {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch b := name[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '_', b == '.', b == '-':
		default:
			return false
		}
	}
	return true
}

// Limits on a media provider's credentials, in bytes: what their columns
// hold once sealed (media_providers.bearer and basic_password are
// VARBINARY(1024), basic_username VARCHAR(255)). The webapp checks them for
// a clear error; coreapp enforces them.
const (
	MaxProviderBearer   = 512
	MaxProviderUsername = 255
	MaxProviderPassword = 512
)
