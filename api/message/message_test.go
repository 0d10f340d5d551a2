package message

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/api/body"
	"github.com/openwaba/openwaba/api/errcode"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// TestRegistryIsComplete walks the registry: every type a business sends
// can be checked and shown by a phone; every type a customer sends renders
// a webhook and can be composed by a phone (or is a file, sent by the
// phone's upload path); names and kinds are set; and a type's sample
// content is recognised as that type only.
func TestRegistryIsComplete(t *testing.T) {
	samples := samplesByType(t)
	for _, ty := range Default.Types() {
		t.Run(ty.Name, func(t *testing.T) {
			if ty.Parse == nil && ty.Webhook == nil {
				t.Fatal("neither a business nor a customer can send it")
			}
			if ty.Parse != nil && (ty.Check == nil || ty.Show == nil) {
				t.Error("a business can send it, but it has no Check or no Show (phone rendering)")
			}
			if ty.Webhook != nil && ty.Compose == nil && ty.Kind != "media" {
				t.Error("a customer can send it, but a phone cannot compose it")
			}
			c, ok := samples[ty.Name]
			if !ok {
				t.Fatalf("no sample content for %s in this test", ty.Name)
			}
			got, ok := Default.Of(c)
			if !ok || got.Name != ty.Name {
				t.Errorf("Of(sample) = %q, want %q", got.Name, ty.Name)
			}
			// The proto mapping survives the wire.
			b, err := proto.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			back := new(messagev1.Content)
			if err := proto.Unmarshal(b, back); err != nil || !proto.Equal(back, c) {
				t.Fatalf("content does not survive marshalling: %v", err)
			}
			if ty.Show != nil {
				if _, err := json.Marshal(ty.Show(c)); err != nil {
					t.Errorf("Show does not marshal: %v", err)
				}
				if Default.Terminal(c) == "" {
					t.Error("empty terminal rendering")
				}
			}
			if ty.Webhook != nil {
				name, obj := ty.Webhook(c)
				if name == "" {
					t.Error("webhook type name is empty")
				}
				if _, err := json.Marshal(obj); err != nil {
					t.Errorf("webhook object does not marshal: %v", err)
				}
			}
		})
	}
}

// samplesByType parses one valid send body of every type a business sends,
// and adds the customer-only types.
func samplesByType(t *testing.T) map[string]*messagev1.Content {
	t.Helper()
	out := map[string]*messagev1.Content{}
	for name, b := range validBodies {
		s, err := Default.ParseSend([]byte(b))
		if err != nil {
			t.Fatalf("sample %s: %v", name, err)
		}
		out[s.Type] = s.Content
	}
	out["interactive_reply"] = &messagev1.Content{Body: &messagev1.Content_InteractiveReply{InteractiveReply: &messagev1.InteractiveReply{Type: "button_reply", Id: "yes", Title: "Yes"}}}
	out["button"] = &messagev1.Content{Body: &messagev1.Content_ButtonReply{ButtonReply: &messagev1.ButtonReply{Payload: "STOP", Text: "Stop"}}}
	return out
}

var validBodies = map[string]string{
	"text":        `{"to":"+1 631 555 1234","type":"text","text":{"body":"hi"}}`,
	"image":       `{"to":"16315551234","type":"image","image":{"id":"f81d4fae-7dec-11d0-a765-00a0c91e6bf6","caption":"c"}}`,
	"audio":       `{"to":"16315551234","type":"audio","audio":{"link":"https://cdn.example/a.ogg"}}`,
	"video":       `{"to":"16315551234","type":"video","video":{"link":"https://cdn.example/a.mp4","provider":{"name":"cdn"}}}`,
	"document":    `{"to":"16315551234","type":"document","document":{"id":"abc","filename":"a.pdf"}}`,
	"sticker":     `{"to":"16315551234","type":"sticker","sticker":{"id":"abc"}}`,
	"location":    `{"to":"16315551234","type":"location","location":{"latitude":37.4847,"longitude":-122.1477,"name":"HQ","address":"1 Hacker Way"}}`,
	"contacts":    `{"to":"16315551234","type":"contacts","contacts":[{"name":{"formatted_name":"Kerry Fisher","first_name":"Kerry"},"phones":[{"phone":"+1 631 555 1234","type":"CELL","wa_id":"16315551234"}],"emails":[{"email":"k@example.com","type":"WORK"}],"birthday":"1990-05-17","org":{"company":"Acme"},"urls":[{"url":"https://example.com"}],"addresses":[{"city":"Menlo Park","country_code":"US"}]}]}`,
	"interactive": `{"to":"16315551234","type":"interactive","interactive":{"type":"button","header":{"type":"text","text":"Hi"},"body":{"text":"Pick"},"footer":{"text":"f"},"action":{"buttons":[{"type":"reply","reply":{"id":"yes","title":"Yes"}},{"type":"reply","reply":{"id":"no","title":"No"}}]}}}`,
	"reaction":    `{"to":"16315551234","type":"reaction","reaction":{"message_id":"wamid.ABC","emoji":"👍"}}`,
	"template": `{"to":"16315551234","type":"template","template":{"namespace":"ns1","name":"order_update","language":{"policy":"deterministic","code":"en_US"},"components":[` +
		`{"type":"header","parameters":[{"type":"image","image":{"link":"https://cdn.example/a.png"}}]},` +
		`{"type":"body","parameters":[{"type":"text","text":"Kerry"},{"type":"currency","currency":{"fallback_value":"$100.99","code":"USD","amount_1000":100990}},{"type":"date_time","date_time":{"fallback_value":"February 25, 1977"}}]},` +
		`{"type":"button","sub_type":"quick_reply","index":"0","parameters":[{"type":"payload","payload":"STOP"}]},` +
		`{"type":"button","sub_type":"url","index":1,"parameters":[{"type":"text","text":"order/42"}]}]}}`,
	"hsm": `{"to":"16315551234","type":"hsm","hsm":{"namespace":"ns1","element_name":"order_update","language":{"policy":"fallback","code":"en"},"localizable_params":[{"default":"Kerry"},{"default":"$100.99","currency":{"currency_code":"USD","amount_1000":100990}},{"default":"Feb 25","date_time":{"component":{"day_of_month":25}}}]}}`,
}

