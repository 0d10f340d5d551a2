package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/e2e/stack"
)

// TestMessageGC: PUT /v1/services/message/gc removes the finished messages
// older than the retention (aged here in the database), in both
// directions, and keeps the recent ones and those still on their way; the
// webhook reports how many went, and a removed inbound message is then
// unknown to PUT /v1/messages/{id}.
func TestMessageGC(t *testing.T) {
	s, tok, hook := encStack(t, stack.Options{})
	phone := s.NewPhone("15551230001", "Gus")
	in := phone.OpenWindow(bizCC + bizPhone)
	old := sendOne(t, s, tok, phone.Number(), "old news")
	awaitMessage(t, phone, old)
	hook.Wait(30*time.Second, "delivered "+old, func(ps []stack.Payload) bool {
		for _, p := range ps {
			for _, st := range p.Statuses {
				if st.ID == old && st.Status == "delivered" {
					return true
				}
			}
		}
		return false
	})
	d := dbtest.Open(t, s.CoreDB)
	aged := time.Now().Add(-31 * 24 * time.Hour).UnixMilli()
	if _, err := d.Exec("UPDATE outbound_messages SET created_at = ?, updated_at = ? WHERE id = ?", aged, aged, old); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec("UPDATE inbound_messages SET created_at = ? WHERE id = ?", aged, in); err != nil {
		t.Fatal(err)
	}
	recent := sendOne(t, s, tok, phone.Number(), "fresh news")
	awaitMessage(t, phone, recent)

	r := s.Do("PUT", "/v1/services/message/gc", bearer(tok), nil)
	if r.Status != 200 || !strings.Contains(string(r.Raw), `{"services":{"message":{"gc":{"status":"processing"}}}`) {
		t.Fatalf("PUT /v1/services/message/gc = %d %s", r.Status, r.Raw)
	}
	hook.Wait(30*time.Second, "message gc report", func(ps []stack.Payload) bool {
		for _, p := range ps {
			for _, sv := range p.Services {
				if sv.Message != nil && sv.Message.GC.Status == "complete" {
					if sv.Message.GC.MessagesDeleted != 2 {
						t.Errorf("messages_deleted = %d, want 2 (one each way)", sv.Message.GC.MessagesDeleted)
					}
					return true
				}
			}
		}
		return false
	})
	var n int
	if err := d.QueryRow("SELECT COUNT(*) FROM outbound_messages WHERE id IN (?, ?)", old, recent).Scan(&n); err != nil || n != 1 {
		t.Errorf("outbound rows of the old and the recent message = %d (%v), want only the recent one", n, err)
	}
	if r := s.Do("PUT", "/v1/messages/"+in, bearer(tok), map[string]any{"status": "read"}); r.Status != 404 {
		t.Errorf("mark a collected message read = %d %s, want 404", r.Status, r.Raw)
	}
	// The number keeps working.
	again := sendOne(t, s, tok, phone.Number(), "still here")
	awaitMessage(t, phone, again)
}

