package media

import (
	"mime"
	"strings"
)

// MaxUpload is the largest file POST /v1/media accepts (on-prem: 100 MB).
const MaxUpload = 100 << 20

// Limits after processing, per message type (on-prem documentation).
const (
	MaxImage   = 5 << 20
	MaxVideo   = 16 << 20
	MaxAudio   = 16 << 20
	MaxDoc     = 100 << 20
	MaxSticker = 500 << 10 // animated; static stickers are 100 KB
)

// Types maps each accepted MIME type to the message types it can be sent as.
var Types = map[string][]string{
	"image/jpeg":                    {"image"},
	"image/png":                     {"image"},
	"image/webp":                    {"sticker"},
	"video/mp4":                     {"video"},
	"video/3gpp":                    {"video"},
	"video/3gp":                     {"video"},
	"audio/aac":                     {"audio"},
	"audio/mp4":                     {"audio"},
	"audio/mpeg":                    {"audio"},
	"audio/amr":                     {"audio"},
	"audio/ogg":                     {"audio"}, // opus
	"text/plain":                    {"document"},
	"application/pdf":               {"document"},
	"application/msword":            {"document"},
	"application/vnd.ms-excel":      {"document"},
	"application/vnd.ms-powerpoint": {"document"},
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document":   {"document"},
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         {"document"},
	"application/vnd.openxmlformats-officedocument.presentationml.presentation": {"document"},
}

// BaseType returns the MIME type without parameters, lower-cased
// ("audio/ogg; codecs=opus" → "audio/ogg").
func BaseType(contentType string) string {
	t, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0]))
	}
	return t
}

// Accepted reports whether a Content-Type can be uploaded.
func Accepted(contentType string) bool {
	_, ok := Types[BaseType(contentType)]
	return ok
}

// Limit is the largest file that can be sent as msgType (0: not a media
// type).
func Limit(msgType string) int64 {
	switch msgType {
	case "image":
		return MaxImage
	case "video":
		return MaxVideo
	case "audio", "voice":
		return MaxAudio
	case "document":
		return MaxDoc
	case "sticker":
		return MaxSticker
	}
	return 0
}

// Sendable reports whether a file of this MIME type can be sent as msgType.
// Any file can be sent as a document.
func Sendable(contentType, msgType string) bool {
	if msgType == "document" {
		return true
	}
	for _, t := range Types[BaseType(contentType)] {
		if t == msgType {
			return true
		}
	}
	return false
}