func code(err error) errcode.Code {
	var e *errcode.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func s(n int) string { return strings.Repeat("a", n) }

// TestParseSend: valid bodies, each limit ±1, each required field missing,
// with the on-prem error code.
func TestParseSend(t *testing.T) {
	msg := func(typ, obj string) string {
		return `{"to":"16315551234","type":"` + typ + `","` + typ + `":` + obj + `}`
	}
	loc := func(f string) string { return msg("location", `{`+f+`}`) }
	card := func(f string) string { return msg("contacts", `[{"name":{"formatted_name":"K"}`+f+`}]`) }
	buttons := func(n int) string {
		var bs []string
		for i := range n {
			bs = append(bs, fmt.Sprintf(`{"type":"reply","reply":{"id":"b%d","title":"B%d"}}`, i, i))
		}
		return msg("interactive", `{"type":"button","body":{"text":"x"},"action":{"buttons":[`+strings.Join(bs, ",")+`]}}`)
	}
	button := func(id, title string) string {
		return msg("interactive", `{"type":"button","body":{"text":"x"},"action":{"buttons":[{"type":"reply","reply":{"id":"`+id+`","title":"`+title+`"}}]}}`)
	}
	list := func(sections ...string) string {
		return msg("interactive", `{"type":"list","body":{"text":"x"},"action":{"button":"Open","sections":[`+strings.Join(sections, ",")+`]}}`)
	}
	rows := func(n int, prefix string) string {
		var rs []string
		for i := range n {
			rs = append(rs, fmt.Sprintf(`{"id":"%s%d","title":"R%d"}`, prefix, i, i))
		}
		return strings.Join(rs, ",")
	}
	section := func(title, rowsJSON string) string { return `{"title":"` + title + `","rows":[` + rowsJSON + `]}` }
	row := func(id, title, desc string) string {
		return list(section("S", `{"id":"`+id+`","title":"`+title+`","description":"`+desc+`"}`))
	}
	inter := func(f string) string {
		return msg("interactive", `{"type":"button",`+f+`,"action":{"buttons":[{"type":"reply","reply":{"id":"a","title":"A"}}]}}`)
	}
	tests := []struct {
		name string
		body string
		want errcode.Code // 0: valid
	}{
		// Common fields.
		{"text", validBodies["text"], 0},
		{"type defaults to text", `{"to":"16315551234","text":{"body":"x"}}`, 0},
		{"no to", `{"type":"text","text":{"body":"x"}}`, errcode.Missing},
		{"bad to", `{"to":"12ab","text":{"body":"x"}}`, errcode.Invalid},
		{"group", `{"to":"16315551234","recipient_type":"group","text":{"body":"x"}}`, errcode.RecipientType},
		{"individual", `{"to":"16315551234","recipient_type":"individual","text":{"body":"x"}}`, 0},
		{"unknown type", `{"to":"16315551234","type":"poll"}`, errcode.Invalid},
		{"template without namespace", `{"to":"16315551234","type":"template","template":{"name":"x","language":{"code":"en"}}}`, errcode.NamespaceEmpty},
		{"template", validBodies["template"], 0},
		{"hsm", validBodies["hsm"], 0},
		{"template without name", `{"to":"16315551234","type":"template","template":{"namespace":"n","language":{"code":"en"}}}`, errcode.Missing},
		{"template without language", `{"to":"16315551234","type":"template","template":{"namespace":"n","name":"x"}}`, errcode.Missing},
		{"template fallback policy", `{"to":"16315551234","type":"template","template":{"namespace":"n","name":"x","language":{"policy":"fallback","code":"en"}}}`, errcode.Invalid},
		{"template component of another type", `{"to":"16315551234","type":"template","template":{"namespace":"n","name":"x","language":{"code":"en"},"components":[{"type":"footer"}]}}`, errcode.Invalid},
		{"template parameter of unknown type", `{"to":"16315551234","type":"template","template":{"namespace":"n","name":"x","language":{"code":"en"},"components":[{"type":"body","parameters":[{"type":"emoji"}]}]}}`, errcode.TemplateParamFormat},
		{"template text parameter without text", `{"to":"16315551234","type":"template","template":{"namespace":"n","name":"x","language":{"code":"en"},"components":[{"type":"body","parameters":[{"type":"text"}]}]}}`, errcode.Missing},
		{"template quick reply with text", `{"to":"16315551234","type":"template","template":{"namespace":"n","name":"x","language":{"code":"en"},"components":[{"type":"button","sub_type":"quick_reply","index":"0","parameters":[{"type":"text","text":"a"}]}]}}`, errcode.TemplateParamFormat},
		{"template button index 10", `{"to":"16315551234","type":"template","template":{"namespace":"n","name":"x","language":{"code":"en"},"components":[{"type":"button","sub_type":"quick_reply","index":"10","parameters":[{"type":"payload","payload":"a"}]}]}}`, errcode.Invalid},
		{"template button without index", `{"to":"16315551234","type":"template","template":{"namespace":"n","name":"x","language":{"code":"en"},"components":[{"type":"button","sub_type":"url","parameters":[{"type":"text","text":"a"}]}]}}`, errcode.Missing},
		{"template image by id", `{"to":"16315551234","type":"template","template":{"namespace":"n","name":"x","language":{"code":"en"},"components":[{"type":"header","parameters":[{"type":"image","image":{"id":"abc"}}]}]}}`, 0},
		{"template image without id or link", `{"to":"16315551234","type":"template","template":{"namespace":"n","name":"x","language":{"code":"en"},"components":[{"type":"header","parameters":[{"type":"image","image":{}}]}]}}`, errcode.Missing},
		{"template location header", `{"to":"16315551234","type":"template","template":{"namespace":"n","name":"x","language":{"code":"en"},"components":[{"type":"header","parameters":[{"type":"location","location":{"latitude":1,"longitude":2}}]}]}}`, 0},
		{"hsm without default", `{"to":"16315551234","type":"hsm","hsm":{"namespace":"n","element_name":"x","language":{"code":"en"},"localizable_params":[{}]}}`, errcode.Missing},
		{"hsm without namespace", `{"to":"16315551234","type":"hsm","hsm":{"element_name":"x","language":{"code":"en"}}}`, errcode.NamespaceEmpty},
		{"another type's object", `{"to":"16315551234","type":"text","text":{"body":"x"},"location":{}}`, errcode.NotRequired},
		{"unknown field", `{"to":"16315551234","text":{"body":"x"},"colour":1}`, errcode.NotRequired},
		{"messaging_product ignored", `{"messaging_product":"whatsapp","to":"16315551234","text":{"body":"x"}}`, 0},
		{"legacy ttl accepted", `{"to":"16315551234","text":{"body":"x"},"ttl":5}`, 0},
		{"legacy ttl object accepted", `{"to":"16315551234","text":{"body":"x"},"ttl":{"days":7}}`, 0},
		{"legacy ttl negative", `{"to":"16315551234","text":{"body":"x"},"ttl":-1}`, errcode.Invalid},
		{"legacy ttl array", `{"to":"16315551234","text":{"body":"x"},"ttl":[1]}`, errcode.Invalid},
		{"context", `{"to":"16315551234","text":{"body":"x"},"context":{"message_id":"wamid.A"}}`, 0},
		{"context without id", `{"to":"16315551234","text":{"body":"x"},"context":{}}`, errcode.Missing},
		{"context id too long", `{"to":"16315551234","text":{"body":"x"},"context":{"message_id":"` + s(129) + `"}}`, errcode.Invalid},
		{"not json", `{"to":`, errcode.Invalid},
		{"missing type object", `{"to":"16315551234","type":"location"}`, errcode.Missing},

		// Text.
		{"text 4096", msg("text", `{"body":"`+s(4096)+`"}`), 0},
		{"text 4097", msg("text", `{"body":"`+s(4097)+`"}`), errcode.TooLong},
		{"text empty", msg("text", `{"body":""}`), errcode.Missing},
		{"text blank", msg("text", `{"body":"  "}`), errcode.Missing},

		// Media.
		{"image id and link", msg("image", `{"id":"a","link":"https://x.example/a.png"}`), errcode.Invalid},
		{"image neither", msg("image", `{"caption":"c"}`), errcode.Missing},
		{"audio caption", msg("audio", `{"id":"a","caption":"c"}`), errcode.NotRequired},
		{"image filename", msg("image", `{"id":"a","filename":"a.png"}`), errcode.NotRequired},
		{"caption 1024", msg("image", `{"id":"a","caption":"`+s(1024)+`"}`), 0},
		{"caption 1025", msg("image", `{"id":"a","caption":"`+s(1025)+`"}`), errcode.Invalid},
		{"filename 240", msg("document", `{"id":"a","filename":"`+s(240)+`"}`), 0},
		{"filename 241", msg("document", `{"id":"a","filename":"`+s(241)+`"}`), errcode.Invalid},
		{"filename with a slash", msg("document", `{"id":"a","filename":"a/b"}`), errcode.Invalid},
		{"media id 256", msg("image", `{"id":"`+s(256)+`"}`), 0},
		{"media id 257", msg("image", `{"id":"`+s(257)+`"}`), errcode.Invalid},
		{"link not http", msg("image", `{"link":"ftp://x.example/a"}`), errcode.Invalid},
		{"provider with id", msg("image", `{"id":"a","provider":{"name":"p"}}`), errcode.NotRequired},
		{"provider bad name", msg("image", `{"link":"https://x.example/a","provider":{"name":"a b"}}`), errcode.Invalid},

		// Location.
		{"location", validBodies["location"], 0},
		{"location at 0,0", loc(`"latitude":0,"longitude":0`), 0},
		{"location edges", loc(`"latitude":-90,"longitude":180`), 0},
		{"latitude 90.0001", loc(`"latitude":90.0001,"longitude":0`), errcode.Invalid},
		{"longitude -180.0001", loc(`"latitude":0,"longitude":-180.0001`), errcode.Invalid},
		{"no latitude", loc(`"longitude":0`), errcode.Missing},
		{"no longitude", loc(`"latitude":0`), errcode.Missing},
		{"latitude a string", loc(`"latitude":"x","longitude":0`), errcode.Invalid},
		{"location name 1000", loc(`"latitude":1,"longitude":1,"name":"` + s(1000) + `"`), 0},
		{"location name 1001", loc(`"latitude":1,"longitude":1,"name":"` + s(1001) + `"`), errcode.Invalid},
		{"location address 1001", loc(`"latitude":1,"longitude":1,"address":"` + s(1001) + `"`), errcode.Invalid},
		{"location unknown field", loc(`"latitude":1,"longitude":1,"url":"x"`), errcode.NotRequired},

		// Contacts.
		{"contacts", validBodies["contacts"], 0},
		{"contacts not an array", msg("contacts", `{}`), errcode.Invalid},
		{"contacts empty", msg("contacts", `[]`), errcode.Missing},
		{"no name", msg("contacts", `[{"phones":[]}]`), errcode.Missing},
		{"no formatted_name", msg("contacts", `[{"name":{"first_name":"K"}}]`), errcode.Missing},
		{"birthday", card(`,"birthday":"2000-02-29"`), 0},
		{"birthday not a date", card(`,"birthday":"2001-02-29"`), errcode.Invalid},
		{"birthday other format", card(`,"birthday":"17/05/1990"`), errcode.Invalid},
		{"phone wa_id", card(`,"phones":[{"phone":"1","wa_id":"12ab"}]`), errcode.Invalid},
		{"20 phones", card(`,"phones":[` + strings.TrimSuffix(strings.Repeat(`{"phone":"1"},`, 20), ",") + `]`), 0},
		{"21 phones", card(`,"phones":[` + strings.TrimSuffix(strings.Repeat(`{"phone":"1"},`, 21), ",") + `]`), errcode.Invalid},
		{"20 cards", msg("contacts", `[`+strings.TrimSuffix(strings.Repeat(`{"name":{"formatted_name":"K"}},`, 20), ",")+`]`), 0},
		{"21 cards", msg("contacts", `[`+strings.TrimSuffix(strings.Repeat(`{"name":{"formatted_name":"K"}},`, 21), ",")+`]`), errcode.Invalid},
		{"card field 512", card(`,"org":{"company":"` + s(512) + `"}`), 0},
		{"card field 513", card(`,"org":{"company":"` + s(513) + `"}`), errcode.Invalid},
		{"card unknown field", card(`,"nickname":"k"`), errcode.NotRequired},
		{"email unknown field", card(`,"emails":[{"mail":"x"}]`), errcode.NotRequired},

		// Interactive buttons.
		{"interactive button", validBodies["interactive"], 0},
		{"1 button", buttons(1), 0},
		{"3 buttons", buttons(3), 0},
		{"4 buttons", buttons(4), errcode.Invalid},
		{"0 buttons", buttons(0), errcode.Invalid},
		{"button title 20", button("a", s(20)), 0},
		{"button title 21", button("a", s(21)), errcode.Invalid},
		{"button id 256", button(s(256), "A"), 0},
		{"button id 257", button(s(257), "A"), errcode.Invalid},
		{"button without id", button("", "A"), errcode.Missing},
		{"button without title", button("a", ""), errcode.Missing},
		{"duplicate button ids", msg("interactive", `{"type":"button","body":{"text":"x"},"action":{"buttons":[{"type":"reply","reply":{"id":"a","title":"A"}},{"type":"reply","reply":{"id":"a","title":"B"}}]}}`), errcode.Invalid},
		{"button of another type", msg("interactive", `{"type":"button","body":{"text":"x"},"action":{"buttons":[{"type":"url","reply":{"id":"a","title":"A"}}]}}`), errcode.Invalid},
		{"body 1024", inter(`"body":{"text":"` + s(1024) + `"}`), 0},
		{"body 1025", inter(`"body":{"text":"` + s(1025) + `"}`), errcode.Invalid},
		{"no body", inter(`"footer":{"text":"f"}`), errcode.Missing},
		{"footer 60", inter(`"body":{"text":"x"},"footer":{"text":"` + s(60) + `"}`), 0},
		{"footer 61", inter(`"body":{"text":"x"},"footer":{"text":"` + s(61) + `"}`), errcode.Invalid},
		{"header text 60", inter(`"body":{"text":"x"},"header":{"type":"text","text":"` + s(60) + `"}`), 0},
		{"header text 61", inter(`"body":{"text":"x"},"header":{"type":"text","text":"` + s(61) + `"}`), errcode.Invalid},
		{"image header by id", inter(`"body":{"text":"x"},"header":{"type":"image","image":{"id":"abc"}}`), 0},
		{"document header by link", inter(`"body":{"text":"x"},"header":{"type":"document","document":{"link":"https://x.example/a.pdf","filename":"a.pdf"}}`), 0},
		{"image header without image", inter(`"body":{"text":"x"},"header":{"type":"image"}`), errcode.Missing},
		{"header with an audio", inter(`"body":{"text":"x"},"header":{"type":"audio","audio":{"id":"a"}}`), errcode.NotRequired},
		{"header of type audio", inter(`"body":{"text":"x"},"header":{"type":"audio"}`), errcode.Invalid},
		{"header text and image", inter(`"body":{"text":"x"},"header":{"type":"text","text":"t","image":{"id":"a"}}`), errcode.NotRequired},
		{"product", msg("interactive", `{"type":"product","body":{"text":"x"},"action":{}}`), errcode.Invalid},
		{"product_list", msg("interactive", `{"type":"product_list","body":{"text":"x"},"action":{}}`), errcode.Invalid},
		{"interactive of unknown type", msg("interactive", `{"type":"carousel","body":{"text":"x"},"action":{}}`), errcode.Invalid},
		{"no action", msg("interactive", `{"type":"button","body":{"text":"x"}}`), errcode.Missing},
		{"sections in a button message", msg("interactive", `{"type":"button","body":{"text":"x"},"action":{"buttons":[{"type":"reply","reply":{"id":"a","title":"A"}}],"sections":[]}}`), errcode.NotRequired},

		// Interactive lists.
		{"list", list(section("S", rows(3, "r"))), 0},
		{"list of 10 rows in 2 sections", list(section("S1", rows(5, "a")), section("S2", rows(5, "b"))), 0},
		{"list of 11 rows", list(section("S1", rows(6, "a")), section("S2", rows(5, "b"))), errcode.InvalidRows},
		{"list of 10 sections", list(section("1", rows(1, "a")), section("2", rows(1, "b")), section("3", rows(1, "c")), section("4", rows(1, "d")), section("5", rows(1, "e")), section("6", rows(1, "f")), section("7", rows(1, "g")), section("8", rows(1, "h")), section("9", rows(1, "i")), section("10", rows(1, "j"))), 0},
		{"list of 11 sections", list(section("1", rows(1, "a")), section("2", rows(1, "b")), section("3", rows(1, "c")), section("4", rows(1, "d")), section("5", rows(1, "e")), section("6", rows(1, "f")), section("7", rows(1, "g")), section("8", rows(1, "h")), section("9", rows(1, "i")), section("10", rows(1, "j")), section("11", rows(1, "k"))), errcode.InvalidSections},
		{"list of no sections", list(), errcode.InvalidSections},
		{"section without rows", list(section("S", "")), errcode.InvalidRows},
		{"two sections, one untitled", list(section("", rows(1, "a")), section("S", rows(1, "b"))), errcode.Missing},
		{"one untitled section", list(section("", rows(1, "a"))), 0},
		{"section title 24", list(section(s(24), rows(1, "a"))), 0},
		{"section title 25", list(section(s(25), rows(1, "a"))), errcode.Invalid},
		{"row title 24", row("r", s(24), ""), 0},
		{"row title 25", row("r", s(25), ""), errcode.Invalid},
		{"row description 72", row("r", "R", s(72)), 0},
		{"row description 73", row("r", "R", s(73)), errcode.Invalid},
		{"row id 200", row(s(200), "R", ""), 0},
		{"row id 201", row(s(201), "R", ""), errcode.Invalid},
		{"duplicate row ids", list(section("S1", rows(2, "a")), section("S2", rows(1, "a"))), errcode.Invalid},
		{"list button 20", msg("interactive", `{"type":"list","body":{"text":"x"},"action":{"button":"`+s(20)+`","sections":[`+section("S", rows(1, "a"))+`]}}`), 0},
		{"list button 21", msg("interactive", `{"type":"list","body":{"text":"x"},"action":{"button":"`+s(21)+`","sections":[`+section("S", rows(1, "a"))+`]}}`), errcode.Invalid},
		{"list without button", msg("interactive", `{"type":"list","body":{"text":"x"},"action":{"sections":[`+section("S", rows(1, "a"))+`]}}`), errcode.Missing},
		{"list with an image header", msg("interactive", `{"type":"list","header":{"type":"image","image":{"id":"a"}},"body":{"text":"x"},"action":{"button":"B","sections":[`+section("S", rows(1, "a"))+`]}}`), errcode.Invalid},

		// Reactions.
		{"reaction", validBodies["reaction"], 0},
		{"reaction removed", msg("reaction", `{"message_id":"wamid.A","emoji":""}`), 0},
		{"reaction without emoji removes", msg("reaction", `{"message_id":"wamid.A"}`), 0},
		{"reaction flag", msg("reaction", `{"message_id":"wamid.A","emoji":"🇩🇪"}`), 0},
		{"reaction skin tone", msg("reaction", `{"message_id":"wamid.A","emoji":"👍🏽"}`), 0},
		{"reaction family", msg("reaction", `{"message_id":"wamid.A","emoji":"👨‍👩‍👧"}`), 0},
		{"reaction heart", msg("reaction", `{"message_id":"wamid.A","emoji":"❤️"}`), 0},
		{"reaction two emoji", msg("reaction", `{"message_id":"wamid.A","emoji":"👍👍"}`), errcode.Invalid},
		{"reaction text", msg("reaction", `{"message_id":"wamid.A","emoji":"ok"}`), errcode.Invalid},
		{"reaction without message", msg("reaction", `{"emoji":"👍"}`), errcode.Missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Default.ParseSend([]byte(tt.body))
			if got := code(err); got != tt.want {
				t.Fatalf("ParseSend = %v (code %d), want code %d", err, got, tt.want)
			}
			if err != nil {
				var e *errcode.Error
				errors.As(err, &e)
				if e.Details == "" {
					t.Error("an error without details")
				}
				return
			}
			// What the webapp accepted, coreapp accepts too.
			if err := Default.Check(s.Content); err != nil {
				t.Errorf("Check of a parsed body = %v", err)
			}
		})
	}
}