// TestSupport: GET /v1/support describes the deployment (versions, nodes,
// numbers, schema) for an admin, with the webhook's secrets masked.
func TestSupport(t *testing.T) {
	s, tok, hook := encStack(t, stack.Options{})
	if r := s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{
		"webhooks": map[string]any{"url": hook.URL + "?token=hunter2", "headers": map[string]string{"X-Auth": "hunter3"}},
	}); r.Status != 200 {
		t.Fatalf("PATCH settings = %d %s", r.Status, r.Raw)
	}
	r := s.Do("GET", "/v1/support", bearer(tok), nil)
	if r.Status != 200 {
		t.Fatalf("GET /v1/support = %d %s", r.Status, r.Raw)
	}
	if strings.Contains(string(r.Raw), "hunter2") || strings.Contains(string(r.Raw), "hunter3") {
		t.Errorf("the support report holds a webhook secret: %s", r.Raw)
	}
	info, _ := r.Body["support"].(map[string]any)
	text, _ := info["debug_info"].(string)
	for _, want := range []string{"webapp: v2.53.0-openwaba", "number " + bizCC + bizPhone + ": verified", "settings: sha256:"} {
		if !strings.Contains(text, want) {
			t.Errorf("debug_info lacks %q:\n%s", want, text)
		}
	}
	if dig(info, "coreapp", "schema_current") != true {
		t.Errorf("coreapp = %v, want the schema current", info["coreapp"])
	}
	nodes, _ := info["nodes"].([]any)
	if len(nodes) != 1 || dig(nodes[0].(map[string]any), "primary_master") != true || dig(nodes[0].(map[string]any), "chat_connected") != true {
		t.Errorf("nodes = %v, want this one node, master and connected", nodes)
	}
	if h := dig(info, "settings", "webhooks", "headers", "X-Auth"); h != "********" {
		t.Errorf("settings webhook header = %v, want it masked", h)
	}
	// Admin only, as on-prem.
	r = s.Do("POST", "/v1/account/api_keys", bearer(tok), nil)
	if r.Status != 201 {
		t.Fatalf("POST /v1/account/api_keys = %d %s", r.Status, r.Raw)
	}
	key := r.Body["api_keys"].([]any)[0].(map[string]any)["key"].(string)
	if r := s.Do("GET", "/v1/support", stack.Auth{APIKey: key}, nil); r.Status != 403 {
		t.Errorf("GET /v1/support with an API key = %d, want 403", r.Status)
	}
}

// hasInbound reports whether the webhook got message id.
func hasInbound(ps []stack.Payload, id string) bool {
	for _, p := range ps {
		for _, m := range p.Messages {
			if m.ID == id {
				return true
			}
		}
	}
	return false
}

// statusOf returns the webhook status of message id with status name.
func statusOf(ps []stack.Payload, id, name string) *stack.Status {
	for _, p := range ps {
		for i := range p.Statuses {
			if st := &p.Statuses[i]; st.ID == id && st.Status == name {
				return st
			}
		}
	}
	return nil
}

// TestBlockContact: 360dialog's block and unblock, enforced by the network:
// only a contact who wrote in the last 24 hours can be blocked; a blocked
// contact's messages never reach the business (the phone sees them sent,
// never delivered), and the business's messages to them fail with 1007;
// after the unblock both directions work again.
func TestBlockContact(t *testing.T) {
	s, tok, hook := encStack(t, stack.Options{})
	biz := bizCC + bizPhone
	phone := s.NewPhone("15551230002", "Hal")
	stranger := s.NewPhone("15551230003", "Ida")
	if r := s.Do("POST", "/v1/contacts/"+stranger.Number()+"/block", bearer(tok), nil); r.Status != 400 || r.ErrorCode() != 2048 {
		t.Errorf("block a contact who never wrote = %d %s, want 400 with 2048", r.Status, r.Raw)
	}
	first := phone.OpenWindow(biz)
	hook.Wait(30*time.Second, "the first message", func(ps []stack.Payload) bool { return hasInbound(ps, first) })
	if r := s.Do("POST", "/v1/contacts/+"+phone.Number()+"/block/", bearer(tok), map[string]any{"reason": "spam"}); r.Status != 200 || r.Body["errors"] != nil {
		t.Fatalf("block = %d %s", r.Status, r.Raw)
	}

	blocked := phone.Text(biz, "are you ignoring me?")
	out := sendOne(t, s, tok, phone.Number(), "hello while blocked")
	ps := hook.Wait(30*time.Second, "the failed status", func(ps []stack.Payload) bool { return statusOf(ps, out, "failed") != nil })
	if st := statusOf(ps, out, "failed"); len(st.Errors) != 1 || st.Errors[0].Code != 1007 {
		t.Errorf("failed status = %+v, want error 1007", st)
	}

	if r := s.Do("POST", "/v1/contacts/"+phone.Number()+"/unblock", bearer(tok), nil); r.Status != 200 {
		t.Fatalf("unblock = %d %s", r.Status, r.Raw)
	}
	after := phone.Text(biz, "back again")
	ps = hook.Wait(30*time.Second, "the message after the unblock", func(ps []stack.Payload) bool { return hasInbound(ps, after) })
	if hasInbound(ps, blocked) {
		t.Error("the message written while blocked reached the business")
	}
	for _, e := range phone.Events() {
		if e.Event == "receipt" && e.ID == blocked && e.Status == "delivered" {
			t.Error("the phone saw the message written while blocked delivered")
		}
	}
	again := sendOne(t, s, tok, phone.Number(), "welcome back")
	awaitMessage(t, phone, again)
}

