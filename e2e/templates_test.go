package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/api/message"
	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/e2e/stack"
)

const orderTemplate = `{"name":"order_update","language":"en_US","category":"UTILITY","components":[
 {"type":"HEADER","format":"TEXT","text":"Order {{1}}","example":{"header_text":["42"]}},
 {"type":"BODY","text":"Hi {{1}}, your order {{2}} ships on {{3}}.","example":{"body_text":[["Ann","42","Monday"]]}},
 {"type":"FOOTER","text":"Acme Shop"},
 {"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"Thanks"},{"type":"QUICK_REPLY","text":"Stop updates"},
  {"type":"URL","text":"Track","url":"https://shop.example/track/{{1}}","example":["https://shop.example/track/42"]}]}]}`

const promoTemplate = `{"name":"spring_sale","language":"en_US","category":"MARKETING","components":[
 {"type":"HEADER","format":"IMAGE","example":{"header_handle":["https://shop.example/sale.png"]}},
 {"type":"BODY","text":"Spring sale: {{1}} off everything!","example":{"body_text":[["20%"]]}}]}`

const reminderTemplate = `{"name":"appointment","language":"en","category":"UTILITY","components":[
 {"type":"BODY","text":"Your appointment is on {{1}} and costs {{2}}.","example":{"body_text":[["May 4","$20"]]}}]}`

// templateMessage is an on-prem template message to a customer.
func templateMessage(to, ns, name, lang string, components ...any) map[string]any {
	return map[string]any{"to": to, "type": "template", "template": map[string]any{
		"namespace": ns, "name": name, "language": map[string]string{"policy": "deterministic", "code": lang}, "components": components}}
}

func textParams(vs ...string) []any {
	var out []any
	for _, v := range vs {
		out = append(out, map[string]string{"type": "text", "text": v})
	}
	return out
}

// orderMessage sends order_update with its parameters.
func orderMessage(to, ns, name string) map[string]any {
	return templateMessage(to, ns, "order_update", "en_US",
		map[string]any{"type": "header", "parameters": textParams("42")},
		map[string]any{"type": "body", "parameters": []any{
			map[string]string{"type": "text", "text": name}, map[string]string{"type": "text", "text": "42"},
			map[string]any{"type": "date_time", "date_time": map[string]string{"fallback_value": "Monday, May 4"}}}},
		map[string]any{"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": []any{map[string]string{"type": "payload", "payload": "THANKS-42"}}},
		map[string]any{"type": "button", "sub_type": "quick_reply", "index": "1", "parameters": []any{map[string]string{"type": "payload", "payload": "STOP-42"}}},
		map[string]any{"type": "button", "sub_type": "url", "index": "2", "parameters": textParams("42")})
}

// failedWith waits for the failed status of id and returns its error code.
func failedWith(t *testing.T, hook *stack.Webhook, id string) int {
	t.Helper()
	ps := hook.Wait(30*time.Second, "failed status of "+id, func(ps []stack.Payload) bool { _, ok := stack.StatusOf(ps, id, "failed"); return ok })
	st, _ := stack.StatusOf(ps, id, "failed")
	if len(st.Errors) != 1 {
		t.Fatalf("failed status of %s has errors %+v", id, st.Errors)
	}
	if st.Conversation != nil || st.Pricing != nil {
		t.Errorf("failed status of %s carries a conversation: %+v", id, st)
	}
	return st.Errors[0].Code
}

