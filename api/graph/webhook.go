package graph

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// MarshalASCII encodes v as Meta serializes a Cloud webhook body: JSON
// with every character outside 0x20–0x7E escaped as a lowercase \uXXXX
// (a surrogate pair above U+FFFF) and nothing HTML-escaped. Receivers
// verify X-Hub-Signature-256 over exactly these bytes; some SDKs
// (whatsapp-api-js) re-escape the parsed body this way before checking, so
// a raw UTF-8 body would fail there (cloud-reference.md, section 2).
func MarshalASCII(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return ASCII(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// ASCII rewrites valid JSON so that it holds only the characters 0x20 to
// 0x7E: outside strings JSON has none other, inside them each is escaped.
func ASCII(js []byte) []byte {
	const hexdigits = "0123456789abcdef"
	out := make([]byte, 0, len(js)+len(js)/8)
	esc := func(r rune) {
		out = append(out, '\\', 'u', hexdigits[r>>12&0xf], hexdigits[r>>8&0xf], hexdigits[r>>4&0xf], hexdigits[r&0xf])
	}
	for i := 0; i < len(js); {
		c := js[i]
		if c >= 0x20 && c < 0x7f {
			out = append(out, c)
			i++
			continue
		}
		if c < 0x80 {
			esc(rune(c)) // DEL (encoding/json already escapes control characters)
			i++
			continue
		}
		r, n := utf8.DecodeRune(js[i:])
		i += n
		if r > 0xffff {
			r -= 0x10000
			esc(0xd800 + r>>10)
			esc(0xdc00 + r&0x3ff)
			continue
		}
		esc(r)
	}
	return out
}

// Signature is the X-Hub-Signature-256 value of body: "sha256=" and the
// lowercase hex HMAC-SHA256 of the bytes with the app secret.
func Signature(appSecret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Notification is a Cloud webhook body: {"object":"whatsapp_business_account",
// "entry":[{"id":<waba_id>,"changes":[{"field","value"}]}]}.
type Notification struct {
	Object string  `json:"object"`
	Entry  []Entry `json:"entry"`
}

// Entry is one business account's changes.
type Entry struct {
	ID      string   `json:"id"`
	Time    int64    `json:"time,omitempty"`
	Changes []Change `json:"changes"`
}

// Change is one change: field "messages" (value: a Value) or
// "message_template_status_update".
type Change struct {
	Field string `json:"field"`
	Value any    `json:"value"`
}

// Value is the value of a "messages" change.
type Value struct {
	MessagingProduct string          `json:"messaging_product"`
	Metadata         Metadata        `json:"metadata"`
	Contacts         json.RawMessage `json:"contacts,omitempty"`
	Messages         json.RawMessage `json:"messages,omitempty"`
	Statuses         json.RawMessage `json:"statuses,omitempty"`
	Errors           []StatusError   `json:"errors,omitempty"`
}

// Metadata names the business number a change is for.
type Metadata struct {
	DisplayPhoneNumber string `json:"display_phone_number"`
	PhoneNumberID      string `json:"phone_number_id"`
}

// NewNotification wraps one change of the business account waba.
func NewNotification(waba int64, field string, value any) Notification {
	return Notification{Object: "whatsapp_business_account", Entry: []Entry{{ID: itoa64(waba), Changes: []Change{{field, value}}}}}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
