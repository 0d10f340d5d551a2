package e2e

import (
	"testing"
	"time"

	"github.com/openwaba/openwaba/e2e/stack"
)

// TestErrorPaths checks the on-prem error envelope for failures decided in
// coreapp and carried back through gRPC and the webapp.
func TestErrorPaths(t *testing.T) {
	s := stack.New(t, stack.Options{})
	tok := s.Login()
	admin := bearer(tok)

	// Before any number is registered, sending is refused (service not ready).
	r := s.Do("POST", "/v1/messages", admin, map[string]any{"to": "15551234567", "text": map[string]any{"body": "hi"}})
	if r.Status != 400 || r.ErrorCode() != 1011 {
		t.Errorf("send before registration = %d %s, want 400/1011", r.Status, r.Raw)
	}
	// Verify without a pending registration.
	r = s.Do("POST", "/v1/account/verify", admin, map[string]string{"code": "123456"})
	if r.Status != 400 || r.ErrorCode() != 1006 {
		t.Errorf("verify with nothing pending = %d %s, want 400/1006", r.Status, r.Raw)
	}
	// A wrong code.
	r = s.Do("POST", "/v1/account", admin, map[string]string{"cc": bizCC, "phone_number": bizPhone, "method": "sms"})
	if r.Status != 202 {
		t.Fatalf("register = %d %s", r.Status, r.Raw)
	}
	code := s.SandboxCode(bizWaID)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	r = s.Do("POST", "/v1/account/verify", admin, map[string]string{"code": wrong})
	if r.Status != 400 || r.ErrorCode() != 1009 {
		t.Errorf("wrong code = %d %s, want 400/1009", r.Status, r.Raw)
	}
	r = s.Do("POST", "/v1/account/verify", admin, map[string]string{"code": code})
	if r.Status != 201 {
		t.Fatalf("verify = %d %s", r.Status, r.Raw)
	}
	s.WaitHealth(tok, "connected", 30*time.Second)

	for _, tt := range []struct {
		name         string
		method, path string
		auth         stack.Auth
		body         any
		status, code int
	}{
		{"settings unknown field", "PATCH", "/v1/settings/application", admin, map[string]any{"colour": "blue"}, 400, 1010},
		{"settings wrong type", "PATCH", "/v1/settings/application", admin, map[string]any{"callback_persist": "yes"}, 400, 1009},
		{"settings empty", "PATCH", "/v1/settings/application", admin, map[string]any{}, 400, 1008},
		{"settings http webhook", "PATCH", "/v1/settings/application", admin, map[string]any{"webhooks": map[string]any{"url": "http://hooks.example.com"}}, 400, 1009},
		{"settings bad concurrency", "PATCH", "/v1/settings/application", admin, map[string]any{"webhooks": map[string]any{"max_concurrent_requests": 5}}, 400, 1009},
		{"send to own number", "POST", "/v1/messages", admin, map[string]any{"to": bizWaID, "text": map[string]any{"body": "me"}}, 400, 1021},
		{"send too long", "POST", "/v1/messages", admin, map[string]any{"to": "15551234567", "text": map[string]any{"body": string(make([]byte, 4097))}}, 400, 1001},
		{"send without body", "POST", "/v1/messages", admin, map[string]any{"to": "15551234567", "type": "text"}, 400, 1008},
		{"send unknown field", "POST", "/v1/messages", admin, map[string]any{"to": "15551234567", "text": map[string]any{"body": "x"}, "colour": "red"}, 400, 1010},
		{"send group", "POST", "/v1/messages", admin, map[string]any{"to": "15551234567", "recipient_type": "group", "text": map[string]any{"body": "x"}}, 400, 1002},
		{"mark unknown read", "PUT", "/v1/messages/wamid.nope", admin, map[string]string{"status": "read"}, 404, 1006},
		{"no token", "GET", "/v1/settings/application", stack.Auth{}, nil, 401, 1005},
		{"garbage token", "GET", "/v1/settings/application", bearer("garbage"), nil, 401, 1005},
		{"unknown api key", "GET", "/v1/configs/phone_number", stack.Auth{APIKey: "nope"}, nil, 401, 1005},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := s.Do(tt.method, tt.path, tt.auth, tt.body)
			if r.Status != tt.status || r.ErrorCode() != tt.code {
				t.Errorf("%s %s = %d %s, want %d with error %d", tt.method, tt.path, r.Status, r.Raw, tt.status, tt.code)
			}
			if _, ok := r.Body["meta"]; !ok {
				t.Errorf("answer without meta: %s", r.Raw)
			}
		})
	}

	// A USER may send but not change settings (1005), and logout revokes.
	r = s.Do("POST", "/v1/users", admin, map[string]string{"username": "agent1", "password": "Agent-pass1"})
	if r.Status != 201 {
		t.Fatalf("create user = %d %s", r.Status, r.Raw)
	}
	r = s.Do("POST", "/v1/users/login", stack.Auth{Basic: [2]string{"agent1", "Agent-pass1"}}, nil)
	if r.Status != 200 {
		t.Fatalf("user login = %d %s", r.Status, r.Raw)
	}
	utok := r.Body["users"].([]any)[0].(map[string]any)["token"].(string)
	r = s.Do("PATCH", "/v1/settings/application", bearer(utok), map[string]any{"sent_status": true})
	if r.Status != 403 || r.ErrorCode() != 1005 {
		t.Errorf("USER changing settings = %d %s, want 403/1005", r.Status, r.Raw)
	}
	r = s.Do("POST", "/v1/messages", bearer(utok), map[string]any{"to": "15551234567", "text": map[string]any{"body": "from an agent"}})
	if r.Status != 201 {
		t.Errorf("USER sending = %d %s, want 201", r.Status, r.Raw)
	}
	if r = s.Do("POST", "/v1/users/logout", bearer(utok), nil); r.Status != 200 {
		t.Fatalf("logout = %d %s", r.Status, r.Raw)
	}
	r = s.Do("POST", "/v1/messages", bearer(utok), map[string]any{"to": "15551234567", "text": map[string]any{"body": "after logout"}})
	if r.Status != 401 {
		t.Errorf("send after logout = %d %s, want 401", r.Status, r.Raw)
	}

	// DELETE resets the settings to the defaults.
	if r = s.Do("PATCH", "/v1/settings/application", admin, map[string]any{"sent_status": true, "callback_backoff_delay_ms": 1234}); r.Status != 200 {
		t.Fatalf("PATCH = %d %s", r.Status, r.Raw)
	}
	if r = s.Do("DELETE", "/v1/settings/application", admin, nil); r.Status != 200 {
		t.Fatalf("DELETE settings = %d %s", r.Status, r.Raw)
	}
	r = s.Do("GET", "/v1/settings/application", admin, nil)
	app := r.Body["settings"].(map[string]any)["application"].(map[string]any)
	if app["sent_status"] != false || app["callback_backoff_delay_ms"] != float64(3000) || app["max_callback_backoff_delay_ms"] != float64(900000) {
		t.Errorf("settings after DELETE = %s, want the defaults", r.Raw)
	}

	// A retried send with the same X-Request-Id is sent once.
	hdr := stack.Auth{Bearer: tok, Header: map[string]string{"X-Request-Id": "retry-me-1"}}
	r1 := s.Do("POST", "/v1/messages", hdr, map[string]any{"to": "15551234567", "text": map[string]any{"body": "once"}})
	r2 := s.Do("POST", "/v1/messages", hdr, map[string]any{"to": "15551234567", "text": map[string]any{"body": "once"}})
	id1 := r1.Body["messages"].([]any)[0].(map[string]any)["id"]
	id2 := r2.Body["messages"].([]any)[0].(map[string]any)["id"]
	if r1.Status != 201 || r2.Status != 201 || id1 != id2 {
		t.Errorf("retried send: %d %v / %d %v, want the same id twice", r1.Status, id1, r2.Status, id2)
	}
}
