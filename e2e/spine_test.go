package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/e2e/stack"
)

func TestMain(m *testing.M) { stack.Main(m) }

const (
	bizCC    = "1"
	bizPhone = "5550100"
	bizWaID  = bizCC + bizPhone
)

func bearer(tok string) stack.Auth { return stack.Auth{Bearer: tok} }

// TestSpine walks the whole flow of a business: log in, register the number,
// set the webhook, receive a customer's message, reply, get the statuses,
// mark read, check contacts, mint and use an API key.
func TestSpine(t *testing.T) {
	s := stack.New(t, stack.Options{})

	// Health before registration.
	tok := s.Login()
	r := s.Do("GET", "/v1/health", bearer(tok), nil)
	if r.Status != 200 || r.Body["health"].(map[string]any)["gateway_status"] != "unregistered" {
		t.Fatalf("health before registration = %d %s, want unregistered", r.Status, r.Raw)
	}

	// Registration: 202, code from the sandbox, 201; again: 201 at once.
	s.Register(tok, bizCC, bizPhone)
	r = s.Do("POST", "/v1/account", bearer(tok), map[string]string{"cc": bizCC, "phone_number": bizPhone, "method": "sms"})
	if r.Status != 201 {
		t.Fatalf("registering a registered number = %d %s, want 201", r.Status, r.Raw)
	}
	s.WaitHealth(tok, "connected", 30*time.Second)

	// Webhook via settings; every status on.
	hook := stack.NewWebhook(t)
	r = s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{
		"webhooks": map[string]any{"url": hook.URL, "message": map[string]bool{"sent": true, "delivered": true, "read": true}},
	})
	if r.Status != 200 {
		t.Fatalf("PATCH settings = %d %s", r.Status, r.Raw)
	}
	r = s.Do("GET", "/v1/settings/application", bearer(tok), nil)
	app := r.Body["settings"].(map[string]any)["application"].(map[string]any)
	if app["webhooks"].(map[string]any)["url"] != hook.URL || app["wa_id"] != bizWaID {
		t.Fatalf("GET settings = %s", r.Raw)
	}

	// A customer writes: the webhook gets the on-prem inbound payload.
	phone := s.NewPhone("15551234567", "Kerry Fisher")
	inID := phone.Text(bizWaID, "Hello business")
	ps := hook.Wait(30*time.Second, "inbound message", func(ps []stack.Payload) bool { return stack.InboundIDs(ps)[inID] > 0 })
	var got bool
	for _, p := range ps {
		for _, m := range p.Messages {
			if m.ID != inID {
				continue
			}
			got = true
			if m.From != "15551234567" || m.Type != "text" || m.Text == nil || m.Text.Body != "Hello business" || m.Timestamp == "" {
				t.Errorf("inbound message = %+v", m)
			}
			if len(p.Contacts) != 1 || p.Contacts[0].WaID != "15551234567" || p.Contacts[0].Profile.Name != "Kerry Fisher" {
				t.Errorf("inbound contacts = %+v", p.Contacts)
			}
		}
	}
	if !got {
		t.Fatal("inbound message missing")
	}
	// The phone sees its message delivered (coreapp sends the receipt).
	phone.WaitFor(10*time.Second, "delivered receipt", func(e waphone.Event) bool {
		return e.Event == "receipt" && e.ID == inID && e.Status == "delivered"
	})

	// The business replies, quoting the message.
	r = s.Do("POST", "/v1/messages", bearer(tok), map[string]any{
		"to": "+1 555 123 4567", "type": "text", "recipient_type": "individual",
		"text": map[string]any{"body": "Hi Kerry, how can we help?"}, "preview_url": false,
		"context": map[string]string{"message_id": inID},
	})
	if r.Status != 201 {
		t.Fatalf("POST /v1/messages = %d %s", r.Status, r.Raw)
	}
	outID := r.Body["messages"].([]any)[0].(map[string]any)["id"].(string)
	msg := phone.WaitFor(30*time.Second, "the reply", func(e waphone.Event) bool { return e.Event == "message" && e.ID == outID })
	if msg.Text != "Hi Kerry, how can we help?" || msg.From != bizWaID || msg.Context == nil || msg.Context.ID != inID || msg.Name != "Acme Shop" {
		t.Errorf("phone got %+v", msg)
	}

	// Statuses: sent, delivered, then read after the phone reads it.
	hook.Wait(30*time.Second, "sent and delivered", func(ps []stack.Payload) bool {
		st := strings.Join(stack.StatusesOf(ps, outID), ",")
		return strings.Contains(st, "sent") && strings.Contains(st, "delivered")
	})
	if err := phone.Read(t.Context(), outID); err != nil {
		t.Fatal(err)
	}
	ps = hook.Wait(30*time.Second, "read", func(ps []stack.Payload) bool {
		return strings.Contains(strings.Join(stack.StatusesOf(ps, outID), ","), "read")
	})
	for _, p := range ps {
		for _, st := range p.Statuses {
			if st.ID == outID && (st.RecipientID != "15551234567" || st.Timestamp == "") {
				t.Errorf("status = %+v", st)
			}
		}
	}

	// The business marks the customer's message read: the phone sees it.
	r = s.Do("PUT", "/v1/messages/"+inID, bearer(tok), map[string]string{"status": "read"})
	if r.Status != 200 {
		t.Fatalf("PUT /v1/messages/{id} = %d %s", r.Status, r.Raw)
	}
	phone.WaitFor(30*time.Second, "read receipt", func(e waphone.Event) bool {
		return e.Event == "receipt" && e.ID == inID && e.Status == "read"
	})
	r = s.Do("PUT", "/v1/messages/wamid.unknown", bearer(tok), map[string]string{"status": "read"})
	if r.Status != 404 || r.ErrorCode() != 1006 {
		t.Errorf("mark read of an unknown id = %d %s, want 404/1006", r.Status, r.Raw)
	}

	// Contacts: registered numbers are valid with their wa_id, others invalid.
	r = s.Do("POST", "/v1/contacts", bearer(tok), map[string]any{"blocking": "wait", "contacts": []string{"+1 (555) 123-4567", "15559999999", "not a number"}})
	if r.Status != 200 {
		t.Fatalf("POST /v1/contacts = %d %s", r.Status, r.Raw)
	}
	cs := r.Body["contacts"].([]any)
	want := []struct{ input, status, waID string }{{"+1 (555) 123-4567", "valid", "15551234567"}, {"15559999999", "invalid", ""}, {"not a number", "invalid", ""}}
	for i, w := range want {
		c := cs[i].(map[string]any)
		if c["input"] != w.input || c["status"] != w.status || (w.waID != "" && c["wa_id"] != w.waID) {
			t.Errorf("contacts[%d] = %v, want %+v", i, c, w)
		}
	}

	// A message to a number that is not on the network fails asynchronously.
	r = s.Do("POST", "/v1/messages", bearer(tok), map[string]any{"to": "15559999999", "type": "text", "text": map[string]any{"body": "anyone?"}})
	if r.Status != 201 {
		t.Fatalf("POST /v1/messages to a stranger = %d %s", r.Status, r.Raw)
	}
	badID := r.Body["messages"].([]any)[0].(map[string]any)["id"].(string)
	ps = hook.Wait(30*time.Second, "failed status", func(ps []stack.Payload) bool {
		return strings.Contains(strings.Join(stack.StatusesOf(ps, badID), ","), "failed")
	})
	for _, p := range ps {
		for _, st := range p.Statuses {
			if st.ID == badID && st.Status == "failed" && (len(st.Errors) != 1 || st.Errors[0].Code != 1013) {
				t.Errorf("failed status = %+v, want error 1013", st)
			}
		}
	}

	// API keys: mint, use for a send, list, revoke.
	r = s.Do("POST", "/v1/account/api_keys", bearer(tok), nil)
	if r.Status != 201 {
		t.Fatalf("POST /v1/account/api_keys = %d %s", r.Status, r.Raw)
	}
	k := r.Body["api_keys"].([]any)[0].(map[string]any)
	key, prefix := k["key"].(string), k["prefix"].(string)
	r = s.Do("POST", "/v1/messages", stack.Auth{APIKey: key}, map[string]any{"to": "15551234567", "type": "text", "text": map[string]any{"body": "sent with an API key"}})
	if r.Status != 201 {
		t.Fatalf("send with API key = %d %s", r.Status, r.Raw)
	}
	keyMsg := r.Body["messages"].([]any)[0].(map[string]any)["id"].(string)
	phone.WaitFor(30*time.Second, "API-key message", func(e waphone.Event) bool { return e.Event == "message" && e.ID == keyMsg })
	r = s.Do("GET", "/v1/configs/phone_number", stack.Auth{APIKey: key}, nil)
	if r.Status != 200 || r.Body["phone_number"] != bizWaID {
		t.Errorf("GET /v1/configs/phone_number = %d %s", r.Status, r.Raw)
	}
	r = s.Do("GET", "/v1/account/api_keys", bearer(tok), nil)
	if r.Status != 200 || !strings.Contains(string(r.Raw), prefix) || strings.Contains(string(r.Raw), key) {
		t.Errorf("GET /v1/account/api_keys = %d %s (must list the prefix, never the key)", r.Status, r.Raw)
	}
	r = s.Do("DELETE", "/v1/account/api_keys/"+prefix, bearer(tok), nil)
	if r.Status != 200 {
		t.Fatalf("DELETE api key = %d %s", r.Status, r.Raw)
	}
	r = s.Do("GET", "/v1/configs/phone_number", stack.Auth{APIKey: key}, nil)
	if r.Status != 401 {
		t.Errorf("revoked API key = %d %s, want 401", r.Status, r.Raw)
	}

	// Every message id the phone saw, it saw once.
	phone.Messages()
}

