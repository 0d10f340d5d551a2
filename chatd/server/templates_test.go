package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/template"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// adminDo sends a JSON request to the admin API and decodes the answer.
func (n *testNet) adminDo(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: wait}
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+n.admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s answered %q, not a JSON object", method, path, b)
	}
	return resp.StatusCode, out
}

const orderTemplate = `{"name":"order_update","language":"en_US","category":"UTILITY","components":[
 {"type":"BODY","text":"Hi {{1}}, order {{2}} shipped.","example":{"body_text":[["Ann","42"]]}}]}`

func createIQ(js string) *chatdv1.IQ {
	return &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_TemplateCreate{TemplateCreate: &chatdv1.TemplateCreate{TemplateJson: []byte(js)}}}
}

func queryIQ(q *chatdv1.TemplateQuery) *chatdv1.IQ {
	return &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_TemplateQuery{TemplateQuery: q}}
}

func records(t *testing.T, res *chatdv1.IQ) []template.Template {
	t.Helper()
	var out []template.Template
	for _, b := range res.GetTemplateRecords().GetTemplateJson() {
		var r template.Template
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("record %s: %v", b, err)
		}
		out = append(out, r)
	}
	return out
}

// createTemplate submits js and returns its record.
func (c *client) createTemplate(t *testing.T, js string) template.Template {
	t.Helper()
	res, err := c.iq(t, createIQ(js))
	if err != nil {
		t.Fatalf("create template: %v", err)
	}
	rs := records(t, res)
	if len(rs) != 1 {
		t.Fatalf("create answered %d records", len(rs))
	}
	return rs[0]
}

// awaitTemplateStatus waits for the TEMPLATE_STATUS notification of id.
func (c *client) awaitTemplateStatus(t *testing.T, id string) *chatdv1.TemplateStatus {
	t.Helper()
	st := c.await(t, "template status of "+id, func(st *chatdv1.Stanza) bool {
		n := st.GetNotification()
		return n.GetType() == chatdv1.NotificationType_NOTIFICATION_TYPE_TEMPLATE_STATUS && n.GetTemplate().GetId() == id
	})
	return st.GetNotification().GetTemplate()
}