// TestTwoStep: with two-step verification on, registering the number on
// another deployment (its own database and keys, the same network) needs
// the PIN; with it, the new deployment takes the number over and sends.
func TestTwoStep(t *testing.T) {
	s := stack.New(t, stack.Options{})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	if r := s.Do("POST", "/v1/settings/account/two-step", bearer(tok), map[string]any{"pin": "12345"}); r.Status != 400 || r.ErrorCode() != 1009 {
		t.Errorf("a 5-digit pin = %d %s, want 400 with 1009", r.Status, r.Raw)
	}
	if r := s.Do("POST", "/v1/settings/account/two-step", bearer(tok), map[string]any{"pin": "123456"}); r.Status != 200 {
		t.Fatalf("POST two-step = %d %s", r.Status, r.Raw)
	}

	// A customer who talked to the number before the move.
	phone := s.NewPhone("15551230004", "Jo")
	phone.OpenWindow(bizCC + bizPhone)
	awaitMessage(t, phone, sendOne(t, s, tok, phone.Number(), "before the move"))

	d := s.NewDeployment(stack.Options{})
	tok2 := d.Login()
	register := func(pin string) stack.Response {
		body := map[string]string{"cc": bizCC, "phone_number": bizPhone, "method": "sms"}
		if pin != "" {
			body["pin"] = pin
		}
		return d.Do("POST", "/v1/account", bearer(tok2), body)
	}
	if r := register(""); r.Status != 403 || r.ErrorCode() != 1005 || !strings.Contains(string(r.Raw), "pin") {
		t.Errorf("register elsewhere without the pin = %d %s, want 403 with 1005 about the pin", r.Status, r.Raw)
	}
	if r := register("654321"); r.Status != 403 || r.ErrorCode() != 1005 {
		t.Errorf("register elsewhere with a wrong pin = %d %s, want 403 with 1005", r.Status, r.Raw)
	}
	if r := register("123456"); r.Status != 202 {
		t.Fatalf("register elsewhere with the pin = %d %s, want 202", r.Status, r.Raw)
	}
	if r := d.Do("POST", "/v1/account/verify", bearer(tok2), map[string]string{"code": d.SandboxCode(bizCC + bizPhone)}); r.Status != 201 {
		t.Fatalf("verify on the new deployment = %d %s", r.Status, r.Raw)
	}
	d.WaitHealth(tok2, "connected", 30*time.Second)
	id := sendOne(t, d, tok2, phone.Number(), "from the new deployment")
	awaitMessage(t, phone, id)
	// A new registration is a new identity, and the phone says so (the
	// backup and restore of TestBackupRestore is not).
	phone.WaitFor(30*time.Second, "the security code change", func(e waphone.Event) bool {
		return e.Event == "security_code_changed" && e.From == bizCC+bizPhone
	})
	// The new deployment turns it off.
	if r := d.Do("DELETE", "/v1/settings/account/two-step", bearer(tok2), nil); r.Status != 200 {
		t.Errorf("DELETE two-step = %d %s", r.Status, r.Raw)
	}
}

