package graph

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/openwaba/openwaba/api/errcode"
)

func TestASCII(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{map[string]string{"name": "José 😀"}, `{"name":"Jos\u00e9 \ud83d\ude00"}`},
		{"a<b>&c/d", `"a<b>&c/d"`},
		{"line\nbreak\ttab\x7f", `"line\nbreak\ttab\u007f"`},
		{"€ 中文 \u2028", `"\u20ac \u4e2d\u6587 \u2028"`},
		{"plain", `"plain"`},
	} {
		got, err := MarshalASCII(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("MarshalASCII(%q) = %s, want %s", tc.in, got, tc.want)
		}
		for _, c := range got {
			if c < 0x20 || c > 0x7e {
				t.Errorf("byte %#x outside 0x20-0x7e in %s", c, got)
			}
		}
		// The escaped body decodes to the same value.
		var back any
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		want, _ := json.Marshal(tc.in)
		again, _ := json.Marshal(back)
		if string(again) != string(want) {
			t.Errorf("round trip of %s = %s, want %s", got, again, want)
		}
	}
}

func TestSignature(t *testing.T) {
	body, err := MarshalASCII(NewNotification(WABAID(1), "messages", map[string]string{"name": "José 😀"}))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"object":"whatsapp_business_account","entry":[{"id":"102290000000001","changes":[{"field":"messages","value":{"name":"Jos\u00e9 \ud83d\ude00"}}]}]}`
	if string(body) != want {
		t.Fatalf("body = %s\nwant   %s", body, want)
	}
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write([]byte(want))
	if got, exp := Signature("s3cret", body), "sha256="+hex.EncodeToString(m.Sum(nil)); got != exp {
		t.Errorf("Signature = %s, want %s", got, exp)
	}
	if Signature("other", body) == Signature("s3cret", body) {
		t.Error("the signature does not depend on the secret")
	}
}

func TestIDs(t *testing.T) {
	for _, tc := range []struct {
		id   string
		kind Kind
		n    int64
	}{
		{"106540000000001", PhoneNumber, 1},
		{"102290000000042", WABA, 42},
		{"1770000000000007", Template, 7},
		{"106540000000000", Other, 0},
		{"9d3c0a2e-5f4b-4c1e-9a7d-1b2c3d4e5f60", Other, 0},
		{"0106540000000001", Other, 0},
		{"", Other, 0},
		{"99999999999999999999", Other, 0},
	} {
		if k, n := Parse(tc.id); k != tc.kind || n != tc.n {
			t.Errorf("Parse(%q) = %v, %d; want %v, %d", tc.id, k, n, tc.kind, tc.n)
		}
	}
	if k, n := Parse(itoa64(PhoneNumberID(5))); k != PhoneNumber || n != 5 {
		t.Errorf("PhoneNumberID round trip: %v %d", k, n)
	}
	if k, n := Parse(TemplateID("12")); k != Template || n != 12 {
		t.Errorf("TemplateID round trip: %v %d", k, n)
	}
	for v, ok := range map[string]bool{"v17.0": true, "v23.0": true, "v24.0": true, "v100.1": true, "v16.0": false, "v23": false, "23.0": false, "v23.x": false, "": false} {
		if ValidVersion(v) != ok {
			t.Errorf("ValidVersion(%q) = %v", v, !ok)
		}
	}
}

func TestFromOnPrem(t *testing.T) {
	for _, tc := range []struct {
		code   errcode.Code
		status int
		graph  Code
		http   int
	}{
		{errcode.AccessDenied, 401, AccessToken, 401},
		{errcode.AccessDenied, 403, Permission, 403},
		{errcode.Missing, 400, MissingParameter, 400},
		{errcode.Invalid, 400, InvalidValue, 400},
		{errcode.NotRequired, 400, InvalidParameter, 400},
		{errcode.NotFound, 404, InvalidParameter, 400},
		{errcode.BadUser, 400, RecipientIsSender, 400},
		{errcode.TooManyRequests, 429, Throughput, 429},
		{errcode.TemplateParamCount, 400, TemplateParams, 400},
		{errcode.TemplateMissing, 400, TemplateMissing, 404},
		{errcode.TemplatePackMissing, 400, TemplateMissing, 404},
		{errcode.TemplatePaused, 400, TemplatePaused, 400},
		{errcode.TemplateDisabled, 400, TemplateDisabled, 400},
		{errcode.TemplateParamFormat, 400, TemplateParamFmt, 400},
		{errcode.Internal, 500, SomethingWrong, 500},
		{errcode.Internal, 504, SomethingWrong, 504},
		{errcode.NotPrimaryCoreapp, 503, SomethingWrong, 503},
		{errcode.ReEngagement, 0, ReEngagement, 400},
		{errcode.Code(4242), 400, InvalidParameter, 400},
		{errcode.Code(4242), 500, SomethingWrong, 500},
	} {
		g, st := FromOnPrem(tc.code, tc.status)
		if g != tc.graph || st != tc.http {
			t.Errorf("FromOnPrem(%d, %d) = %d, %d; want %d, %d", tc.code, tc.status, g, st, tc.graph, tc.http)
		}
	}
	// Every code of the on-prem catalog has a row, to a Graph code with
	// Meta's title.
	for _, c := range errcode.Catalog() {
		m, ok := fromOnPrem[c]
		if !ok {
			t.Errorf("on-prem code %d has no Graph mapping", c)
			continue
		}
		if _, titled := titles[m.code]; !titled {
			t.Errorf("%d maps to %d, which has no title", c, m.code)
		}
	}
	e := NewError(TemplateMissing, 0, "template x (en) not found", "trace")
	b, _ := json.Marshal(e)
	want := `{"error":{"message":"(#132001) Template name does not exist in the translation","type":"OAuthException","code":132001,"error_data":{"messaging_product":"whatsapp","details":"template x (en) not found"},"fbtrace_id":"trace"}}`
	if string(b) != want {
		t.Errorf("envelope = %s\nwant       %s", b, want)
	}
	se := StatusErrorOf(errcode.ReEngagement, "")
	if se.Code != ReEngagement || se.Title != "Re-engagement message" || se.Data.Details == "" {
		t.Errorf("StatusErrorOf(470) = %+v", se)
	}
}
