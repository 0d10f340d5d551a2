package profile

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"

	"github.com/openwaba/openwaba/api/errcode"
)

func TestUpdate(t *testing.T) {
	base := Business{About: "Hi", Websites: []string{"https://a.example"}}
	for _, tc := range []struct {
		body string
		code errcode.Code // 0: accepted
		want func(Business) bool
	}{
		{`{"messaging_product":"whatsapp","about":"Open 9–5 ☀","vertical":"RETAIL"}`, 0, func(b Business) bool {
			return b.About == "Open 9–5 ☀" && b.Vertical == "RETAIL" && len(b.Websites) == 1
		}},
		{`{"messaging_product":"whatsapp","websites":["https://a.example","http://b.example"]}`, 0, func(b Business) bool { return len(b.Websites) == 2 }},
		{`{"messaging_product":"whatsapp","address":""}`, 0, func(b Business) bool { return b.Address == "" && b.About == "Hi" }},
		{`{"messaging_product":"whatsapp","email":"shop@example.com","description":"` + strings.Repeat("d", 256) + `"}`, 0, nil},
		{`{"about":"x"}`, errcode.Missing, nil},
		{`{"messaging_product":"sms","about":"x"}`, errcode.Invalid, nil},
		{`{"messaging_product":"whatsapp"}`, errcode.Missing, nil},
		{`{"messaging_product":"whatsapp","about":"` + strings.Repeat("a", 140) + `"}`, errcode.TooLong, nil},
		{`{"messaging_product":"whatsapp","description":"` + strings.Repeat("d", 257) + `"}`, errcode.TooLong, nil},
		{`{"messaging_product":"whatsapp","about":"   "}`, errcode.Invalid, nil},
		{`{"messaging_product":"whatsapp","email":"not an email"}`, errcode.Invalid, nil},
		{`{"messaging_product":"whatsapp","vertical":"SPACESHIPS"}`, errcode.Invalid, nil},
		{`{"messaging_product":"whatsapp","websites":["https://a","https://b","https://c"]}`, errcode.Invalid, nil},
		{`{"messaging_product":"whatsapp","websites":["ftp://a.example"]}`, errcode.Invalid, nil},
		{`{"messaging_product":"whatsapp","profile_picture_handle":"4:abc"}`, errcode.Invalid, nil},
		{`{"messaging_product":"whatsapp","color":"red"}`, errcode.NotRequired, nil},
		{`{"messaging_product":"whatsapp","websites":"https://a.example"}`, errcode.Invalid, nil},
	} {
		got, err := Update(base, []byte(tc.body))
		var ce *errcode.Error
		switch {
		case tc.code == 0 && err != nil:
			t.Errorf("Update(%s): %v", tc.body, err)
		case tc.code != 0 && (err == nil || !errorsAs(err, &ce) || ce.Code != tc.code):
			t.Errorf("Update(%s) = %v, want code %d", tc.body, err, tc.code)
		case tc.code == 0 && tc.want != nil && !tc.want(got):
			t.Errorf("Update(%s) = %+v", tc.body, got)
		}
	}
	sel, err := Select(Business{About: "a", Vertical: "EDU"}, "about, websites")
	if err != nil || sel["about"] != "a" || sel["vertical"] != nil || sel["messaging_product"] != "whatsapp" {
		t.Errorf("Select = %v, %v", sel, err)
	}
	if _, err := Select(Business{}, "about,secret"); err == nil {
		t.Error("Select accepted an unknown field")
	}
}

func errorsAs(err error, ce **errcode.Error) bool {
	e, ok := err.(*errcode.Error)
	*ce = e
	return ok
}

func TestCheckPhoto(t *testing.T) {
	enc := func(w, h int, jpg bool) []byte {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		var buf bytes.Buffer
		if jpg {
			jpeg.Encode(&buf, img, nil)
		} else {
			png.Encode(&buf, img)
		}
		return buf.Bytes()
	}
	for _, tt := range []struct {
		name string
		b    []byte
		mime string
		code errcode.Code
	}{
		{"png 640", enc(640, 640, false), "image/png", 0},
		{"jpeg 800x640", enc(800, 640, true), "image/jpeg", 0},
		{"too narrow", enc(639, 640, false), "", errcode.Invalid},
		{"too low", enc(640, 100, true), "", errcode.Invalid},
		{"not an image", []byte("hello"), "", errcode.Invalid},
		{"empty", nil, "", errcode.Missing},
		{"too large", append(enc(640, 640, false), make([]byte, MaxPhoto)...), "", errcode.Invalid},
	} {
		mime, err := CheckPhoto(tt.b)
		var ce *errcode.Error
		switch {
		case tt.code == 0 && (err != nil || mime != tt.mime):
			t.Errorf("%s: %q, %v; want %s", tt.name, mime, err, tt.mime)
		case tt.code != 0 && (!errors.As(err, &ce) || ce.Code != tt.code):
			t.Errorf("%s: %v, want code %d", tt.name, err, tt.code)
		}
	}
}
