package waphone_test

import (
	"encoding/json"
	"testing"

	"github.com/openwaba/openwaba/api/message"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// TestTemplateQuickReply: a phone shows a hydrated template message (the
// text the customer reads, its buttons) and taps a quick reply by number:
// the sender receives a button message with the template as context.
func TestTemplateQuickReply(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	shop := open(t, c.register(t, "15550005011", "Shop"), 0)
	ann := open(t, c.register(t, "15550005012", "Ann"), 0)
	shop.next(t, "ready", is("ready", "", ""))
	ann.next(t, "ready", is("ready", "", ""))

	tpl := &messagev1.Content{Body: &messagev1.Content_Template{Template: &messagev1.Template{Name: "order_update", Language: "en_US", TemplateId: "7",
		Hydrated: &messagev1.HydratedTemplate{HeaderType: "text", HeaderText: "Order 42", Body: "Hi Ann, your order shipped.", Footer: "Shop",
			Buttons: []*messagev1.HydratedButton{
				{Type: "url", Text: "Track", Url: "https://shop.example/t/42"},
				{Type: "quick_reply", Text: "Thanks", Payload: "THANKS"},
				{Type: "quick_reply", Text: "Stop", Payload: "STOP-42"},
			}}}}}
	id, err := shop.SendContent(t.Context(), ann.Number(), tpl, "")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := ann.next(t, "the template", is("message", id, ""))
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var shown struct {
		Type     string `json:"type"`
		Template struct {
			Header  struct{ Text string }
			Body    string
			Footer  string
			Buttons []struct{ Type, Text, Payload string }
		} `json:"template"`
	}
	if err := json.Unmarshal(b, &shown); err != nil {
		t.Fatal(err)
	}
	if shown.Type != "template" || shown.Template.Body != "Hi Ann, your order shipped." || shown.Template.Header.Text != "Order 42" ||
		shown.Template.Footer != "Shop" || len(shown.Template.Buttons) != 3 {
		t.Fatalf("the phone shows %s", b)
	}
	if term := message.Default.Terminal(got.Content); term != "*Order 42*\nHi Ann, your order shipped.\n_Shop_\n  [Track] https://shop.example/t/42\n  1) Thanks\n  2) Stop" {
		t.Errorf("terminal rendering = %q", term)
	}

	if _, err := ann.Choose(t.Context(), id, "3"); err == nil {
		t.Error("Choose accepted a third quick reply; the template has two")
	}
	tap, err := ann.Choose(t.Context(), id, "2")
	if err != nil {
		t.Fatal(err)
	}
	e, _ := shop.next(t, "the tap", is("message", tap, ""))
	if r := e.Content.GetButtonReply(); e.Type != "button" || r.GetPayload() != "STOP-42" || r.GetText() != "Stop" || e.Context == nil || e.Context.ID != id {
		t.Errorf("the shop received %+v (button %v), want the Stop button with the template as context", e, r)
	}
}