// TestBackupRestore: a backup of a number on one deployment, restored on a
// fresh one (other database, keystore and data directories, the same
// network), sends and receives with the same keys: the customer's phone
// sees no identity change, its old session still works, and the settings
// (the webhook) and the profile came along. A wrong password changes
// nothing.
func TestBackupRestore(t *testing.T) {
	s, tok, hook := encStack(t, stack.Options{})
	biz := bizCC + bizPhone
	if r := s.Do("PATCH", "/v1/settings/profile/about", bearer(tok), map[string]any{"text": "Moved but the same"}); r.Status != 200 {
		t.Fatalf("PATCH about = %d %s", r.Status, r.Raw)
	}
	phone := s.NewPhone("15551230005", "Kai")
	phone.OpenWindow(biz)
	awaitMessage(t, phone, sendOne(t, s, tok, phone.Number(), "before the backup"))

	if r := s.Do("POST", "/v1/settings/backup", bearer(tok), map[string]any{"password": "short"}); r.Status != 400 || r.ErrorCode() != 1009 {
		t.Errorf("backup with a short password = %d %s, want 400 with 1009", r.Status, r.Raw)
	}
	r := s.Do("POST", "/v1/settings/backup", bearer(tok), map[string]any{"password": "correct horse battery"})
	data, _ := dig(r.Body, "settings", "data").(string)
	if r.Status != 200 || data == "" {
		t.Fatalf("POST /v1/settings/backup = %d %s", r.Status, r.Raw)
	}
	s.StopCore(0) // the number moves: the old deployment stops

	d := s.NewDeployment(stack.Options{})
	tok2 := d.Login()
	if r := d.Do("POST", "/v1/settings/restore", bearer(tok2), map[string]any{"password": "wrong horse battery", "data": data}); r.Status != 400 || r.ErrorCode() != 1009 {
		t.Errorf("restore with a wrong password = %d %s, want 400 with 1009", r.Status, r.Raw)
	}
	if r := d.Do("GET", "/v1/health", bearer(tok2), nil); dig(r.Body, "health", "gateway_status") != "unregistered" {
		t.Errorf("after a refused restore, health = %s; want unregistered", r.Raw)
	}
	if r := d.Do("POST", "/v1/settings/restore", bearer(tok2), map[string]any{"password": "correct horse battery", "data": data}); r.Status != 200 {
		t.Fatalf("POST /v1/settings/restore = %d %s", r.Status, r.Raw)
	}
	d.WaitHealth(tok2, "connected", 30*time.Second)
	if r := d.Do("POST", "/v1/settings/restore", bearer(tok2), map[string]any{"password": "correct horse battery", "data": data}); r.Status != 409 || r.ErrorCode() != 1004 {
		t.Errorf("a second restore = %d %s, want 409 with 1004", r.Status, r.Raw)
	}

	// The customer writes on the session it had: the restored number reads
	// it and posts it to the webhook the settings named.
	in := phone.Text(biz, "did you move?")
	hook.Wait(30*time.Second, "the message to the restored number", func(ps []stack.Payload) bool { return hasInbound(ps, in) })
	awaitMessage(t, phone, sendOne(t, d, tok2, phone.Number(), "after the restore"))
	for _, e := range phone.Events() {
		if e.Event == "security_code_changed" {
			t.Errorf("the phone saw a security code change (%s) after a restore", e.From)
		}
	}
	if r := d.Do("GET", "/v1/settings/profile/about", bearer(tok2), nil); dig(r.Body, "settings", "profile", "about", "text") != "Moved but the same" {
		t.Errorf("restored about = %s", r.Raw)
	}
}