// TestWebhookConfigAndHeaders covers 360dialog's /v1/configs/webhook: the
// headers set there go out with every webhook, and the API key works.
func TestWebhookConfigAndHeaders(t *testing.T) {
	s := stack.New(t, stack.Options{})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	r := s.Do("POST", "/v1/account/api_keys", bearer(tok), nil)
	key := r.Body["api_keys"].([]any)[0].(map[string]any)["key"].(string)
	hook := stack.NewWebhook(t)

	r = s.Do("POST", "/v1/configs/webhook", stack.Auth{APIKey: key}, map[string]any{"url": hook.URL, "headers": map[string]string{"X-Tenant": "acme-42"}})
	if r.Status != 200 || r.Body["url"] != hook.URL {
		t.Fatalf("POST /v1/configs/webhook = %d %s", r.Status, r.Raw)
	}
	r = s.Do("GET", "/v1/configs/webhook", bearer(tok), nil)
	if r.Status != 200 || r.Body["url"] != hook.URL {
		t.Fatalf("GET /v1/configs/webhook = %d %s", r.Status, r.Raw)
	}
	r = s.Do("POST", "/v1/configs/webhook", stack.Auth{APIKey: key}, map[string]any{"url": "http://example.com/hook"})
	if r.Status != 400 || r.ErrorCode() != 1009 {
		t.Errorf("plain http to a public host = %d %s, want 400/1009", r.Status, r.Raw)
	}

	phone := s.NewPhone("15551234567", "Kerry")
	id := phone.Text(bizWaID, "hi")
	hook.Wait(30*time.Second, "message", func(ps []stack.Payload) bool { return stack.InboundIDs(ps)[id] > 0 })
	for _, h := range hook.Headers() {
		if h.Get("X-Tenant") != "acme-42" || h.Get("Content-Type") != "application/json" {
			t.Errorf("webhook headers = %v", h)
		}
	}
}

