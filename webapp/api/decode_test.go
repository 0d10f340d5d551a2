package api

import (
	"strings"
	"testing"

	"github.com/openwaba/openwaba/api/errcode"
)

// FuzzParseMessage checks that no body makes the message, webhook or media
// providers parsers panic or answer anything but a 4xx on-prem error.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		`{"to":"+49 151 1234567","type":"text","text":{"body":"hi","preview_url":true},"context":{"message_id":"x"}}`,
		`{"to":"4915112345678","text":{"body":"` + strings.Repeat("é", 4097) + `"}}`,
		`{"to":1}`, `[]`, `null`, `{"text":null}`, `{"to":"12345","text":{"body":null}}`, `{"context":[]}`,
		`{"to":"12345","text":{"body":"x"},"context":{"message_id":7}}`, `{"type":"image","image":{}}`, "{\"to\":\"\xff\"}",
		`{"to":"12345","text":{"body":"x"},"headers":{"a":"b"}}`,
		`{"to":"12345","type":"document","document":{"link":"https://a.example/r.pdf","provider":{"name":"p"},"caption":"c","filename":"r.pdf"}}`,
		`{"to":"12345","type":"sticker","sticker":{"id":"x","caption":null}}`, `{"to":"12345","type":"audio","audio":{"link":"http://[::1"}}`,
		`[{"name":"prov","type":"www","config":{"bearer":"t"}},{"name":"b","type":"www","config":{"basic":{"username":"u","password":"p"}}}]`,
		`[{"name":"prov","type":"www","config":{"basic":null}}]`, `[null]`, `[[]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := parseMessage(b); err != nil {
			checkError(t, b, err)
		}
		checkParse(t, b, func(o object) error { _, err := parseWebhook(o); return err }, "url", "headers")
		if _, err := parseProviders(b); err != nil {
			checkError(t, b, err)
		}
	})
}

func checkParse(t *testing.T, b []byte, parse func(object) error, allowed ...string) {
	o, err := parseObject("", b, allowed...)
	if err == nil {
		err = parse(o)
	}
	if err == nil {
		return
	}
	checkError(t, b, err)
}

func checkError(t *testing.T, b []byte, err error) {
	t.Helper()
	ae := toError(err)
	if ae.Status < 400 || ae.Status >= 500 || ae.Title == "" || ae.Code == errcode.Internal {
		t.Fatalf("parse(%q) = %v, want a 4xx *Error with a title", b, err)
	}
}
