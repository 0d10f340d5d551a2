package media

import "testing"

func TestTypes(t *testing.T) {
	for ct, want := range map[string]bool{
		"image/jpeg": true, "IMAGE/PNG": true, "audio/ogg; codecs=opus": true, "application/pdf": true,
		"video/3gpp": true, "image/webp": true, "text/plain; charset=utf-8": true,
		"text/html": false, "image/gif": false, "application/octet-stream": false, "": false, "image": false,
	} {
		if got := Accepted(ct); got != want {
			t.Errorf("Accepted(%q) = %v, want %v", ct, got, want)
		}
	}
	for _, c := range []struct {
		ct, msgType string
		want        bool
	}{
		{"image/jpeg", "image", true},
		{"image/webp", "sticker", true},
		{"image/webp", "image", false},
		{"application/pdf", "image", false},
		{"application/pdf", "document", true},
		{"image/jpeg", "document", true}, // any file can be a document
		{"audio/ogg; codecs=opus", "audio", true},
		{"video/mp4", "audio", false},
	} {
		if got := Sendable(c.ct, c.msgType); got != c.want {
			t.Errorf("Sendable(%q, %q) = %v, want %v", c.ct, c.msgType, got, c.want)
		}
	}
	for typ, want := range map[string]int64{"image": 5 << 20, "video": 16 << 20, "audio": 16 << 20, "document": 100 << 20, "sticker": 500 << 10, "text": 0} {
		if got := Limit(typ); got != want {
			t.Errorf("Limit(%q) = %d, want %d", typ, got, want)
		}
	}
}