// TestHealthAuth covers the monitoring key and the gateway states.
func TestHealthAuth(t *testing.T) {
	s := stack.New(t, stack.Options{})
	mon := stack.Auth{Header: map[string]string{"Authorization": "Apikey monitoring-key-0123456789"}}
	r := s.Do("GET", "/v1/health", mon, nil)
	if r.Status != 200 || r.Body["health"].(map[string]any)["gateway_status"] != "unregistered" {
		t.Fatalf("health with Apikey = %d %s", r.Status, r.Raw)
	}
	r = s.Do("GET", "/v1/health", stack.Auth{Header: map[string]string{"Authorization": "Apikey wrong-key-0123456789"}}, nil)
	if r.Status != 401 {
		t.Errorf("health with a wrong Apikey = %d, want 401", r.Status)
	}
	r = s.Do("GET", "/v1/settings/application", mon, nil)
	if r.Status != 401 {
		t.Errorf("settings with the monitoring key = %d, want 401", r.Status)
	}
	r = s.Do("GET", "/v1/health", stack.Auth{}, nil)
	if r.Status != 401 {
		t.Errorf("health without auth = %d, want 401", r.Status)
	}

	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	s.Chatd.Stop()
	s.WaitHealth(tok, "disconnected", 30*time.Second)
	s.StartChatd()
	s.WaitHealth(tok, "connected", 30*time.Second)
}