// TestStats: /v1/stats/app and /v1/stats/db count what the number did, in
// on-prem's JSON and in the Prometheus text format, with a bearer token or
// the monitoring key; a tenant's API key sees its own rows and no table
// sizes.
func TestStats(t *testing.T) {
	s, tok, hook := encStack(t, stack.Options{})
	phone := s.NewPhone("15551230010", "Quinn")
	in := phone.OpenWindow(bizWaID)
	hook.Wait(30*time.Second, "the inbound message", func(ps []stack.Payload) bool { return hasInbound(ps, in) })
	id := sendOne(t, s, tok, phone.Number(), "counted")
	awaitMessage(t, phone, id)
	hook.Wait(30*time.Second, "delivered", func(ps []stack.Payload) bool { return statusOf(ps, id, "delivered") != nil })

	value := func(r stack.Response, kind, name string, labels map[string]string) (float64, bool) {
		m, _ := dig(r.Body, "stats", kind, name).(map[string]any)
		data, _ := m["data"].([]any)
		for _, d := range data {
			p := d.(map[string]any)
			ls, _ := p["labels"].(map[string]any)
			ok := true
			for k, v := range labels {
				ok = ok && ls[k] == v
			}
			if ok {
				return p["value"].(float64), true
			}
		}
		return 0, false
	}
	monitor := stack.Auth{Header: map[string]string{"Authorization": "Apikey monitoring-key-0123456789"}}
	r := s.Do("GET", "/v1/stats/app", monitor, nil)
	if r.Status != 200 {
		t.Fatalf("GET /v1/stats/app = %d %s", r.Status, r.Raw)
	}
	if v, ok := value(r, "app", "messages", map[string]string{"status": "delivered", "node": "core1"}); !ok || v < 1 {
		t.Errorf("delivered messages = %v (%v) in %s", v, ok, r.Raw)
	}
	if v, ok := value(r, "app", "inbound_messages", nil); !ok || v < 1 {
		t.Errorf("inbound messages = %v (%v)", v, ok)
	}
	if v, ok := value(r, "app", "callback_requests", map[string]string{"result": "success"}); !ok || v < 1 {
		t.Errorf("successful webhook POSTs = %v (%v)", v, ok)
	}
	if _, ok := value(r, "app", "callback_queue_size", nil); !ok {
		t.Errorf("no callback_queue_size in %s", r.Raw)
	}
	code, hdr, body := s.Raw("GET", "/v1/stats/app?format=prometheus", bearer(tok), "", nil)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") || !strings.Contains(string(body), `messages{node="core1",status="delivered"} `) {
		t.Errorf("prometheus stats = %d %s\n%s", code, hdr.Get("Content-Type"), body)
	}
	r = s.Do("GET", "/v1/stats/db/internal", bearer(tok), nil)
	if v, ok := value(r, "db", "db_rows", map[string]string{"table": "outbound_messages"}); r.Status != 200 || !ok || v < 1 {
		t.Errorf("db stats = %d %s", r.Status, r.Raw)
	}
	if _, ok := value(r, "db", "db_size_bytes", nil); !ok {
		t.Errorf("the admin gets no table sizes: %s", r.Raw)
	}
	kr := s.Do("POST", "/v1/account/api_keys", bearer(tok), nil)
	key := kr.Body["api_keys"].([]any)[0].(map[string]any)["key"].(string)
	r = s.Do("GET", "/v1/stats/db", stack.Auth{APIKey: key}, nil)
	if _, ok := value(r, "db", "db_size_bytes", nil); r.Status != 200 || ok {
		t.Errorf("a tenant's db stats = %d %s; want its rows without the deployment's sizes", r.Status, r.Raw)
	}
}

// TestStatsPerNode: with several coreapps, /v1/stats/app carries every
// node's own measures (uptime, webhook POSTs), each with its node label,
// whichever node answers.
func TestStatsPerNode(t *testing.T) {
	s := stack.New(t, stack.Options{Coreapps: 2})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	r := s.Do("GET", "/v1/stats/app", bearer(tok), nil)
	data, _ := dig(r.Body, "stats", "app", "uptime_seconds", "data").([]any)
	nodes := map[any]bool{}
	for _, d := range data {
		nodes[dig(d.(map[string]any), "labels", "node")] = true
	}
	if r.Status != 200 || !nodes["core1"] || !nodes["core2"] {
		t.Errorf("uptime_seconds of %v, want core1 and core2: %s", nodes, r.Raw)
	}
}