// TestTemplates follows templates through the network: a submission is
// checked and stored PENDING, approved after the review delay with a
// TEMPLATE_STATUS notification, changed by the sandbox admin, listed with
// filters and paging and the account's namespace, and deleted; consumers
// have none.
func TestTemplates(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{TemplateApprovalDelay: 300 * time.Millisecond})
	B := "15550003001"
	kb := n.register(t, B, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	C := "15550003002"
	kc := n.register(t, C, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	b := n.dial(t, B, kb, clientOpts{autoAck: true}).connected(t)
	c := n.dial(t, C, kc, clientOpts{autoAck: true}).connected(t)

	if _, err := c.iq(t, createIQ(orderTemplate)); iqCode(t, err) != uint32(errcode.AccessDenied) {
		t.Errorf("a consumer's template create = %v, want error %d", err, errcode.AccessDenied)
	}
	for js, want := range map[string]errcode.Code{
		`{"name":"x","language":"en"}`: errcode.Missing,
		`{"name":"Bad Name","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"}]}`:         errcode.Invalid,
		`{"name":"x","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"}],"colour":"red"}`: errcode.NotRequired,
		`{"name":"x","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"{{1}}"}]}`:            errcode.Missing, // no example
		`not json`: errcode.Invalid,
	} {
		if _, err := b.iq(t, createIQ(js)); iqCode(t, err) != uint32(want) {
			t.Errorf("create %s = %v, want error %d", js, err, want)
		}
	}

	start := time.Now()
	rec := b.createTemplate(t, orderTemplate)
	if rec.Status != template.StatusPending || rec.ID == "" || rec.Category != "UTILITY" || rec.Name != "order_update" {
		t.Fatalf("created record = %+v, want a PENDING UTILITY order_update with an id", rec)
	}
	if _, err := b.iq(t, createIQ(orderTemplate)); iqCode(t, err) != uint32(errcode.Exists) {
		t.Errorf("a second order_update/en_US = %v, want error %d", err, errcode.Exists)
	}
	ts := b.awaitTemplateStatus(t, rec.ID)
	if ts.Event != template.StatusApproved || ts.Name != "order_update" || ts.Language != "en_US" || ts.Category != "UTILITY" {
		t.Errorf("approval notification = %v", ts)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("approved after %v, before the review delay", d)
	}

	// The admin rejects it: a notification with the reason; the same
	// status again changes nothing.
	status, body := n.adminDo(t, "POST", "/sandbox/templates/"+rec.ID+"/status", `{"status":"REJECTED","reason":"INVALID_FORMAT"}`)
	if status != 200 || body["status"] != "REJECTED" || body["changed"] != true {
		t.Fatalf("admin reject = %d %v", status, body)
	}
	if ts := b.awaitTemplateStatus(t, rec.ID); ts.Event != "REJECTED" || ts.Reason != "INVALID_FORMAT" {
		t.Errorf("rejection notification = %v", ts)
	}
	if status, body := n.adminDo(t, "POST", "/sandbox/templates/"+rec.ID+"/status", `{"status":"rejected","reason":"INVALID_FORMAT"}`); status != 200 || body["changed"] != false {
		t.Errorf("the same status again = %d %v, want changed false", status, body)
	}
	for path, req := range map[string]string{
		"/sandbox/templates/" + rec.ID + "/status":  `{"status":"PENDING"}`,
		"/sandbox/templates/" + rec.ID + "/status?": `{"status":"APPROVED","colour":1}`,
	} {
		if status, _ := n.adminDo(t, "POST", path, req); status != 400 {
			t.Errorf("POST %s %s = %d, want 400", path, req, status)
		}
	}
	if status, _ := n.adminDo(t, "POST", "/sandbox/templates/999999/status", `{"status":"APPROVED"}`); status != 404 {
		t.Errorf("status of an unknown template = %d, want 404", status)
	}

	// The rejected template is edited: new components, PENDING, approved
	// after the review delay; bad edits change nothing.
	edit := func(id, js string) (*chatdv1.IQ, error) {
		return b.iq(t, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_TemplateEdit{TemplateEdit: &chatdv1.TemplateEdit{Id: id, TemplateJson: []byte(js)}}})
	}
	for _, e := range []struct {
		id, js string
		code   errcode.Code
	}{
		{rec.ID, `{}`, errcode.Missing},
		{rec.ID, `{"name":"renamed"}`, errcode.Invalid},
		{rec.ID, `{"category":"SPAM"}`, errcode.Invalid},
		{rec.ID, `{"components":[{"type":"BODY","text":"Hi {{1}}"}]}`, errcode.Missing}, // no example
		{"999999", `{"category":"MARKETING"}`, errcode.NotFound},
	} {
		if _, err := edit(e.id, e.js); iqCode(t, err) != uint32(e.code) {
			t.Errorf("edit %s %s = %v, want error %d", e.id, e.js, err, e.code)
		}
	}
	if _, err := c.iq(t, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_TemplateEdit{TemplateEdit: &chatdv1.TemplateEdit{Id: rec.ID, TemplateJson: []byte(`{"category":"MARKETING"}`)}}}); iqCode(t, err) != uint32(errcode.AccessDenied) {
		t.Errorf("a consumer's edit = %v", err)
	}
	res, err := edit(rec.ID, `{"components":[{"type":"BODY","text":"Hello {{1}}, order {{2}} is on its way.","example":{"body_text":[["Ann","42"]]}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if rs := records(t, res); len(rs) != 1 || rs[0].Status != template.StatusPending || rs[0].Components[0].Text != "Hello {{1}}, order {{2}} is on its way." || rs[0].Name != "order_update" {
		t.Errorf("edited record = %+v", rs)
	}
	if _, err := edit(rec.ID, `{"category":"MARKETING"}`); iqCode(t, err) != uint32(errcode.Invalid) {
		t.Errorf("an edit while PENDING = %v, want error %d", err, errcode.Invalid)
	}
	if ts := b.awaitTemplateStatus(t, rec.ID); ts.Event != template.StatusApproved {
		t.Errorf("after the edit: %v, want APPROVED", ts)
	}
	// Rejected again, for the listing below.
	if status, body := n.adminDo(t, "POST", "/sandbox/templates/"+rec.ID+"/status", `{"status":"REJECTED","reason":"INVALID_FORMAT"}`); status != 200 || body["changed"] != true {
		t.Fatalf("admin reject = %d %v", status, body)
	}

	// More templates to list.
	b.createTemplate(t, strings.Replace(orderTemplate, `"en_US"`, `"de"`, 1))
	b.createTemplate(t, `{"name":"promo","language":"en_US","category":"MARKETING","components":[{"type":"BODY","text":"Sale!"}]}`)
	all, err := b.iq(t, queryIQ(&chatdv1.TemplateQuery{}))
	if err != nil {
		t.Fatal(err)
	}
	ns := all.GetTemplateRecords().GetNamespace()
	if !regexp.MustCompile(`^[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12}$`).MatchString(ns) {
		t.Errorf("namespace %q, want a UUID with underscores", ns)
	}
	if got := all.GetTemplateRecords().GetTotal(); got != 3 || len(records(t, all)) != 3 {
		t.Errorf("list of all: total %d, %d records; want 3", got, len(records(t, all)))
	}
	again, _ := b.iq(t, queryIQ(&chatdv1.TemplateQuery{Name: "order_update"}))
	if len(records(t, again)) != 2 || again.GetTemplateRecords().GetNamespace() != ns {
		t.Errorf("by name: %d records, namespace %q; want 2 and the same namespace", len(records(t, again)), again.GetTemplateRecords().GetNamespace())
	}
	for q, want := range map[*chatdv1.TemplateQuery]int{
		{Status: "rejected"}:                   1,
		{Category: "marketing"}:                1,
		{Language: "de"}:                       1,
		{Name: "order_update", Language: "de"}: 1,
		{Name: "nope"}:                         0,
		{Id: rec.ID}:                           1,
	} {
		res, err := b.iq(t, queryIQ(q))
		if err != nil || len(records(t, res)) != want {
			t.Errorf("query %v = %d records, %v; want %d", q, len(records(t, res)), err, want)
		}
	}
	page1, _ := b.iq(t, queryIQ(&chatdv1.TemplateQuery{Limit: 2}))
	if len(records(t, page1)) != 2 || page1.GetTemplateRecords().GetAfter() == "" {
		t.Fatalf("page 1: %d records, after %q", len(records(t, page1)), page1.GetTemplateRecords().GetAfter())
	}
	page2, _ := b.iq(t, queryIQ(&chatdv1.TemplateQuery{Limit: 2, After: page1.GetTemplateRecords().GetAfter()}))
	if rs := records(t, page2); len(rs) != 1 || rs[0].Name != "promo" || page2.GetTemplateRecords().GetAfter() != "" {
		t.Errorf("page 2 = %+v (after %q), want promo alone", rs, page2.GetTemplateRecords().GetAfter())
	}
	off, _ := b.iq(t, queryIQ(&chatdv1.TemplateQuery{Limit: 1, Offset: 2}))
	if rs := records(t, off); len(rs) != 1 || rs[0].Name != "promo" {
		t.Errorf("offset 2 = %+v, want promo", rs)
	}

	// Delete one language, then the rest.
	del := func(name, lang string) (int, error) {
		res, err := b.iq(t, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_TemplateDelete{TemplateDelete: &chatdv1.TemplateDelete{Name: name, Language: lang}}})
		return len(records(t, res)), err
	}
	if n, err := del("order_update", "de"); n != 1 || err != nil {
		t.Errorf("delete order_update/de = %d, %v", n, err)
	}
	if n, err := del("order_update", ""); n != 1 || err != nil {
		t.Errorf("delete order_update = %d, %v", n, err)
	}
	if _, err := del("order_update", ""); iqCode(t, err) != uint32(errcode.NotFound) {
		t.Errorf("delete of a deleted template = %v, want %d", err, errcode.NotFound)
	}
	if got := count(t, n.db, "SELECT COUNT(*) FROM templates WHERE account = ?", B); got != 1 {
		t.Errorf("templates left = %d, want 1 (promo)", got)
	}
}

func templateMessage(id, to, templateID string) *chatdv1.Stanza {
	st := textMessage(id, to, "hydrated template")
	st.GetMessage().Kind, st.GetMessage().TemplateId = "template", templateID
	return st
}

// TestWindow: a business may send free-form only within 24 hours of the
// customer's last message, and templates (approved, its own) at any time;
// each message opens or joins a conversation, which its ack carries. The
// sandbox clock moves the window; everything survives a restart.
func TestWindow(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{EnforceWindow: true})
	B, B2 := "15550004001", "15550004003"
	kb := n.register(t, B, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	kb2 := n.register(t, B2, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	C := "15550004002"
	kc := n.register(t, C, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	b := n.dial(t, B, kb, clientOpts{autoAck: true}).connected(t)
	b2 := n.dial(t, B2, kb2, clientOpts{autoAck: true}).connected(t)
	c := n.dial(t, C, kc, clientOpts{autoAck: true}).connected(t)

	utility := b.createTemplate(t, orderTemplate)
	b.awaitTemplateStatus(t, utility.ID)
	promo := b.createTemplate(t, `{"name":"promo","language":"en","category":"MARKETING","components":[{"type":"BODY","text":"Sale!"}]}`)
	b.awaitTemplateStatus(t, promo.ID)
	other := b2.createTemplate(t, orderTemplate)
	b2.awaitTemplateStatus(t, other.ID)

	windows := func(cl *client, numbers ...string) string {
		t.Helper()
		res, err := cl.iq(t, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_WindowQuery{WindowQuery: &chatdv1.WindowQuery{Numbers: numbers}}})
		if err != nil {
			t.Fatalf("window query: %v", err)
		}
		var out []string
		for _, st := range res.GetWindowStates().GetStates() {
			out = append(out, fmt.Sprintf("%s:%v/%v", st.Number, st.Registered, st.Open))
		}
		return strings.Join(out, " ")
	}
	if got, want := windows(b, C, "15550004999", B2, "x"), C+":true/false 15550004999:false/false "+B2+":true/true x:false/false"; got != want {
		t.Errorf("windows before the customer wrote = %s, want %s", got, want)
	}
	if _, err := c.iq(t, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_WindowQuery{WindowQuery: &chatdv1.WindowQuery{Numbers: []string{B}}}}); iqCode(t, err) != uint32(errcode.AccessDenied) {
		t.Errorf("a consumer's window query = %v, want %d", err, errcode.AccessDenied)
	}

	// The customer never wrote: free-form is refused, a template opens a
	// conversation of its category.
	b.send(t, textMessage("f-1", C, "hello?"))
	if ack := b.awaitAck(t, "f-1"); ack.Error != nackReengagement {
		t.Errorf("free-form before the customer wrote: ack %v, want nack %q", ack, nackReengagement)
	}
	b.send(t, templateMessage("t-1", C, utility.ID))
	ack := b.awaitAck(t, "t-1")
	conv := ack.GetConversation()
	if ack.Error != "" || conv.GetCategory() != "utility" || conv.GetOrigin() != "business_initiated" || !conv.GetOpened() || len(conv.GetId()) != 32 {
		t.Fatalf("template ack = %v, want a new utility conversation", ack)
	}
	if d := conv.Expires - time.Now().Unix(); d < 86390 || d > 86410 {
		t.Errorf("conversation expires in %ds, want 24h", d)
	}
	c.await(t, "the template", func(st *chatdv1.Stanza) bool { return st.GetMessage().GetId() == "t-1" })
	// A resend is acked as the first time (not opened again); a second
	// template of the category joins; one of another category opens its own.
	b.send(t, templateMessage("t-1", C, utility.ID))
	if again := b.awaitAck(t, "t-1"); again.GetConversation().GetId() != conv.Id || again.GetConversation().GetOpened() {
		t.Errorf("ack of the resent template = %v, want conversation %s, not opened", again, conv.Id)
	}
	b.send(t, templateMessage("t-2", C, utility.ID))
	if a := b.awaitAck(t, "t-2"); a.GetConversation().GetId() != conv.Id || a.GetConversation().GetOpened() {
		t.Errorf("second utility template joined %v, want %s", a.GetConversation(), conv.Id)
	}
	b.send(t, templateMessage("t-3", C, promo.ID))
	if a := b.awaitAck(t, "t-3"); a.GetConversation().GetCategory() != "marketing" || a.GetConversation().GetId() == conv.Id || !a.GetConversation().GetOpened() {
		t.Errorf("marketing template: %v, want a new marketing conversation", a.GetConversation())
	}
	// Templates that may not go: another business's, unknown, paused.
	for id, tpl := range map[string]string{"t-4": other.ID, "t-5": "987654321", "t-6": ""} {
		b.send(t, templateMessage(id, C, tpl))
		if a := b.awaitAck(t, id); a.Error != nackTemplate {
			t.Errorf("template %q: ack %v, want nack %q", tpl, a, nackTemplate)
		}
	}
	n.adminDo(t, "POST", "/sandbox/templates/"+promo.ID+"/status", `{"status":"PAUSED","reason":"LOW_QUALITY"}`)
	b.send(t, templateMessage("t-7", C, promo.ID))
	if a := b.awaitAck(t, "t-7"); a.Error != "template_paused" {
		t.Errorf("paused template: ack %v, want nack template_paused", a)
	}

	// The customer writes: free-form goes, joining an open conversation
	// (the latest opened: marketing, or utility when both opened in the
	// same second).
	c.send(t, textMessage("c-1", B, "hi"))
	if a := c.awaitAck(t, "c-1"); a.Error != "" || a.Conversation != nil {
		t.Errorf("customer's ack = %v, want a plain ack", a)
	}
	if got := windows(b, C); got != C+":true/true" {
		t.Errorf("window after the customer wrote = %s, want open", got)
	}
	b.send(t, textMessage("f-2", C, "how can we help?"))
	if a := b.awaitAck(t, "f-2"); a.Error != "" || a.GetConversation().GetOpened() || (a.GetConversation().GetCategory() != "marketing" && a.GetConversation().GetCategory() != "utility") {
		t.Errorf("free-form in the window: %v, want it to join an open conversation", a)
	}
	if got := count(t, n.db, "SELECT COUNT(*) FROM queue WHERE recipient = ? AND stanza_id IN ('f-1','t-4','t-5','t-6','t-7')", C); got != 0 {
		t.Errorf("%d refused messages were queued for the customer", got)
	}

	// 25 hours later: the window and the conversations have closed.
	if status, body := n.adminDo(t, "POST", "/sandbox/clock", `{"advance":"25h"}`); status != 200 || body["offset"] != "25h0m0s" {
		t.Fatalf("advance the clock = %d %v", status, body)
	}
	if got := windows(b, C); got != C+":true/false" {
		t.Errorf("window 25h later = %s, want closed", got)
	}
	b.send(t, textMessage("f-3", C, "still there?"))
	if a := b.awaitAck(t, "f-3"); a.Error != nackReengagement {
		t.Errorf("free-form 25h after the customer wrote: %v, want nack %q", a, nackReengagement)
	}
	b.send(t, templateMessage("t-8", C, utility.ID))
	a8 := b.awaitAck(t, "t-8")
	if a8.Error != "" || a8.GetConversation().GetId() == conv.Id || !a8.GetConversation().GetOpened() {
		t.Errorf("template after 25h: %v, want a new conversation", a8)
	}
	if d := a8.GetConversation().GetExpires() - time.Now().Unix(); d < 25*3600+86390 || d > 25*3600+86410 {
		t.Errorf("conversation expires in %ds of real time, want 49h (the clock's 25h ahead)", d)
	}

	// Everything comes back after a restart: the clock, the window, the
	// conversations, the templates.
	for _, cl := range []*client{b, b2, c} {
		cl.stop(t)
	}
	n.stop()
	n2 := startNet(t, Config{DB: n.db, EnforceWindow: true})
	if status, body := n2.adminDo(t, "GET", "/sandbox/clock", ""); status != 200 || body["offset_seconds"] != float64(25*3600) {
		t.Errorf("clock after a restart = %d %v", status, body)
	}
	b = n2.dial(t, B, kb, clientOpts{autoAck: true}).connected(t)
	b.send(t, templateMessage("t-9", C, utility.ID))
	if a := b.awaitAck(t, "t-9"); a.GetConversation().GetId() != a8.GetConversation().GetId() {
		t.Errorf("template after the restart joined %v, want %s", a.GetConversation(), a8.GetConversation().GetId())
	}
	b.send(t, textMessage("f-4", C, "?"))
	if a := b.awaitAck(t, "f-4"); a.Error != nackReengagement {
		t.Errorf("free-form after the restart: %v, want nack", a)
	}
	if status, body := n2.adminDo(t, "DELETE", "/sandbox/clock", ""); status != 200 || body["offset_seconds"] != float64(0) {
		t.Errorf("reset the clock = %d %v", status, body)
	}
	b.send(t, textMessage("f-5", C, "back in the window"))
	if a := b.awaitAck(t, "f-5"); a.Error != "" {
		t.Errorf("free-form after the clock reset: %v, want an ack (the customer wrote an hour ago)", a)
	}
	for _, req := range []string{`{"advance":"-1h"}`, `{"advance":"soon"}`, `{"advance":"25h","x":1}`, `{}`} {
		if status, _ := n2.adminDo(t, "POST", "/sandbox/clock", req); status != 400 {
			t.Errorf("POST /sandbox/clock %s = %d, want 400", req, status)
		}
	}
}

// TestWindowOff: with the rule off (a sandbox switch), free-form goes to
// anyone and opens a service conversation.
func TestWindowOff(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	B, C := "15550005001", "15550005002"
	kb := n.register(t, B, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)
	n.register(t, C, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	b := n.dial(t, B, kb, clientOpts{autoAck: true}).connected(t)
	b.send(t, textMessage("f-1", C, "hello"))
	a := b.awaitAck(t, "f-1")
	if a.Error != "" || a.GetConversation().GetCategory() != "service" || a.GetConversation().GetOrigin() != "user_initiated" || !a.GetConversation().GetOpened() {
		t.Errorf("free-form with the window off: %v, want an ack opening a service conversation", a)
	}
}
