package template

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/openwaba/openwaba/api/errcode"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

func code(err error) errcode.Code {
	var e *errcode.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func s(n int) string { return strings.Repeat("a", n) }

const orderUpdate = `{"name":"order_update","language":"en_US","category":"UTILITY","components":[
 {"type":"HEADER","format":"TEXT","text":"Order {{1}}","example":{"header_text":["#42"]}},
 {"type":"BODY","text":"Hi {{1}}, your order of {{2}} ships on {{3}}.","example":{"body_text":[["Kerry","$10","Monday"]]}},
 {"type":"FOOTER","text":"Acme Shop"},
 {"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"Stop updates"},{"type":"QUICK_REPLY","text":"Talk to us"},
  {"type":"URL","text":"Track","url":"https://acme.example/track/{{1}}","example":["https://acme.example/track/42"]},
  {"type":"PHONE_NUMBER","text":"Call","phone_number":"+15550100"}]}]}`

func TestParse(t *testing.T) {
	body := func(text, example string) string {
		return `{"name":"t","language":"en","category":"MARKETING","components":[{"type":"BODY","text":"` + text + `"` + example + `}]}`
	}
	withButtons := func(buttons string) string {
		return `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"},{"type":"BUTTONS","buttons":[` + buttons + `]}]}`
	}
	qr := func(text string) string { return `{"type":"QUICK_REPLY","text":"` + text + `"}` }
	tests := []struct {
		name string
		in   string
		want errcode.Code
	}{
		{"order update", orderUpdate, 0},
		{"lower-case types", `{"name":"t","language":"en","category":"utility","components":[{"type":"body","text":"x"}]}`, 0},
		{"no name", `{"language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"}]}`, errcode.Missing},
		{"name with capitals", `{"name":"Order","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"}]}`, errcode.Invalid},
		{"name 512", `{"name":"` + s(512) + `","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"}]}`, 0},
		{"name 513", `{"name":"` + s(513) + `","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"}]}`, errcode.Invalid},
		{"bad language", `{"name":"t","language":"english","category":"UTILITY","components":[{"type":"BODY","text":"x"}]}`, errcode.Invalid},
		{"bad category", `{"name":"t","language":"en","category":"PROMO","components":[{"type":"BODY","text":"x"}]}`, errcode.Invalid},
		{"no components", `{"name":"t","language":"en","category":"UTILITY"}`, errcode.Missing},
		{"no body", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"FOOTER","text":"x"}]}`, errcode.Missing},
		{"two bodies", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"},{"type":"BODY","text":"y"}]}`, errcode.Invalid},
		{"footer before body", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"FOOTER","text":"f"},{"type":"BODY","text":"x"}]}`, errcode.Invalid},
		{"unknown component", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"},{"type":"CAROUSEL"}]}`, errcode.Invalid},
		{"unknown field", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x","colour":1}]}`, errcode.NotRequired},
		{"named parameters", `{"name":"t","language":"en","category":"UTILITY","parameter_format":"NAMED","components":[{"type":"BODY","text":"x"}]}`, errcode.Invalid},
		{"body 1024", body(s(1024), ""), 0},
		{"body 1025", body(s(1025), ""), errcode.Invalid},
		{"variables with example", body("Hi {{1}} and {{2}}", `,"example":{"body_text":[["a","b"]]}`), 0},
		{"variables without example", body("Hi {{1}}", ""), errcode.Missing},
		{"example of the wrong size", body("Hi {{1}} {{2}}", `,"example":{"body_text":[["a"]]}`), errcode.Missing},
		{"variable gap", body("Hi {{1}} {{3}}", `,"example":{"body_text":[["a","b"]]}`), errcode.Invalid},
		{"named variable", body("Hi {{name}}", `,"example":{"body_text":[["a"]]}`), errcode.Invalid},
		{"repeated variable", body("{{1}} and {{1}}", `,"example":{"body_text":[["a"]]}`), 0},
		{"header text 60", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"HEADER","format":"TEXT","text":"` + s(60) + `"},{"type":"BODY","text":"x"}]}`, 0},
		{"header text 61", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"HEADER","format":"TEXT","text":"` + s(61) + `"},{"type":"BODY","text":"x"}]}`, errcode.Invalid},
		{"header two variables", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"HEADER","format":"TEXT","text":"{{1}}{{2}}","example":{"header_text":["a"]}},{"type":"BODY","text":"x"}]}`, errcode.Invalid},
		{"header without format", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"HEADER","text":"x"},{"type":"BODY","text":"x"}]}`, errcode.Missing},
		{"image header", `{"name":"t","language":"en","category":"MARKETING","components":[{"type":"HEADER","format":"IMAGE"},{"type":"BODY","text":"x"}]}`, 0},
		{"location header", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"HEADER","format":"LOCATION"},{"type":"BODY","text":"x"}]}`, 0},
		{"audio header", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"HEADER","format":"AUDIO"},{"type":"BODY","text":"x"}]}`, errcode.Invalid},
		{"footer 60", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"},{"type":"FOOTER","text":"` + s(60) + `"}]}`, 0},
		{"footer 61", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"},{"type":"FOOTER","text":"` + s(61) + `"}]}`, errcode.Invalid},
		{"footer with a variable", `{"name":"t","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"},{"type":"FOOTER","text":"{{1}}"}]}`, errcode.Invalid},
		{"10 buttons", withButtons(strings.TrimSuffix(strings.Repeat(qr("q")+",", 10), ",")), 0},
		{"11 buttons", withButtons(strings.TrimSuffix(strings.Repeat(qr("q")+",", 11), ",")), errcode.Invalid},
		{"button text 25", withButtons(qr(s(25))), 0},
		{"button text 26", withButtons(qr(s(26))), errcode.Invalid},
		{"button without text", withButtons(`{"type":"QUICK_REPLY"}`), errcode.Missing},
		{"quick replies apart", withButtons(qr("a") + `,{"type":"URL","text":"u","url":"https://x.example"},` + qr("b")), errcode.Invalid},
		{"three URL buttons", withButtons(`{"type":"URL","text":"u","url":"https://x.example"},{"type":"URL","text":"u","url":"https://x.example"},{"type":"URL","text":"u","url":"https://x.example"}`), errcode.Invalid},
		{"URL suffix not at the end", withButtons(`{"type":"URL","text":"u","url":"https://x.example/{{1}}/x","example":["https://x.example/a/x"]}`), errcode.Invalid},
		{"URL suffix without example", withButtons(`{"type":"URL","text":"u","url":"https://x.example/{{1}}"}`), errcode.Missing},
		{"URL not http", withButtons(`{"type":"URL","text":"u","url":"ftp://x.example/"}`), errcode.Invalid},
		{"two phone buttons", withButtons(`{"type":"PHONE_NUMBER","text":"c","phone_number":"+1555"},{"type":"PHONE_NUMBER","text":"d","phone_number":"+1555"}`), errcode.Invalid},
		{"phone without number", withButtons(`{"type":"PHONE_NUMBER","text":"c"}`), errcode.Missing},
		{"copy code", withButtons(`{"type":"COPY_CODE","text":"Copy","example":"SAVE20"}`), 0},
		{"copy code example 16", withButtons(`{"type":"COPY_CODE","text":"Copy","example":"` + s(16) + `"}`), errcode.Missing},
		{"unknown button type", withButtons(`{"type":"FLOW","text":"f"}`), errcode.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if got := code(err); got != tt.want {
				t.Fatalf("Parse = %v (code %d), want %d", err, got, tt.want)
			}
		})
	}
}

