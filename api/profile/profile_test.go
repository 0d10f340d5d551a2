package profile

import (
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