// TestTemplates follows a number's templates through the stack: submitted
// (checked as Meta does) → PENDING → approved by the sandbox network →
// message_template_status_update webhook → sent with parameters → the phone
// shows the exact hydrated message; a quick-reply tap reaches the webhook
// as a button message; the legacy hsm form; the template errors; the
// 24-hour window (a text to a customer who never wrote fails 470, the
// customer writes, the clock moves 25 h on); conversation and pricing on
// the statuses; templates, namespace and window across a coreapp restart.
func TestTemplates(t *testing.T) {
	s := stack.New(t, stack.Options{ChatdEnv: map[string]string{"WA_SANDBOX_TEMPLATE_APPROVAL_DELAY": "1s"}})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	hook := stack.NewWebhook(t)
	if r := s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{
		"webhooks": map[string]any{"url": hook.URL, "message": map[string]bool{"sent": true, "delivered": true, "read": true}},
	}); r.Status != 200 {
		t.Fatalf("PATCH settings = %d %s", r.Status, r.Raw)
	}

	// Submissions are checked synchronously, as Meta checks them.
	for _, c := range []struct {
		body string
		code int
	}{
		{`{"name":"x","language":"en_US","category":"UTILITY"}`, 1008},
		{`{"name":"Has Spaces","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"x"}]}`, 1009},
		{`{"name":"x","language":"en_US","category":"SPAM","components":[{"type":"BODY","text":"x"}]}`, 1009},
		{`{"name":"x","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"Hi {{1}}"}]}`, 1008},
		{`{"name":"x","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"x"},{"type":"BUTTONS","buttons":[{"type":"URL","text":"a","url":"ftp://x"}]}]}`, 1009},
		{`{"name":"x","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"x"}],"extra":1}`, 1010},
	} {
		code, _, raw := s.Raw("POST", "/v1/configs/templates", bearer(tok), "application/json", []byte(c.body))
		if code != 400 || !strings.Contains(string(raw), fmt.Sprintf(`"code":%d`, c.code)) {
			t.Errorf("POST /v1/configs/templates %s = %d %s, want 400 with %d", c.body, code, raw, c.code)
		}
	}

	created := map[string]string{} // name → id
	for _, js := range []string{orderTemplate, promoTemplate, reminderTemplate} {
		code, _, raw := s.Raw("POST", "/v1/configs/templates", bearer(tok), "application/json", []byte(js))
		var body struct{ ID, Status, Category string }
		json.Unmarshal(raw, &body)
		if code != 201 || body.ID == "" || body.Status != "PENDING" || body.Category == "" {
			t.Fatalf("POST /v1/configs/templates = %d %s, want 201 {id, status PENDING, category}", code, raw)
		}
		var name struct{ Name string }
		json.Unmarshal([]byte(js), &name)
		created[name.Name] = body.ID
	}
	if code, _, raw := s.Raw("POST", "/v1/configs/templates", bearer(tok), "application/json", []byte(orderTemplate)); code != 409 || !strings.Contains(string(raw), `"code":1004`) {
		t.Errorf("the same name and language again = %d %s, want 409/1004", code, raw)
	}
	r := s.Do("GET", "/v1/configs/templates?status=pending", bearer(tok), nil)
	if r.Status != 200 || r.Body["count"] == nil {
		t.Fatalf("GET /v1/configs/templates?status=pending = %d %s", r.Status, r.Raw)
	}

	// The sandbox approves each after its review delay: one webhook each.
	ps := hook.Wait(30*time.Second, "three approvals", func(ps []stack.Payload) bool { ts, _ := stack.TemplateStatuses(ps); return len(ts) >= 3 })
	ts, entries := stack.TemplateStatuses(ps)
	for i, st := range ts {
		if st.Event != "APPROVED" || fmt.Sprint(st.ID) != created[st.Name] || st.Language == "" || st.Reason != "NONE" || entries[i] != bizWaID {
			t.Errorf("template status webhook %+v (entry %s), want APPROVED of one of %v", st, entries[i], created)
		}
	}

	// The list: filters, paging, the namespace on every record.
	r = s.Do("GET", "/v1/configs/templates", bearer(tok), nil)
	var list struct {
		Count, Total, Limit, Offset int
		Namespace                   string
		Templates                   []struct {
			ID, Name, Language, Status, Category, Namespace string
			Components                                      []json.RawMessage
		} `json:"waba_templates"`
	}
	json.Unmarshal(r.Raw, &list)
	if r.Status != 200 || list.Count != 3 || list.Total != 3 || list.Namespace == "" || len(list.Templates) != 3 {
		t.Fatalf("GET /v1/configs/templates = %d %s", r.Status, r.Raw)
	}
	ns := list.Namespace
	for _, tpl := range list.Templates {
		if tpl.Status != "approved" || tpl.Namespace != ns || len(tpl.Components) == 0 || tpl.ID != created[tpl.Name] {
			t.Errorf("listed template %+v, want approved, namespace %s, its components", tpl, ns)
		}
	}
	for q, want := range map[string]int{"?name=order_update": 1, "?category=MARKETING": 1, "?language=en": 1, "?status=rejected": 0, "?limit=2": 2, "?limit=2&offset=2": 1} {
		r := s.Do("GET", "/v1/configs/templates"+q, bearer(tok), nil)
		if n, _ := r.Body["count"].(float64); r.Status != 200 || int(n) != want {
			t.Errorf("GET /v1/configs/templates%s = %d %s, want %d records", q, r.Status, r.Raw, want)
		}
	}
	for _, q := range []string{"?status=lost", "?limit=0", "?limit=1001", "?offset=-1", "?language=english"} {
		if r := s.Do("GET", "/v1/configs/templates"+q, bearer(tok), nil); r.Status != 400 || r.ErrorCode() != 1009 {
			t.Errorf("GET /v1/configs/templates%s = %d %s, want 400/1009", q, r.Status, r.Raw)
		}
	}

	// A customer who never wrote: a text fails 470, a template goes
	// through, hydrated.
	phone := s.NewPhone("15551234567", "Kerry Fisher")
	text := send(t, s, tok, map[string]any{"to": phone.Number(), "type": "text", "text": map[string]any{"body": "hello?"}})
	if code := failedWith(t, hook, text); code != 470 {
		t.Errorf("a text to a customer who never wrote failed with %d, want 470", code)
	}
	orderID := send(t, s, tok, orderMessage(phone.Number(), ns, "Kerry"))
	got := phone.WaitFor(30*time.Second, "the template", func(e waphone.Event) bool { return e.Event == "message" && e.ID == orderID })
	wantShown := "*Order 42*\nHi Kerry, your order 42 ships on Monday, May 4.\n_Acme Shop_\n  1) Thanks\n  2) Stop updates\n  [Track] https://shop.example/track/42"
	if got.Type != "template" || got.From != bizWaID || terminal(got) != wantShown {
		t.Errorf("the phone shows %s %q, want the template\n%s", got.Type, terminal(got), wantShown)
	}
	ps = hook.Wait(30*time.Second, "sent and delivered", func(ps []stack.Payload) bool {
		st := strings.Join(stack.StatusesOf(ps, orderID), ",")
		return strings.Contains(st, "sent") && strings.Contains(st, "delivered")
	})
	sent, _ := stack.StatusOf(ps, orderID, "sent")
	delivered, _ := stack.StatusOf(ps, orderID, "delivered")
	for _, st := range []stack.Status{sent, delivered} {
		c, p := st.Conversation, st.Pricing
		if c == nil || p == nil || len(c.ID) != 32 || c.Origin.Type != "utility" || p.Category != "utility" || !p.Billable || p.PricingModel != "CBP" {
			t.Fatalf("%s status of the template = %+v / %+v, want a utility conversation and its pricing", st.Status, c, p)
		}
		if d := c.ExpirationTimestamp - time.Now().Unix(); d < 86000 || d > 86410 {
			t.Errorf("%s status: conversation expires in %ds, want 24h", st.Status, d)
		}
	}
	if sent.Conversation.ID != delivered.Conversation.ID {
		t.Errorf("sent and delivered name conversations %s and %s", sent.Conversation.ID, delivered.Conversation.ID)
	}
	conv := sent.Conversation.ID

	// The customer taps "Stop updates": a button message with the template
	// as its context; now free-form goes, and joins the conversation.
	tap, err := phone.Choose(t.Context(), orderID, "Stop updates")
	if err != nil {
		t.Fatal(err)
	}
	ps = hook.Wait(30*time.Second, "the tap", func(ps []stack.Payload) bool { return stack.InboundIDs(ps)[tap] > 0 })
	for _, p := range ps {
		for _, m := range p.Messages {
			if m.ID == tap && (m.Type != "button" || string(m.Button) != `{"payload":"STOP-42","text":"Stop updates"}` || m.Context == nil || m.Context.ID != orderID) {
				t.Errorf("the tap reached the webhook as %s %s (context %+v), want a button with payload STOP-42 and the template as context", m.Type, m.Button, m.Context)
			}
		}
	}
	phone.WaitFor(30*time.Second, "the tap delivered", func(e waphone.Event) bool { return e.Event == "receipt" && e.ID == tap && e.Status == "delivered" })
	reply := send(t, s, tok, map[string]any{"to": phone.Number(), "type": "text", "text": map[string]any{"body": "Done, no more updates."}})
	phone.WaitFor(30*time.Second, "the reply", func(e waphone.Event) bool { return e.Event == "message" && e.ID == reply })
	ps = hook.Wait(30*time.Second, "the reply sent", func(ps []stack.Payload) bool { _, ok := stack.StatusOf(ps, reply, "sent"); return ok })
	if st, _ := stack.StatusOf(ps, reply, "sent"); st.Conversation == nil || st.Conversation.ID != conv || st.Conversation.ExpirationTimestamp != 0 {
		t.Errorf("the free-form reply's conversation = %+v, want %s (joined: no expiration)", st.Conversation, conv)
	}

	// An image header (by media id) and the legacy hsm form.
	img := randomFile(20_000)
	mediaID := s.Upload(bearer(tok), "image/png", img)
	promo := send(t, s, tok, templateMessage(phone.Number(), ns, "spring_sale", "en_US",
		map[string]any{"type": "header", "parameters": []any{map[string]any{"type": "image", "image": map[string]string{"id": mediaID}}}},
		map[string]any{"type": "body", "parameters": textParams("30%")}))
	e := phone.WaitFor(60*time.Second, "the promo", func(e waphone.Event) bool { return e.Event == "message" && e.ID == promo })
	if file, err := os.ReadFile(e.File); err != nil || sha(file) != sha(img) || terminal(e) != "[image header]\nSpring sale: 30% off everything!" {
		t.Errorf("the promo shows %q with header file %q (%v), want the image and the body", terminal(e), e.File, err)
	}
	hsm := send(t, s, tok, map[string]any{"to": phone.Number(), "type": "hsm", "hsm": map[string]any{
		"namespace": ns, "element_name": "appointment", "language": map[string]string{"policy": "deterministic", "code": "en"},
		"localizable_params": []any{map[string]string{"default": "May 4"},
			map[string]any{"default": "$20.00", "currency": map[string]any{"currency_code": "USD", "amount_1000": 20000}}}}})
	if e := phone.WaitFor(30*time.Second, "the hsm", func(e waphone.Event) bool { return e.Event == "message" && e.ID == hsm }); terminal(e) != "Your appointment is on May 4 and costs $20.00." {
		t.Errorf("the hsm shows %q", terminal(e))
	}
	ps = hook.Wait(30*time.Second, "the promo sent", func(ps []stack.Payload) bool { _, ok := stack.StatusOf(ps, promo, "sent"); return ok })
	if st, _ := stack.StatusOf(ps, promo, "sent"); st.Conversation == nil || st.Conversation.Origin.Type != "marketing" || st.Conversation.ID == conv {
		t.Errorf("the marketing template's conversation = %+v, want a new marketing one", st.Conversation)
	}

	// The template errors, as failed statuses.
	s.Sandbox("POST", "/sandbox/templates/"+created["spring_sale"]+"/status", map[string]string{"status": "PAUSED", "reason": "LOW_QUALITY"})
	s.Sandbox("POST", "/sandbox/templates/"+created["appointment"]+"/status", map[string]string{"status": "REJECTED", "reason": "INVALID_FORMAT"})
	hook.Wait(30*time.Second, "the paused and rejected webhooks", func(ps []stack.Payload) bool {
		ts, _ := stack.TemplateStatuses(ps)
		var evs []string
		for _, st := range ts {
			evs = append(evs, st.Event+" "+st.Name+" "+st.Reason)
		}
		return slices.Contains(evs, "PAUSED spring_sale LOW_QUALITY") && slices.Contains(evs, "REJECTED appointment INVALID_FORMAT")
	})
	long := strings.Repeat("x", 1025)
	for what, c := range map[string]struct {
		body map[string]any
		code int
	}{
		"unknown name":         {templateMessage(phone.Number(), ns, "no_such_template", "en_US"), 2001},
		"unknown language":     {templateMessage(phone.Number(), ns, "order_update", "de"), 2003},
		"wrong namespace":      {templateMessage(phone.Number(), "not_the_namespace", "order_update", "en_US"), 2001},
		"missing parameters":   {templateMessage(phone.Number(), ns, "order_update", "en_US", map[string]any{"type": "body", "parameters": textParams("Kerry")}), 2000},
		"parameter too long":   {orderMessage(phone.Number(), ns, long), 2004},
		"rejected":             {templateMessage(phone.Number(), ns, "appointment", "en", map[string]any{"type": "body", "parameters": textParams("a", "b")}), 2060},
		"paused":               {templateMessage(phone.Number(), ns, "spring_sale", "en_US", map[string]any{"type": "body", "parameters": textParams("1%")}), 2061},
		"header of wrong type": {templateMessage(phone.Number(), ns, "order_update", "en_US", map[string]any{"type": "header", "parameters": []any{map[string]any{"type": "image", "image": map[string]string{"id": mediaID}}}}, map[string]any{"type": "body", "parameters": textParams("a", "b", "c")}), 2012},
	} {
		id := send(t, s, tok, c.body)
		if code := failedWith(t, hook, id); code != c.code {
			t.Errorf("%s: failed with %d, want %d", what, code, c.code)
		}
	}
	// A template message without its namespace is refused at once.
	if r := s.Do("POST", "/v1/messages", bearer(tok), templateMessage(phone.Number(), "", "order_update", "en_US")); r.Status != 400 || r.ErrorCode() != 2014 {
		t.Errorf("a template without namespace = %d %s, want 400/2014", r.Status, r.Raw)
	}

	// 25 hours later the window has closed: a text fails 470, a template
	// opens a new conversation.
	if code, body := s.Sandbox("POST", "/sandbox/clock", map[string]string{"advance": "25h"}); code != 200 || body["offset"] != "25h0m0s" {
		t.Fatalf("POST /sandbox/clock = %d %v", code, body)
	}
	late := send(t, s, tok, map[string]any{"to": phone.Number(), "type": "text", "text": map[string]any{"body": "still there?"}})
	if code := failedWith(t, hook, late); code != 470 {
		t.Errorf("a text 25 h after the customer wrote failed with %d, want 470", code)
	}
	again := send(t, s, tok, orderMessage(phone.Number(), ns, "Kerry"))
	ps = hook.Wait(30*time.Second, "the late template sent", func(ps []stack.Payload) bool { _, ok := stack.StatusOf(ps, again, "sent"); return ok })
	if st, _ := stack.StatusOf(ps, again, "sent"); st.Conversation == nil || st.Conversation.ID == conv || st.Conversation.ExpirationTimestamp == 0 {
		t.Errorf("the template after 25 h: conversation %+v, want a new one", st.Conversation)
	}

	// A coreapp restart: templates, namespace and window come back.
	s.Coreapp.Stop()
	s.RestartCoreapp()
	s.WaitHealth(tok, "connected", 30*time.Second)
	r = s.Do("GET", "/v1/configs/templates?name=order_update", bearer(tok), nil)
	json.Unmarshal(r.Raw, &list)
	if r.Status != 200 || list.Namespace != ns || len(list.Templates) != 1 || list.Templates[0].Status != "approved" {
		t.Errorf("templates after the restart = %d %s", r.Status, r.Raw)
	}
	after := send(t, s, tok, map[string]any{"to": phone.Number(), "type": "text", "text": map[string]any{"body": "after the restart"}})
	if code := failedWith(t, hook, after); code != 470 {
		t.Errorf("a text after the restart failed with %d, want 470 (the window stays closed)", code)
	}
	tpl := send(t, s, tok, orderMessage(phone.Number(), ns, "Kerry"))
	phone.WaitFor(30*time.Second, "a template after the restart", func(e waphone.Event) bool { return e.Event == "message" && e.ID == tpl })

	// The customer writes again: free-form goes.
	phone.OpenWindow(bizWaID)
	back := send(t, s, tok, map[string]any{"to": phone.Number(), "type": "text", "text": map[string]any{"body": "welcome back"}})
	phone.WaitFor(30*time.Second, "the text in the new window", func(e waphone.Event) bool { return e.Event == "message" && e.ID == back })
	if code, body := s.Sandbox("DELETE", "/sandbox/clock", nil); code != 200 || body["offset_seconds"] != float64(0) {
		t.Errorf("DELETE /sandbox/clock = %d %v", code, body)
	}

	// Delete: one language, then the rest; the list follows.
	if r := s.Do("DELETE", "/v1/configs/templates/appointment?language=de", bearer(tok), nil); r.Status != 404 || r.ErrorCode() != 1006 {
		t.Errorf("DELETE of a language the template lacks = %d %s, want 404/1006", r.Status, r.Raw)
	}
	if r := s.Do("DELETE", "/v1/configs/templates/appointment?language=en", bearer(tok), nil); r.Status != 200 || r.Body["success"] != true {
		t.Errorf("DELETE /v1/configs/templates/appointment?language=en = %d %s", r.Status, r.Raw)
	}
	if r := s.Do("DELETE", "/v1/configs/templates/"+url.PathEscape("spring_sale"), bearer(tok), nil); r.Status != 200 {
		t.Errorf("DELETE /v1/configs/templates/spring_sale = %d %s", r.Status, r.Raw)
	}
	r = s.Do("GET", "/v1/configs/templates", bearer(tok), nil)
	if n, _ := r.Body["total"].(float64); n != 1 {
		t.Errorf("templates after the deletes = %s, want order_update alone", r.Raw)
	}
}

// terminal is how a phone prints a received message.
func terminal(e waphone.Event) string {
	if e.Content == nil {
		return e.Text
	}
	return message.Default.Terminal(e.Content)
}