// TestShowsTheSendShape: what a phone shows is the object the business
// sent, in the API's shape.
// The legacy ttl is on-prem's: the Cloud API does not know it.
func TestTTLIsOnPremOnly(t *testing.T) {
	b := []byte(`{"messaging_product":"whatsapp","to":"16315551234","text":{"body":"x"},"ttl":5}`)
	if _, err := Default.ParseSendFrom(Cloud, b); code(err) != errcode.NotRequired {
		t.Errorf("Cloud body with ttl = %v, want 1010", err)
	}
	if _, err := Default.ParseSendFrom(OnPrem, b); err != nil {
		t.Errorf("on-prem body with ttl = %v, want it accepted", err)
	}
}

func TestShowsTheSendShape(t *testing.T) {
	for _, name := range []string{"location", "contacts", "interactive", "reaction"} {
		t.Run(name, func(t *testing.T) {
			s, err := Default.ParseSend([]byte(validBodies[name]))
			if err != nil {
				t.Fatal(err)
			}
			typ, obj, ok := Default.Show(s.Content)
			if !ok || typ != name {
				t.Fatalf("Show = %q, %v", typ, ok)
			}
			shown, _ := json.Marshal(obj)
			var sent map[string]json.RawMessage
			json.Unmarshal([]byte(validBodies[name]), &sent)
			var a, b any
			json.Unmarshal(sent[name], &a)
			json.Unmarshal(shown, &b)
			if diff := cmp.Diff(a, b); diff != "" {
				t.Errorf("shown object differs from the sent one (-sent +shown):\n%s", diff)
			}
			// And a phone that sends what it shows composes the same content
			// (where a customer may send the type).
			if ty, _ := Default.Lookup(name); ty.Compose != nil {
				c, err := Default.Compose(name, shown, "", "")
				if err != nil {
					t.Fatalf("Compose(Show) = %v", err)
				}
				if !proto.Equal(c, s.Content) {
					t.Errorf("Compose(Show(c)) = %v, want %v", c, s.Content)
				}
			}
		})
	}
}