// TestWaphoneBinary drives the waphone command in --json mode, as a
// developer would from a script: register, receive, send, read.
func TestWaphoneBinary(t *testing.T) {
	s := stack.New(t, stack.Options{})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	hook := stack.NewWebhook(t)
	s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{"webhooks": map[string]any{"url": hook.URL}})

	home := t.TempDir()
	network := strings.Join(s.ChatAddrs(), ",")
	out, err := exec.Command(s.Bins.Path("waphone"), "--network", network, "--admin", s.AdminAddr(), "--home", home, "register", "15557654321", "--name", "Jo").CombinedOutput()
	if err != nil {
		t.Fatalf("waphone register: %v\n%s", err, out)
	}
	cmd := exec.Command(s.Bins.Path("waphone"), "--home", home, "--json")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	lines := stack.NewLineReader(t, cmd)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	lines.WaitFor(30*time.Second, `"event":"ready"`)

	// The customer writes first (the business may answer within 24 hours).
	stdin.Write([]byte(`{"cmd":"send","to":"` + bizWaID + `","text":"hi!","id":"3EB0CLIENTCHOSEN01"}` + "\n"))
	lines.WaitFor(30*time.Second, `"event":"receipt","id":"3EB0CLIENTCHOSEN01"`)
	hook.Wait(30*time.Second, "the phone's message", func(ps []stack.Payload) bool { return stack.InboundIDs(ps)["3EB0CLIENTCHOSEN01"] > 0 })
	lines.WaitFor(30*time.Second, `"id":"3EB0CLIENTCHOSEN01","from":"`+bizWaID+`","timestamp"`)

	r := s.Do("POST", "/v1/messages", bearer(tok), map[string]any{"to": "15557654321", "text": map[string]any{"body": "hello from the business"}})
	if r.Status != 201 {
		t.Fatalf("send = %d %s", r.Status, r.Raw)
	}
	id := r.Body["messages"].([]any)[0].(map[string]any)["id"].(string)
	lines.WaitFor(30*time.Second, `"event":"message","id":"`+id+`","from":"`+bizWaID+`","type":"text","text":"hello from the business"`)

	stdin.Write([]byte(`{"cmd":"read","id":"` + id + `"}` + "\n"))
	hook.Wait(30*time.Second, "read status", func(ps []stack.Payload) bool {
		return strings.Contains(strings.Join(stack.StatusesOf(ps, id), ","), "read")
	})
	stdin.Write([]byte("not json\n"))
	lines.WaitFor(10*time.Second, `"event":"error"`)
}
