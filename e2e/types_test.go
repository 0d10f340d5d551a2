package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/e2e/stack"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// sameJSON fails when a and b are not the same JSON value.
func sameJSON(t *testing.T, what string, a, b []byte) {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v in %s", what, err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v in %s", what, err, b)
	}
	if diff := cmp.Diff(x, y); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, diff)
	}
}

// TestMessageTypes sends every on-prem message type to a phone and checks
// it there field by field, with its statuses; then the customer answers with
// every inbound type (button and list replies, location, contacts,
// reactions added and removed, a type coreapp cannot read), checked field
// by field at the webhook.
func TestMessageTypes(t *testing.T) {
	s, tok, hook, phone := setupMedia(t, stack.Options{})
	const customer = "15551234567"
	imageID := s.Upload(bearer(tok), "image/png", randomFile(3000))
	// A message of the customer, to react to.
	inID := phone.Text(bizWaID, "Hello")
	hook.Wait(30*time.Second, "the customer's message", func(ps []stack.Payload) bool { return stack.InboundIDs(ps)[inID] > 0 })

	objects := map[string]string{
		"location": `{"latitude":37.4847,"longitude":-122.1477,"name":"Acme HQ","address":"1 Hacker Way, Menlo Park"}`,
		"contacts": `[{"name":{"formatted_name":"Kerry Fisher","first_name":"Kerry","last_name":"Fisher"},"phones":[{"phone":"+1 555 123 4567","type":"CELL","wa_id":"15551234567"}],` +
			`"emails":[{"email":"kerry@example.com","type":"WORK"}],"addresses":[{"street":"1 Main St","city":"Springfield","country_code":"US","type":"HOME"}],` +
			`"org":{"company":"Acme","title":"Buyer"},"urls":[{"url":"https://example.com","type":"WORK"}],"birthday":"1990-05-17"}]`,
		"buttons": `{"type":"button","header":{"type":"text","text":"Your order"},"body":{"text":"Shall we ship today?"},"footer":{"text":"Acme Shop"},` +
			`"action":{"buttons":[{"type":"reply","reply":{"id":"ship-now","title":"Yes, ship it"}},{"type":"reply","reply":{"id":"ship-later","title":"Tomorrow"}}]}}`,
		"list": `{"type":"list","header":{"type":"text","text":"Sizes"},"body":{"text":"Pick a size"},"action":{"button":"Choose","sections":[` +
			`{"title":"Small","rows":[{"id":"xs","title":"XS","description":"extra small"},{"id":"s","title":"S"}]},` +
			`{"title":"Large","rows":[{"id":"l","title":"L","description":"large"}]}]}}`,
		"image header": `{"type":"button","header":{"type":"image","image":{"id":"` + imageID + `"}},"body":{"text":"Like it?"},"action":{"buttons":[{"type":"reply","reply":{"id":"like","title":"Like"}}]}}`,
		"reaction":     `{"message_id":"` + inID + `","emoji":"👍"}`,
		"unreaction":   `{"message_id":"` + inID + `","emoji":""}`,
	}
	typeOf := map[string]string{"location": "location", "contacts": "contacts", "buttons": "interactive", "list": "interactive", "image header": "interactive", "reaction": "reaction", "unreaction": "reaction"}
	order := []string{"location", "contacts", "buttons", "list", "image header", "reaction", "unreaction"}
	ids := map[string]string{}
	for _, name := range order {
		typ := typeOf[name]
		body := map[string]any{"to": customer, "type": typ, typ: json.RawMessage(objects[name])}
		if name == "location" {
			body["context"] = map[string]string{"message_id": inID}
		}
		ids[name] = send(t, s, tok, body)
	}

	// The phone shows each in the API's send shape.
	for _, name := range order {
		id := ids[name]
		e := phone.WaitFor(60*time.Second, name+" message", func(e waphone.Event) bool { return e.Event == "message" && e.ID == id })
		if e.Type != typeOf[name] || e.From != bizWaID {
			t.Errorf("%s: phone shows type %q from %s", name, e.Type, e.From)
		}
		b, _ := json.Marshal(e)
		var printed map[string]json.RawMessage
		json.Unmarshal(b, &printed)
		want := objects[name]
		if name == "image header" {
			// The header's file travelled encrypted: the phone shows what it
			// downloaded and verified instead of the media id.
			if e.File == "" || e.MimeType != "image/png" {
				t.Errorf("image header: phone file %q, type %q", e.File, e.MimeType)
			}
			var obj map[string]any
			json.Unmarshal(printed["interactive"], &obj)
			h := obj["header"].(map[string]any)["image"].(map[string]any)
			if h["mime_type"] != "image/png" || h["sha256"] != e.SHA256 || h["id"] != nil {
				t.Errorf("image header shown as %v", h)
			}
			continue
		}
		sameJSON(t, name+" on the phone", []byte(want), printed[typeOf[name]])
		if name == "location" && (e.Context == nil || e.Context.ID != inID) {
			t.Errorf("location: reply context %+v, want %s", e.Context, inID)
		}
	}

	// Statuses work for every type as for text: sent, delivered, and read
	// once the customer reads (after the delivered receipts: a read receipt
	// that overtakes one makes the delivered status moot, as on-prem says).
	hook.Wait(60*time.Second, "sent and delivered of every type", func(ps []stack.Payload) bool {
		for _, id := range ids {
			st := stack.StatusesOf(ps, id)
			if !slices.Contains(st, "sent") || !slices.Contains(st, "delivered") {
				return false
			}
		}
		return true
	})
	for _, name := range order {
		phone.Read(context.Background(), ids[name])
	}
	hook.Wait(60*time.Second, "sent, delivered and read of every type", func(ps []stack.Payload) bool {
		for _, id := range ids {
			st := stack.StatusesOf(ps, id)
			if !slices.Contains(st, "sent") || !slices.Contains(st, "delivered") || !slices.Contains(st, "read") {
				return false
			}
		}
		return true
	})

	// A reaction to a message that is not in the conversation fails with
	// 131009 and never reaches the phone.
	bad := send(t, s, tok, map[string]any{"to": customer, "type": "reaction", "reaction": map[string]string{"message_id": "wamid.NOT-HERE", "emoji": "😀"}})
	ps := hook.Wait(30*time.Second, "the failed reaction", func(ps []stack.Payload) bool { return slices.Contains(stack.StatusesOf(ps, bad), "failed") })
	for _, p := range ps {
		for _, st := range p.Statuses {
			if st.ID == bad && st.Status == "failed" && (len(st.Errors) != 1 || st.Errors[0].Code != 131009 || !strings.Contains(st.Errors[0].Details, "wamid.NOT-HERE")) {
				t.Errorf("failed reaction errors = %+v, want 131009", st.Errors)
			}
		}
	}

	// The customer answers.
	ctx := context.Background()
	must := func(id string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	tap := must(phone.Choose(ctx, ids["buttons"], "ship-now"))
	pick := must(phone.Choose(ctx, ids["list"], "3")) // the third row, by number
	loc := must(phone.Send(ctx, bizWaID, "location", json.RawMessage(`{"latitude":-33.8688,"longitude":151.2093,"name":"Sydney"}`), ids["location"], ""))
	card := must(phone.Send(ctx, bizWaID, "contacts", json.RawMessage(objects["contacts"]), "", ""))
	like := must(phone.Send(ctx, bizWaID, "reaction", json.RawMessage(`{"message_id":"`+ids["buttons"]+`","emoji":"❤️"}`), "", ""))
	unlike := must(phone.Send(ctx, bizWaID, "reaction", json.RawMessage(`{"message_id":"`+ids["buttons"]+`","emoji":""}`), "", ""))
	odd := must(phone.SendContent(ctx, bizWaID, &messagev1.Content{Body: &messagev1.Content_Extension{Extension: &messagev1.Extension{Type: "poll", Json: []byte(`{}`)}}}, ""))
	want := map[string]struct {
		typ, object, field string
		context            string
	}{
		tap:    {"interactive", `{"type":"button_reply","button_reply":{"id":"ship-now","title":"Yes, ship it"}}`, "interactive", ids["buttons"]},
		pick:   {"interactive", `{"type":"list_reply","list_reply":{"id":"l","title":"L","description":"large"}}`, "interactive", ids["list"]},
		loc:    {"location", `{"latitude":-33.8688,"longitude":151.2093,"name":"Sydney"}`, "location", ids["location"]},
		card:   {"contacts", objects["contacts"], "contacts", ""},
		like:   {"reaction", `{"message_id":"` + ids["buttons"] + `","emoji":"❤️"}`, "reaction", ""},
		unlike: {"reaction", `{"message_id":"` + ids["buttons"] + `","emoji":""}`, "reaction", ""},
		odd:    {"unknown", "", "", ""},
	}
	ps = hook.Wait(60*time.Second, "every inbound type", func(ps []stack.Payload) bool {
		got := stack.InboundIDs(ps)
		for id := range want {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	for _, p := range ps {
		for _, m := range p.Messages {
			w, ok := want[m.ID]
			if !ok {
				continue
			}
			if m.Type != w.typ || m.From != customer {
				t.Errorf("inbound %s: type %q from %s, want %q", m.ID, m.Type, m.From, w.typ)
				continue
			}
			var obj json.RawMessage
			switch w.field {
			case "interactive":
				obj = m.Interactive
			case "location":
				obj = m.Location
			case "contacts":
				obj = m.Contacts
			case "reaction":
				obj = m.Reaction
			}
			if w.field != "" {
				sameJSON(t, "inbound "+w.typ, []byte(w.object), obj)
			}
			if w.context != "" && (m.Context == nil || m.Context.ID != w.context || m.Context.From != bizWaID) {
				t.Errorf("inbound %s: context %+v, want {from %s id %s}", w.typ, m.Context, bizWaID, w.context)
			}
			if w.typ == "unknown" && (len(m.Errors) != 1 || m.Errors[0].Code != 501) {
				t.Errorf("unknown inbound: errors %+v, want 501", m.Errors)
			}
			if len(p.Contacts) == 0 || p.Contacts[0].WaID != customer {
				t.Errorf("inbound %s: contacts %+v", m.ID, p.Contacts)
			}
		}
	}
}