// TestInboundWebhooks renders the on-prem inbound objects.
func TestInboundWebhooks(t *testing.T) {
	in := &messagev1.Interactive{Type: "list", Body: "Pick", ListButton: "Open", Sections: []*messagev1.ListSection{{Title: "S", Rows: []*messagev1.ListRow{{Id: "r1", Title: "One", Description: "the first"}}}}}
	lr, err := Reply(in, "wamid.B", "15550100", "r1")
	if err != nil {
		t.Fatal(err)
	}
	btn := &messagev1.Interactive{Type: "button", Body: "x", Buttons: []*messagev1.ReplyButton{{Id: "yes", Title: "Yes"}, {Id: "no", Title: "No"}}}
	br, err := Reply(btn, "wamid.C", "15550100", "2") // by number
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Reply(btn, "wamid.C", "15550100", "maybe"); code(err) != errcode.Invalid {
		t.Errorf("Reply with an unknown choice = %v", err)
	}
	loc, _ := Default.Compose("location", json.RawMessage(`{"latitude":1.5,"longitude":2.5,"name":"N"}`), "", "")
	rm, _ := Default.Compose("reaction", json.RawMessage(`{"message_id":"wamid.D","emoji":""}`), "", "")
	for _, c := range []struct {
		content  *messagev1.Content
		wantType string
		want     string
	}{
		{lr, "interactive", `{"type":"list_reply","list_reply":{"id":"r1","title":"One","description":"the first"}}`},
		{br, "interactive", `{"type":"button_reply","button_reply":{"id":"no","title":"No"}}`},
		{loc, "location", `{"latitude":1.5,"longitude":2.5,"name":"N"}`},
		{rm, "reaction", `{"message_id":"wamid.D","emoji":""}`},
	} {
		typ, obj, e := Default.Inbound(c.content)
		b, _ := json.Marshal(obj)
		if e != nil || typ != c.wantType || string(b) != c.want {
			t.Errorf("Inbound = %s %s %v, want %s %s", typ, b, e, c.wantType, c.want)
		}
	}
	if lr.GetContext().GetMessageId() != "wamid.B" || lr.GetContext().GetFrom() != "15550100" {
		t.Errorf("reply context = %v", lr.GetContext())
	}
	// A business-only type or no content at all: unknown, with 501.
	for _, c := range []*messagev1.Content{nil, {}, {Body: &messagev1.Content_Interactive{Interactive: in}}} {
		typ, _, e := Default.Inbound(c)
		if typ != "unknown" || e == nil || e.Code != errcode.UnsupportedType {
			t.Errorf("Inbound(%v) = %s %v, want unknown with 501", c, typ, e)
		}
	}
}