func approved(t *testing.T, js string) *Template {
	t.Helper()
	tpl, err := Parse([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	tpl.Status = StatusApproved
	return tpl
}

func text(v string) *messagev1.TemplateParameter {
	return &messagev1.TemplateParameter{Type: "text", Text: v}
}

// TestHydrate fills in every parameter type and checks every error.
func TestHydrate(t *testing.T) {
	tpl := approved(t, orderUpdate)
	msg := &messagev1.Template{Name: "order_update", Language: "en_US",
		Header: []*messagev1.TemplateParameter{text("#4711")},
		Body: []*messagev1.TemplateParameter{text("Kerry"), {Type: "currency", FallbackValue: "$100.99", CurrencyCode: "USD", Amount_1000: 100990},
			{Type: "date_time", FallbackValue: "February 25, 1977"}},
		Buttons: []*messagev1.TemplateButtonParameter{{SubType: "quick_reply", Index: 0, Payload: "STOP-42"}, {SubType: "url", Index: 2, Text: "4711"}}}
	h, err := Hydrate(tpl, msg)
	if err != nil {
		t.Fatal(err)
	}
	want := &messagev1.HydratedTemplate{HeaderType: "text", HeaderText: "Order #4711", Body: "Hi Kerry, your order of $100.99 ships on February 25, 1977.", Footer: "Acme Shop",
		Buttons: []*messagev1.HydratedButton{
			{Type: "quick_reply", Text: "Stop updates", Payload: "STOP-42"},
			{Type: "quick_reply", Text: "Talk to us", Payload: "Talk to us"},
			{Type: "url", Text: "Track", Url: "https://acme.example/track/4711"},
			{Type: "phone_number", Text: "Call", PhoneNumber: "+15550100"}}}
	if diff := cmp.Diff(want, h, protocmp.Transform()); diff != "" {
		t.Errorf("Hydrate mismatch (-want +got):\n%s", diff)
	}

	mediaTpl := approved(t, `{"name":"promo","language":"en","category":"MARKETING","components":[{"type":"HEADER","format":"IMAGE"},{"type":"BODY","text":"New in"},{"type":"BUTTONS","buttons":[{"type":"COPY_CODE","text":"Copy","example":"SAVE"}]}]}`)
	img := &messagev1.Media{Link: "https://cdn.example/a.png"}
	h, err = Hydrate(mediaTpl, &messagev1.Template{Header: []*messagev1.TemplateParameter{{Type: "image", Media: img}},
		Buttons: []*messagev1.TemplateButtonParameter{{SubType: "copy_code", Index: 0, CouponCode: "SAVE20"}}})
	if err != nil {
		t.Fatal(err)
	}
	if h.HeaderType != "image" || h.HeaderMedia.GetLink() != img.Link || h.HeaderMedia.GetType() != "image" || h.Buttons[0].Code != "SAVE20" {
		t.Errorf("media header hydrated as %v", h)
	}
	locTpl := approved(t, `{"name":"store","language":"en","category":"UTILITY","components":[{"type":"HEADER","format":"LOCATION"},{"type":"BODY","text":"We are here"}]}`)
	if h, err := Hydrate(locTpl, &messagev1.Template{Header: []*messagev1.TemplateParameter{{Type: "location", Location: &messagev1.Location{Latitude: 1, Longitude: 2}}}}); err != nil || h.HeaderLocation.GetLongitude() != 2 {
		t.Errorf("location header = %v, %v", h, err)
	}

	body := func(ps ...*messagev1.TemplateParameter) *messagev1.Template {
		return &messagev1.Template{Header: []*messagev1.TemplateParameter{text("#1")}, Body: ps,
			Buttons: []*messagev1.TemplateButtonParameter{{SubType: "url", Index: 2, Text: "1"}}}
	}
	three := func(first *messagev1.TemplateParameter) *messagev1.Template { return body(first, text("b"), text("c")) }
	errs := []struct {
		name string
		tpl  *Template
		msg  *messagev1.Template
		want errcode.Code
	}{
		{"too few body parameters", tpl, body(text("a")), errcode.TemplateParamCount},
		{"too many body parameters", tpl, body(text("a"), text("b"), text("c"), text("d")), errcode.TemplateParamCount},
		{"no header parameter", tpl, &messagev1.Template{Body: []*messagev1.TemplateParameter{text("a"), text("b"), text("c")}, Buttons: []*messagev1.TemplateButtonParameter{{SubType: "url", Index: 2, Text: "1"}}}, errcode.TemplateParamCount},
		{"body parameter 1024", tpl, three(text(s(1024))), errcode.TemplateHydratedTooLong},
		{"body parameter 1025", tpl, three(text(s(1025))), errcode.TemplateParamTooLong},
		{"header parameter 61", tpl, &messagev1.Template{Header: []*messagev1.TemplateParameter{text(s(61))}, Body: []*messagev1.TemplateParameter{text("a"), text("b"), text("c")}}, errcode.TemplateParamTooLong},
		{"hydrated header too long", tpl, &messagev1.Template{Header: []*messagev1.TemplateParameter{text(s(60))}, Body: []*messagev1.TemplateParameter{text("a"), text("b"), text("c")}}, errcode.TemplateHydratedTooLong},
		{"new line in a parameter", tpl, three(text("a\nb")), errcode.TemplateWhitespacePolicy},
		{"five spaces", tpl, three(text("a     b")), errcode.TemplateWhitespacePolicy},
		{"image as a body parameter", tpl, three(&messagev1.TemplateParameter{Type: "image", Media: &messagev1.Media{MediaId: "x"}}), errcode.TemplateParamFormat},
		{"currency without fallback", tpl, three(&messagev1.TemplateParameter{Type: "currency"}), errcode.TemplateParamFormat},
		{"text header for an image template", mediaTpl, &messagev1.Template{Header: []*messagev1.TemplateParameter{text("a")}, Buttons: []*messagev1.TemplateButtonParameter{{SubType: "copy_code", Index: 0, CouponCode: "A"}}}, errcode.TemplateParamFormat},
		{"no image", mediaTpl, &messagev1.Template{}, errcode.TemplateParamCount},
		{"copy code without code", mediaTpl, &messagev1.Template{Header: []*messagev1.TemplateParameter{{Type: "image", Media: img}}}, errcode.TemplateParamCount},
		{"dynamic URL without suffix", tpl, &messagev1.Template{Header: []*messagev1.TemplateParameter{text("#1")}, Body: []*messagev1.TemplateParameter{text("a"), text("b"), text("c")}}, errcode.TemplateParamCount},
		{"button that does not exist", tpl, &messagev1.Template{Header: []*messagev1.TemplateParameter{text("#1")}, Body: []*messagev1.TemplateParameter{text("a"), text("b"), text("c")},
			Buttons: []*messagev1.TemplateButtonParameter{{SubType: "url", Index: 2, Text: "1"}, {SubType: "quick_reply", Index: 7, Payload: "x"}}}, errcode.TemplateButtonsUnsupported},
		{"url parameter on a quick reply", tpl, &messagev1.Template{Header: []*messagev1.TemplateParameter{text("#1")}, Body: []*messagev1.TemplateParameter{text("a"), text("b"), text("c")},
			Buttons: []*messagev1.TemplateButtonParameter{{SubType: "url", Index: 0, Text: "x"}, {SubType: "url", Index: 2, Text: "1"}}}, errcode.TemplateButtonsUnsupported},
		{"parameter on a phone button", tpl, &messagev1.Template{Header: []*messagev1.TemplateParameter{text("#1")}, Body: []*messagev1.TemplateParameter{text("a"), text("b"), text("c")},
			Buttons: []*messagev1.TemplateButtonParameter{{SubType: "url", Index: 2, Text: "1"}, {SubType: "phone_number", Index: 3}}}, errcode.TemplateButtonsUnsupported},
		{"invalid hydrated URL", tpl, &messagev1.Template{Header: []*messagev1.TemplateParameter{text("#1")}, Body: []*messagev1.TemplateParameter{text("a"), text("b"), text("c")},
			Buttons: []*messagev1.TemplateButtonParameter{{SubType: "url", Index: 2, Text: "%zz"}}}, errcode.TemplateInvalidURL},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Hydrate(tt.tpl, tt.msg)
			if got := code(err); got != tt.want {
				t.Fatalf("Hydrate = %v (code %d), want %d", err, got, tt.want)
			}
		})
	}
}