// TestAddedType shows that a new type needs nothing but its Type (here a
// test-only "poll" carried in Content.extension): the registry parses it
// from a send body, checks it, derives its stanza kind, shows it on a phone
// (the same functions the webapp, coreapp and waphone call), composes it
// from a phone's command and renders its webhook.
func TestAddedType(t *testing.T) {
	type pollObject struct {
		Question string   `json:"question"`
		Options  []string `json:"options"`
	}
	poll := Type{
		Name: "poll",
		Kind: "poll",
		Of:   func(c *messagev1.Content) bool { return c.GetExtension().GetType() == "poll" },
		Parse: func(top body.Object) (*messagev1.Content, error) {
			o, _, err := body.Nested(top, "poll", "question", "options")
			if err != nil {
				return nil, err
			}
			q, err := body.RequiredString(o, "question")
			if err != nil {
				return nil, err
			}
			opts, _, err := body.Field[[]string](o, "options")
			if err != nil {
				return nil, err
			}
			b, _ := json.Marshal(pollObject{q, opts})
			return &messagev1.Content{Body: &messagev1.Content_Extension{Extension: &messagev1.Extension{Type: "poll", Json: b}}}, nil
		},
		Check: func(c *messagev1.Content) error {
			var p pollObject
			if json.Unmarshal(c.GetExtension().GetJson(), &p) != nil || len(p.Options) < 2 {
				return errcode.New(errcode.Invalid, "poll.options needs at least two options")
			}
			return nil
		},
		Show: func(c *messagev1.Content) any { return json.RawMessage(c.GetExtension().GetJson()) },
		Webhook: func(c *messagev1.Content) (string, any) {
			return "poll", json.RawMessage(c.GetExtension().GetJson())
		},
		Compose: func(raw json.RawMessage) (*messagev1.Content, error) {
			return &messagev1.Content{Body: &messagev1.Content_Extension{Extension: &messagev1.Extension{Type: "poll", Json: raw}}}, nil
		},
	}
	r := NewRegistry(append(Builtin(), poll)...)
	s, err := r.ParseSend([]byte(`{"to":"16315551234","type":"poll","poll":{"question":"Tea?","options":["yes","no"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind(s.Content) != "poll" {
		t.Errorf("Kind = %q", r.Kind(s.Content))
	}
	if _, err := r.ParseSend([]byte(`{"to":"16315551234","type":"poll","poll":{"question":"Tea?","options":["yes"]}}`)); code(err) != errcode.Invalid {
		t.Errorf("a poll with one option = %v, want 1009", err)
	}
	// Over the wire and on the phone.
	b, _ := proto.Marshal(s.Content)
	got := new(messagev1.Content)
	proto.Unmarshal(b, got)
	typ, obj, ok := r.Show(got)
	shown, _ := json.Marshal(obj)
	if !ok || typ != "poll" || string(shown) != `{"question":"Tea?","options":["yes","no"]}` {
		t.Errorf("Show = %s %s %v", typ, shown, ok)
	}
	// The customer answers with a poll of its own, and the webhook has it.
	c, err := r.Compose("poll", shown, "wamid.P", "15550100")
	if err != nil {
		t.Fatal(err)
	}
	typ, hook, e := r.Inbound(c)
	hb, _ := json.Marshal(hook)
	if e != nil || typ != "poll" || string(hb) != string(shown) || c.GetContext().GetMessageId() != "wamid.P" {
		t.Errorf("Inbound = %s %s %v", typ, hb, e)
	}
	// The default registry does not know it.
	if _, err := Default.ParseSend([]byte(`{"to":"16315551234","type":"poll","poll":{}}`)); code(err) != errcode.NotRequired && code(err) != errcode.Invalid {
		t.Errorf("Default.ParseSend(poll) = %v", err)
	}
}

func TestOneEmoji(t *testing.T) {
	for e, want := range map[string]bool{
		"👍": true, "😀": true, "❤️": true, "❤": true, "🇺🇸": true, "👩🏾‍💻": true, "1️⃣": true, "#⃣": true, "⭐": true, "☕": true,
		"": false, "a": false, "👍👍": false, "🇺": false, "ok": false, "👍 ": false, "1": false, "‍": false, "👍‍": false,
	} {
		if got := OneEmoji(e); got != want {
			t.Errorf("OneEmoji(%q) = %v, want %v", e, got, want)
		}
	}
}

func TestKinds(t *testing.T) {
	for name, want := range map[string]string{"text": "text", "image": "media", "document": "media", "location": "location", "contacts": "contacts", "interactive": "interactive", "reaction": "reaction", "template": "template", "hsm": "template"} {
		s, err := Default.ParseSend([]byte(validBodies[name]))
		if err != nil {
			t.Fatal(err)
		}
		if got := Default.Kind(s.Content); got != want {
			t.Errorf("Kind(%s) = %q, want %q", name, got, want)
		}
	}
	if Default.Kind(&messagev1.Content{}) != "unknown" {
		t.Error("empty content has a kind")
	}
}

func TestMediaOf(t *testing.T) {
	img, _ := Default.ParseSend([]byte(validBodies["image"]))
	hdr, _ := Default.ParseSend([]byte(`{"to":"16315551234","type":"interactive","interactive":{"type":"button","header":{"type":"video","video":{"id":"v"}},"body":{"text":"x"},"action":{"buttons":[{"type":"reply","reply":{"id":"a","title":"A"}}]}}}`))
	txt, _ := Default.ParseSend([]byte(validBodies["text"]))
	if n := len(MediaOf(img.Content)); n != 1 {
		t.Errorf("MediaOf(image) = %d", n)
	}
	ms := MediaOf(hdr.Content)
	if len(ms) != 1 || (*ms[0]).MediaId != "v" {
		t.Fatalf("MediaOf(interactive with a video header) = %v", ms)
	}
	*ms[0] = &messagev1.Media{Type: "video", Url: "https://m/x"}
	if hdr.Content.GetInteractive().GetHeader().GetMedia().GetUrl() != "https://m/x" {
		t.Error("replacing through MediaOf did not change the content")
	}
	if MediaOf(txt.Content) != nil {
		t.Error("MediaOf(text) is not empty")
	}
}