func TestFind(t *testing.T) {
	mk := func(name, lang, status string) Template {
		return Template{Name: name, Language: lang, Status: status, Category: "UTILITY", Components: []Component{{Type: "BODY", Text: "x"}}}
	}
	pack := []Template{mk("a", "en_US", StatusApproved), mk("a", "de", StatusPending), mk("r", "en", StatusRejected), mk("p", "en", StatusPaused), mk("d", "en", StatusDisabled)}
	for _, c := range []struct {
		name, lang string
		want       errcode.Code
	}{
		{"a", "en_US", 0},
		{"a", "de", errcode.TemplateMissing},
		{"a", "fr", errcode.TemplatePackMissing},
		{"a", "en", errcode.TemplateMissing},
		{"nope", "en_US", errcode.TemplateMissing},
		{"nope", "es", errcode.TemplatePackMissing},
		{"r", "en", errcode.TemplateRejected},
		{"p", "en", errcode.TemplatePaused},
		{"d", "en", errcode.TemplateDisabled},
	} {
		tpl, err := Find(pack, c.name, c.lang)
		if got := code(err); got != c.want || (err == nil && tpl.Name != c.name) {
			t.Errorf("Find(%s, %s) = %v (code %d), want %d", c.name, c.lang, err, got, c.want)
		}
	}
}

func TestVariables(t *testing.T) {
	for in, want := range map[string]int{"no variables": 0, "{{1}}": 1, "{{ 1 }} {{2}}": 2, "{{2}}{{1}}{{2}}": 2} {
		if n, err := Count(in); err != nil || n != want {
			t.Errorf("Count(%q) = %d, %v; want %d", in, n, err, want)
		}
	}
	for _, in := range []string{"{{0}}", "{{x}}", "{{2}}"} {
		if _, err := Count(in); err == nil {
			t.Errorf("Count(%q) accepted", in)
		}
	}
	if got := fill("Hi {{1}}, {{2}} and {{1}}", []string{"A", "B"}); got != "Hi A, B and A" {
		t.Errorf("fill = %q", got)
	}
}
