package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime/multipart"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/e2e/stack"
)

// The Cloud API end to end, with unmodified Cloud SDKs from npm
// (e2e/cloudsdk: package.json and package-lock.json pin them; driver.mjs
// runs one and its webhook server). The test needs node and npm; it
// installs the packages with npm ci when they are missing.

// sdkDriver is one driver.mjs process.
type sdkDriver struct {
	t       *testing.T
	name    string
	stdin   io.WriteCloser
	webhook string

	mu      sync.Mutex
	answers map[int]driverAnswer
	hooks   []driverHook
	signal  chan struct{}
	next    int
}

type driverAnswer struct {
	OK         bool            `json:"ok"`
	Result     json.RawMessage `json:"result"`
	Error      string          `json:"error"`
	Code       int             `json:"code"`
	HTTPStatus int             `json:"httpStatus"`
}

// driverHook is a webhook POST the driver's server received.
type driverHook struct {
	Verified bool            `json:"verified"`
	ASCII    bool            `json:"ascii"`
	Error    string          `json:"error"`
	Body     string          `json:"body"`
	Parsed   json.RawMessage `json:"parsed"`
	note     cloudNote
}

// cloudNote is a Cloud webhook body.
type cloudNote struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Changes []struct {
			Field string          `json:"field"`
			Value json.RawMessage `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type cloudValue struct {
	MessagingProduct string `json:"messaging_product"`
	Metadata         struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts []struct {
		Profile struct{ Name string } `json:"profile"`
		WaID    string                `json:"wa_id"`
	} `json:"contacts"`
	Messages []struct {
		From        string `json:"from"`
		ID          string `json:"id"`
		Type        string `json:"type"`
		Text        struct{ Body string }
		Image       struct{ ID, SHA256, MimeType string } `json:"image"`
		Button      json.RawMessage                       `json:"button"`
		Interactive json.RawMessage                       `json:"interactive"`
		Context     *struct{ From, ID string }
	} `json:"messages"`
	Statuses []cloudStatus `json:"statuses"`
}

type cloudStatus struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	RecipientID  string `json:"recipient_id"`
	CallbackData string `json:"biz_opaque_callback_data"`
	Conversation *struct {
		ID     string `json:"id"`
		Origin struct{ Type string }
	} `json:"conversation"`
	Pricing *struct {
		Billable     bool   `json:"billable"`
		PricingModel string `json:"pricing_model"`
		Category     string `json:"category"`
		Type         string `json:"type"`
	} `json:"pricing"`
	Errors []struct {
		Code  int    `json:"code"`
		Title string `json:"title"`
	} `json:"errors"`
}

// value is the one change's value of a "messages" notification.
func (n cloudNote) value() (cloudValue, bool) {
	var v cloudValue
	if len(n.Entry) != 1 || len(n.Entry[0].Changes) != 1 || n.Entry[0].Changes[0].Field != "messages" {
		return v, false
	}
	return v, json.Unmarshal(n.Entry[0].Changes[0].Value, &v) == nil
}

// installSDKs runs npm ci in e2e/cloudsdk unless its packages are there.
func installSDKs(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(stack.RepoRoot(t), "e2e", "cloudsdk")
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: the Cloud SDK test runs the npm SDKs (apt-get install nodejs npm)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "whatsapp-api-js", "package.json")); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "@kapso", "whatsapp-cloud-api", "package.json")); err == nil {
			return dir
		}
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	return dir
}

// webCertFile writes the webapp's certificate as PEM, for
// NODE_EXTRA_CA_CERTS.
func webCertFile(t *testing.T, s *stack.Stack) string {
	t.Helper()
	u, err := url.Parse(s.WebURL(0))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	path := filepath.Join(t.TempDir(), "openwaba.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	cloudAppSecret   = "app-secret-0123456789abcdef"
	cloudVerifyToken = "verify-me-please"
	cloudVersion     = "v23.0"
)

func startDriver(t *testing.T, s *stack.Stack, dir, sdk, token, cert string) *sdkDriver {
	t.Helper()
	cmd := exec.Command("node", "driver.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SDK="+sdk, "OPENWABA_URL="+strings.TrimSuffix(s.WebURL(0), "/"), "TOKEN="+token,
		"APP_SECRET="+cloudAppSecret, "VERIFY_TOKEN="+cloudVerifyToken, "GRAPH_VERSION="+cloudVersion, "NODE_EXTRA_CA_CERTS="+cert)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &sdkDriver{t: t, name: sdk, stdin: stdin, answers: map[int]driverAnswer{}, signal: make(chan struct{}, 1)}
	ready := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var line struct {
				ID    *int   `json:"id"`
				Event string `json:"event"`
				URL   string `json:"webhook"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Logf("%s driver: %s", sdk, sc.Text())
				continue
			}
			d.mu.Lock()
			switch {
			case line.Event == "ready":
				ready <- line.URL
			case line.Event == "webhook":
				var h driverHook
				json.Unmarshal(sc.Bytes(), &h)
				json.Unmarshal([]byte(h.Body), &h.note)
				d.hooks = append(d.hooks, h)
			case line.ID != nil:
				var a driverAnswer
				json.Unmarshal(sc.Bytes(), &a)
				d.answers[*line.ID] = a
			}
			d.mu.Unlock()
			select {
			case d.signal <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		<-done
		cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("%s driver stderr:\n%s", sdk, stderr.String())
		}
	})
	select {
	case d.webhook = <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s driver did not start: %s", sdk, stderr.String())
	}
	return d
}

// call runs an SDK operation and returns its answer.
func (d *sdkDriver) call(op string, args any) driverAnswer {
	d.t.Helper()
	d.mu.Lock()
	d.next++
	id := d.next
	d.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"id": id, "op": op, "args": args})
	if _, err := d.stdin.Write(append(b, '\n')); err != nil {
		d.t.Fatal(err)
	}
	deadline := time.After(60 * time.Second)
	for {
		d.mu.Lock()
		a, ok := d.answers[id]
		d.mu.Unlock()
		if ok {
			return a
		}
		select {
		case <-d.signal:
		case <-deadline:
			d.t.Fatalf("%s %s: no answer within 60s", d.name, op)
		}
	}
}

// must runs an operation that must succeed and decodes its result.
func (d *sdkDriver) must(op string, args any, into any) {
	d.t.Helper()
	a := d.call(op, args)
	if !a.OK {
		d.t.Fatalf("%s %s(%v) failed: %s (code %d, HTTP %d)", d.name, op, args, a.Error, a.Code, a.HTTPStatus)
	}
	if into != nil {
		if err := json.Unmarshal(a.Result, into); err != nil {
			d.t.Fatalf("%s %s result %s: %v", d.name, op, a.Result, err)
		}
	}
}

// waitHooks waits for n verified webhook POSTs whose bodies match.
func (d *sdkDriver) waitHooks(what string, n int, match func(cloudNote) bool) {
	d.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		d.mu.Lock()
		got := 0
		for _, h := range d.hooks {
			if h.Verified && match(h.note) {
				got++
			}
		}
		d.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-d.signal:
		case <-deadline:
			d.t.Fatalf("%s: %d of %d webhooks with %s within 30s", d.name, got, n, what)
		}
	}
}

// waitHook waits for a webhook POST whose body matches.
func (d *sdkDriver) waitHook(what string, match func(cloudNote) bool) driverHook {
	d.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		d.mu.Lock()
		hooks := append([]driverHook(nil), d.hooks...)
		d.mu.Unlock()
		for _, h := range hooks {
			if h.Verified && match(h.note) {
				return h
			}
		}
		select {
		case <-d.signal:
		case <-deadline:
			var bodies []string
			for _, h := range hooks {
				bodies = append(bodies, h.Body)
			}
			d.t.Fatalf("%s: no webhook with %s within 30s; got:\n%s", d.name, what, strings.Join(bodies, "\n"))
		}
	}
}

// waitStatus waits for the status of message id.
func (d *sdkDriver) waitStatus(id, status string) cloudStatus {
	d.t.Helper()
	var out cloudStatus
	d.waitHook(status+" status of "+id, func(n cloudNote) bool {
		v, ok := n.value()
		if !ok || len(v.Statuses) != 1 || v.Statuses[0].ID != id || v.Statuses[0].Status != status {
			return false
		}
		out = v.Statuses[0]
		return true
	})
	return out
}

// waitInbound waits for the inbound message id.
func (d *sdkDriver) waitInbound(id string) cloudValue {
	d.t.Helper()
	var out cloudValue
	d.waitHook("inbound message "+id, func(n cloudNote) bool {
		v, ok := n.value()
		if ok && len(v.Messages) == 1 && v.Messages[0].ID == id {
			out = v
			return true
		}
		return false
	})
	return out
}

// checkAllVerified fails for any POST the SDK did not verify, or that was
// not ASCII-only JSON.
func (d *sdkDriver) checkAllVerified() {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.hooks) == 0 {
		d.t.Errorf("%s: no webhook arrived", d.name)
	}
	for _, h := range d.hooks {
		if !h.Verified || !h.ASCII {
			d.t.Errorf("%s: webhook verified=%v ascii=%v (%s): %s", d.name, h.Verified, h.ASCII, h.Error, h.Body)
		}
	}
}

// sentAnswer is a send's answer as Graph gives it (whatsapp-api-js, raw
// HTTP) or as Kapso hands it on (camelCase keys).
type sentAnswer struct {
	MessagingProduct string `json:"messagingProduct"`
	Messaging        string `json:"messaging_product"`
	Contacts         []struct {
		Input     string `json:"input"`
		WaIDCamel string `json:"waId"`
		WaID      string `json:"wa_id"`
	} `json:"contacts"`
	Messages []struct{ ID string } `json:"messages"`
}

// id checks the answer to a send to the number to and returns the message id.
func (a sentAnswer) id(t *testing.T, to string) string {
	t.Helper()
	if len(a.Messages) != 1 || a.Messages[0].ID == "" || len(a.Contacts) != 1 || a.MessagingProduct+a.Messaging != "whatsapp" ||
		a.Contacts[0].Input == "" || a.Contacts[0].WaIDCamel+a.Contacts[0].WaID != to {
		t.Fatalf("send answered %+v, want messaging_product, one contact {input, wa_id %s} and one message id", a, to)
	}
	return a.Messages[0].ID
}

// A tiny PNG (1×1, red).
var redPixel, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")

const cloudTemplateName = "cloud_order"

// TestCloudSDKs runs @kapso/whatsapp-cloud-api and whatsapp-api-js,
// unmodified, against one deployment: sends of every kind to a waphone,
// uploads, downloads, mark read, templates, and Cloud webhooks verified by
// each SDK's own signature check; 131047 after the sandbox clock moves
// 25 h; the on-prem API on the same deployment at the same time.
func TestCloudSDKs(t *testing.T) {
	dir := installSDKs(t)
	s := stack.New(t, stack.Options{ChatdEnv: map[string]string{"WA_SANDBOX_TEMPLATE_APPROVAL_DELAY": "0s"}})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	r := s.Do("POST", "/v1/account/api_keys", bearer(tok), nil)
	if r.Status != 201 {
		t.Fatalf("POST /v1/account/api_keys = %d %s", r.Status, r.Raw)
	}
	key := r.Body["api_keys"].([]any)[0].(map[string]any)["key"].(string)
	r = s.Do("GET", "/v1/configs/phone_number", stack.Auth{APIKey: key}, nil)
	pnid, _ := r.Body["phone_number_id"].(string)
	waba, _ := r.Body["waba_id"].(string)
	if r.Status != 200 || r.Body["phone_number"] != bizWaID || len(pnid) != 15 || len(waba) != 15 {
		t.Fatalf("GET /v1/configs/phone_number = %d %s, want the number with 15-digit phone_number_id and waba_id", r.Status, r.Raw)
	}
	cert := webCertFile(t, s)

	// Graph errors without an SDK: a bad token is 190/401, an unknown
	// number 100/33.
	code, _, raw := s.Raw("POST", "/"+cloudVersion+"/"+pnid+"/messages", stack.Auth{Bearer: "not-a-key"}, "application/json", []byte(`{}`))
	if code != 401 || !strings.Contains(string(raw), `"code":190`) || !strings.Contains(string(raw), `"type":"OAuthException"`) {
		t.Errorf("a bad token = %d %s, want 401 with Graph error 190", code, raw)
	}
	code, _, raw = s.Raw("GET", "/"+cloudVersion+"/106540000009999", stack.Auth{Bearer: key}, "", nil)
	if code != 400 || !strings.Contains(string(raw), `"code":100`) || !strings.Contains(string(raw), `"error_subcode":33`) {
		t.Errorf("another number = %d %s, want 400 with Graph error 100/33", code, raw)
	}

	var templateSent bool
	for i, sdk := range []string{"kapso", "whatsapp-api-js"} {
		t.Run(sdk, func(t *testing.T) {
			phone := s.NewPhone(fmt.Sprintf("491511234567%d", i), "José 😀")
			d := startDriver(t, s, dir, sdk, key, cert)
			if sdk == "kapso" {
				r := s.Do("POST", "/v1/configs/webhook", stack.Auth{APIKey: key}, map[string]any{
					"url": d.webhook, "format": "cloud", "verify_token": cloudVerifyToken, "app_secret": cloudAppSecret,
					"headers": map[string]string{"X-Test": sdk}})
				if r.Status != 200 || r.Body["format"] != "cloud" || r.Body["app_secret"] == cloudAppSecret || r.Body["app_secret"] == "" {
					t.Fatalf("POST /v1/configs/webhook = %d %s, want format cloud with the secret masked", r.Status, r.Raw)
				}
			} else {
				// Graph's per-number override sets the same URL, keeping
				// the app secret.
				code, _, raw := s.Raw("POST", "/"+cloudVersion+"/"+pnid, stack.Auth{Bearer: key}, "application/json",
					[]byte(`{"webhook_configuration":{"override_callback_uri":"`+d.webhook+`","verify_token":"`+cloudVerifyToken+`"}}`))
				if code != 200 || !strings.Contains(string(raw), `"success":true`) {
					t.Fatalf("the webhook override = %d %s", code, raw)
				}
			}
			if r := s.Do("GET", "/v1/configs/webhook", stack.Auth{APIKey: key}, nil); r.Body["url"] != d.webhook || r.Body["format"] != "cloud" ||
				r.Body["app_secret"] == cloudAppSecret || r.Body["verify_token"] == cloudVerifyToken {
				t.Errorf("GET /v1/configs/webhook = %s, want the URL, format cloud, the secrets masked", r.Raw)
			}
			// A URL that does not answer the challenge is refused.
			r = s.TryDo("POST", "/v1/configs/webhook", stack.Auth{APIKey: key}, map[string]any{
				"url": d.webhook, "format": "cloud", "verify_token": "wrong", "app_secret": cloudAppSecret})
			if r.Status != 400 || !strings.Contains(string(r.Raw), "subscription check") {
				t.Errorf("a URL that fails the subscription check = %d %s, want 400", r.Status, r.Raw)
			}
			if r := s.Do("GET", "/v1/configs/webhook", stack.Auth{APIKey: key}, nil); r.Body["url"] != d.webhook || r.Body["format"] != "cloud" {
				t.Errorf("the refused URL replaced the webhook: %s", r.Raw)
			}

			if sdk == "kapso" {
				// Templates over Graph routes: created PENDING, approved
				// (a message_template_status_update webhook), listed.
				var created struct{ ID, Status, Category string }
				d.must("templateCreate", map[string]any{"businessAccountId": waba, "name": cloudTemplateName, "language": "en_US", "category": "UTILITY",
					"components": []any{
						map[string]any{"type": "BODY", "text": "Order {{2}} for {{1}}.", "example": map[string]any{"body_text": [][]string{{"Ann", "7"}}}},
						map[string]any{"type": "BUTTONS", "buttons": []any{map[string]string{"type": "QUICK_REPLY", "text": "Got it"}}}}}, &created)
				if created.Status != "PENDING" || len(created.ID) != 16 || created.Category != "UTILITY" {
					t.Fatalf("template create answered %+v, want PENDING with a 16-digit id", created)
				}
				d.waitHook("the approval of "+created.ID, func(n cloudNote) bool {
					if len(n.Entry) != 1 || n.Entry[0].ID != waba || len(n.Entry[0].Changes) != 1 || n.Entry[0].Changes[0].Field != "message_template_status_update" {
						return false
					}
					var v struct {
						Event string `json:"event"`
						ID    int64  `json:"message_template_id"`
					}
					json.Unmarshal(n.Entry[0].Changes[0].Value, &v)
					return v.Event == "APPROVED" && fmt.Sprint(v.ID) == created.ID
				})
				var list struct {
					Data []struct{ ID, Name, Status string }
				}
				d.must("templateList", map[string]any{"businessAccountId": waba, "name": cloudTemplateName}, &list)
				if len(list.Data) != 1 || list.Data[0].ID != created.ID || list.Data[0].Status != "APPROVED" {
					t.Errorf("template list = %+v, want the approved template", list)
				}
				var one struct{ ID, Name string }
				d.must("templateGet", map[string]any{"businessAccountId": waba, "templateId": created.ID}, &one)
				if one.ID != created.ID || one.Name != cloudTemplateName {
					t.Errorf("template get = %+v", one)
				}
				// Edited (Graph's POST /{template-id}): reviewed again,
				// approved again, and sent below with the new text.
				code, _, raw := s.Raw("POST", "/"+cloudVersion+"/"+created.ID, stack.Auth{Bearer: key}, "application/json", []byte(`{"components":[
					{"type":"BODY","text":"Hi {{1}}, order {{2}} is ready.","example":{"body_text":[["Ann","7"]]}},
					{"type":"FOOTER","text":"Bakery"},
					{"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"Got it"}]}]}`))
				if code != 200 || !strings.Contains(string(raw), `"success":true`) || !strings.Contains(string(raw), `"status":"PENDING"`) {
					t.Fatalf("template edit = %d %s", code, raw)
				}
				d.waitHooks("the edit's approval (the second)", 2, func(n cloudNote) bool {
					return len(n.Entry) == 1 && len(n.Entry[0].Changes) == 1 && n.Entry[0].Changes[0].Field == "message_template_status_update" &&
						strings.Contains(string(n.Entry[0].Changes[0].Value), `"APPROVED"`)
				})
				// The business profile.
				var ok struct{ Success bool }
				d.must("profileUpdate", map[string]any{"phoneNumberId": pnid, "about": "Fresh bread ☀", "vertical": "GROCERY", "websites": []string{"https://bakery.example"}}, &ok)
				var prof struct {
					Data []struct {
						About, Vertical, MessagingProduct string
						Websites                          []string
					}
				}
				d.must("profileGet", map[string]any{"phoneNumberId": pnid}, &prof)
				if !ok.Success || len(prof.Data) != 1 || prof.Data[0].About != "Fresh bread ☀" || prof.Data[0].Vertical != "GROCERY" || len(prof.Data[0].Websites) != 1 || prof.Data[0].MessagingProduct != "whatsapp" {
					t.Errorf("business profile = %+v after an update answered %+v", prof, ok)
				}
				if a := d.call("profileUpdate", map[string]any{"phoneNumberId": pnid, "vertical": "SPACESHIPS"}); a.OK || a.Code != 131009 || a.HTTPStatus != 400 {
					t.Errorf("a bad vertical = %+v, want Graph error 131009 (HTTP 400)", a)
				}
				// A template deleted by name.
				var gone struct{ ID string }
				d.must("templateCreate", map[string]any{"businessAccountId": waba, "name": "short_lived", "language": "en", "category": "UTILITY",
					"components": []any{map[string]any{"type": "BODY", "text": "Bye"}}}, &gone)
				var del struct{ Success bool }
				d.must("templateDelete", map[string]any{"businessAccountId": waba, "name": "short_lived"}, &del)
				d.must("templateList", map[string]any{"businessAccountId": waba, "name": "short_lived"}, &list)
				if !del.Success || len(list.Data) != 0 {
					t.Errorf("template delete = %+v, then the list has %+v", del, list.Data)
				}
				// The business account and its numbers.
				code, _, raw = s.Raw("GET", "/"+cloudVersion+"/"+waba+"/phone_numbers", stack.Auth{Bearer: key}, "", nil)
				if code != 200 || !strings.Contains(string(raw), `"id":"`+pnid+`"`) || !strings.Contains(string(raw), `"display_phone_number":"`+bizWaID+`"`) {
					t.Errorf("GET /{waba-id}/phone_numbers = %d %s", code, raw)
				}
				var num struct {
					ID, DisplayPhoneNumber, VerifiedName, QualityRating string
				}
				d.must("phoneNumber", map[string]any{"phoneNumberId": pnid}, &num)
				if num.ID != pnid || num.DisplayPhoneNumber != bizWaID || num.QualityRating != "GREEN" {
					t.Errorf("GET /{phone-number-id} = %+v", num)
				}
			}

			// The customer writes (a name and text outside ASCII): the
			// SDK verifies the signature over the escaped body.
			inText := "Olá from " + sdk + " 😀"
			inID := phone.Text(bizWaID, inText)
			v := d.waitInbound(inID)
			if v.Messages[0].Text.Body != inText || v.Messages[0].Type != "text" || v.Messages[0].From != phone.Number() ||
				len(v.Contacts) != 1 || v.Contacts[0].Profile.Name != "José 😀" || v.Metadata.PhoneNumberID != pnid || v.Metadata.DisplayPhoneNumber != bizWaID {
				t.Errorf("inbound text webhook = %+v", v)
			}

			send := func(op string, args map[string]any) string {
				t.Helper()
				var a sentAnswer
				d.must(op, args, &a)
				to, _ := args["to"].(string)
				return a.id(t, to)
			}
			to := phone.Number()
			var textID, imageID, buttonsID, reactionID, templateID string
			if sdk == "kapso" {
				textID = send("sendText", map[string]any{"phoneNumberId": pnid, "to": to, "body": "Hello from Kapso", "bizOpaqueCallbackData": "order-7"})
			} else {
				textID = send("send", map[string]any{"phoneNumberId": pnid, "to": to, "type": "text", "message": map[string]any{"body": "Hello from whatsapp-api-js"}, "callbackData": "order-7"})
			}
			phone.WaitFor(30*time.Second, "the text", func(e waphone.Event) bool {
				return e.Event == "message" && e.ID == textID && strings.HasPrefix(e.Text, "Hello from")
			})

			// Statuses: sent and delivered come whatever sent_status says;
			// read once the customer reads it; the callback data echoed.
			for _, st := range []string{"sent", "delivered"} {
				got := d.waitStatus(textID, st)
				if got.CallbackData != "order-7" || got.RecipientID != to || got.Pricing == nil || got.Pricing.PricingModel != "PMP" || got.Conversation == nil {
					t.Errorf("%s status = %+v, want biz_opaque_callback_data, conversation and PMP pricing", st, got)
				}
			}
			if err := phone.Read(t.Context(), textID); err != nil {
				t.Fatal(err)
			}
			d.waitStatus(textID, "read")

			// An image by upload.
			var up struct{ ID string }
			d.must("upload", map[string]any{"phoneNumberId": pnid, "type": "image/png", "file": base64.StdEncoding.EncodeToString(redPixel), "fileName": "red.png"}, &up)
			if up.ID == "" {
				t.Fatal("upload answered no id")
			}
			var meta struct {
				URL, SHA256 string
				FileSize    int64 `json:"fileSize"`  // Kapso's camelCase
				FileSize2   int64 `json:"file_size"` // as Graph sends it
			}
			d.must("mediaGet", map[string]any{"mediaId": up.ID, "phoneNumberId": pnid}, &meta)
			sum := sha256.Sum256(redPixel)
			if meta.URL == "" || meta.SHA256 != hex.EncodeToString(sum[:]) || meta.FileSize+meta.FileSize2 != int64(len(redPixel)) {
				t.Errorf("media metadata = %+v", meta)
			}
			if sdk == "kapso" {
				imageID = send("sendImage", map[string]any{"phoneNumberId": pnid, "to": to, "image": map[string]any{"id": up.ID, "caption": "red"}})
			} else {
				imageID = send("send", map[string]any{"phoneNumberId": pnid, "to": to, "type": "image", "message": map[string]any{"id": up.ID, "caption": "red"}})
			}
			phone.WaitFor(30*time.Second, "the image", func(e waphone.Event) bool {
				return e.Event == "message" && e.ID == imageID && e.Type == "image" && e.SHA256 == hex.EncodeToString(sum[:])
			})

			// Interactive buttons, and the customer taps one.
			if sdk == "kapso" {
				buttonsID = send("sendInteractiveButtons", map[string]any{"phoneNumberId": pnid, "to": to, "bodyText": "Pick one",
					"buttons": []any{map[string]string{"id": "yes", "title": "Yes"}, map[string]string{"id": "no", "title": "No"}}})
			} else {
				buttonsID = send("send", map[string]any{"phoneNumberId": pnid, "to": to, "type": "buttons", "message": map[string]any{"body": "Pick one",
					"buttons": []any{map[string]string{"id": "yes", "title": "Yes"}, map[string]string{"id": "no", "title": "No"}}}})
			}
			phone.WaitFor(30*time.Second, "the buttons", func(e waphone.Event) bool {
				return e.Event == "message" && e.ID == buttonsID && e.Type == "interactive"
			})
			tap, err := phone.Choose(t.Context(), buttonsID, "yes")
			if err != nil {
				t.Fatal(err)
			}
			v = d.waitInbound(tap)
			if v.Messages[0].Type != "interactive" || !strings.Contains(string(v.Messages[0].Interactive), `"button_reply"`) || !strings.Contains(string(v.Messages[0].Interactive), `"id":"yes"`) {
				t.Errorf("the button reply = %s %s", v.Messages[0].Type, v.Messages[0].Interactive)
			}

			// A reaction to the customer's message.
			if sdk == "kapso" {
				reactionID = send("sendReaction", map[string]any{"phoneNumberId": pnid, "to": to, "reaction": map[string]any{"messageId": inID, "emoji": "👍"}})
			} else {
				reactionID = send("send", map[string]any{"phoneNumberId": pnid, "to": to, "type": "reaction", "message": map[string]any{"messageId": inID, "emoji": "👍"}})
			}
			phone.WaitFor(30*time.Second, "the reaction", func(e waphone.Event) bool { return e.Event == "message" && e.ID == reactionID && e.Type == "reaction" })

			// The template (approved above), with its parameters; the
			// customer taps its quick reply.
			if sdk == "kapso" {
				templateID = send("sendTemplate", map[string]any{"phoneNumberId": pnid, "to": to, "template": map[string]any{"name": cloudTemplateName, "language": map[string]string{"code": "en_US"},
					"components": []any{map[string]any{"type": "body", "parameters": []any{map[string]string{"type": "text", "text": "Ann"}, map[string]string{"type": "text", "text": "7"}}}}}})
			} else {
				templateID = send("send", map[string]any{"phoneNumberId": pnid, "to": to, "type": "template", "message": map[string]any{"name": cloudTemplateName, "language": "en_US", "bodyParams": []string{"Ann", "7"}}})
			}
			phone.WaitFor(30*time.Second, "the template", func(e waphone.Event) bool {
				return e.Event == "message" && e.ID == templateID && e.Content.GetTemplate().GetHydrated().GetBody() == "Hi Ann, order 7 is ready."
			})
			templateSent = true
			qr, err := phone.Choose(t.Context(), templateID, "Got it")
			if err != nil {
				t.Fatal(err)
			}
			v = d.waitInbound(qr)
			if v.Messages[0].Type != "button" || !strings.Contains(string(v.Messages[0].Button), `"text":"Got it"`) || v.Messages[0].Context == nil || v.Messages[0].Context.ID != templateID {
				t.Errorf("the quick reply = %s %s %+v", v.Messages[0].Type, v.Messages[0].Button, v.Messages[0].Context)
			}
			// A template that does not exist: a synchronous 132001.
			var bad driverAnswer
			if sdk == "kapso" {
				bad = d.call("sendTemplate", map[string]any{"phoneNumberId": pnid, "to": to, "template": map[string]any{"name": "no_such_template", "language": map[string]string{"code": "en_US"}}})
			} else {
				bad = d.call("send", map[string]any{"phoneNumberId": pnid, "to": to, "type": "template", "message": map[string]any{"name": "no_such_template", "language": "en_US"}})
			}
			if bad.OK || !strings.Contains(bad.Error+fmt.Sprint(bad.Code), "132001") {
				t.Errorf("an unknown template = %+v, want Graph error 132001", bad)
			}
			// Parameters that do not fit: a synchronous 132000.
			if sdk == "kapso" {
				bad = d.call("sendTemplate", map[string]any{"phoneNumberId": pnid, "to": to, "template": map[string]any{"name": cloudTemplateName, "language": map[string]string{"code": "en_US"},
					"components": []any{map[string]any{"type": "body", "parameters": []any{map[string]string{"type": "text", "text": "Ann"}}}}}})
			} else {
				bad = d.call("send", map[string]any{"phoneNumberId": pnid, "to": to, "type": "template", "message": map[string]any{"name": cloudTemplateName, "language": "en_US", "bodyParams": []string{"Ann"}}})
			}
			if bad.OK || !strings.Contains(bad.Error+fmt.Sprint(bad.Code), "132000") {
				t.Errorf("a template with one parameter of two = %+v, want Graph error 132000", bad)
			}
			// A number that is not on WhatsApp: 200, then failed with 131026.
			var nobody string
			if sdk == "kapso" {
				nobody = send("sendText", map[string]any{"phoneNumberId": pnid, "to": "4915199990000", "body": "anyone?"})
			} else {
				nobody = send("send", map[string]any{"phoneNumberId": pnid, "to": "4915199990000", "type": "text", "message": map[string]any{"body": "anyone?"}})
			}
			if st := d.waitStatus(nobody, "failed"); len(st.Errors) != 1 || st.Errors[0].Code != 131026 {
				t.Errorf("a text to a number not on the network failed with %+v, want 131026", st.Errors)
			}

			// The other types through the Graph route itself (what every
			// SDK ends up sending): location, contacts, a list, a reply.
			graphSend := func(body string) string {
				t.Helper()
				code, _, raw := s.Raw("POST", "/"+cloudVersion+"/"+pnid+"/messages", stack.Auth{Bearer: key}, "application/json",
					[]byte(`{"messaging_product":"whatsapp","recipient_type":"individual","to":"`+to+`",`+body+`}`))
				var a sentAnswer
				if err := json.Unmarshal(raw, &a); err != nil || code != 200 {
					t.Fatalf("POST /messages %s = %d %s", body, code, raw)
				}
				return a.id(t, to)
			}
			for _, c := range []struct{ typ, body string }{
				{"location", `"type":"location","location":{"latitude":52.52,"longitude":13.405,"name":"Shop","address":"Main St 1"}`},
				{"contacts", `"type":"contacts","contacts":[{"name":{"formatted_name":"Ann Lee","first_name":"Ann"},"phones":[{"phone":"+15550123","type":"WORK"}]}]`},
				{"interactive", `"type":"interactive","interactive":{"type":"list","body":{"text":"Pick a slot"},"action":{"button":"Slots","sections":[{"title":"Today","rows":[{"id":"s1","title":"9:00"}]}]}}`},
				{"text", `"type":"text","context":{"message_id":"` + inID + `"},"text":{"body":"a reply","preview_url":false}`},
			} {
				id := graphSend(c.body)
				e := phone.WaitFor(30*time.Second, "the "+c.typ, func(e waphone.Event) bool { return e.Event == "message" && e.ID == id })
				if e.Type != c.typ || (c.typ == "text" && (e.Context == nil || e.Context.ID != inID)) {
					t.Errorf("the %s arrived as %s (context %+v)", c.typ, e.Type, e.Context)
				}
			}

			// Mark the customer's message read: its sender sees the receipt.
			var ok struct{ Success bool }
			d.must("markRead", map[string]any{"phoneNumberId": pnid, "messageId": inID}, &ok)
			if !ok.Success {
				t.Errorf("markRead answered %+v", ok)
			}
			phone.WaitFor(30*time.Second, "the read receipt", func(e waphone.Event) bool { return e.Event == "receipt" && e.ID == inID && e.Status == "read" })

			// An image from the customer, downloaded with the SDK.
			photo := filepath.Join(t.TempDir(), "photo.png")
			if err := os.WriteFile(photo, redPixel, 0o600); err != nil {
				t.Fatal(err)
			}
			pid, err := phone.SendMedia(t.Context(), bizWaID, photo, "image", "", "", "")
			if err != nil {
				t.Fatal(err)
			}
			v = d.waitInbound(pid)
			if v.Messages[0].Type != "image" || v.Messages[0].Image.ID == "" {
				t.Fatalf("inbound image webhook = %+v", v.Messages[0])
			}
			var got string
			d.must("download", map[string]any{"mediaId": v.Messages[0].Image.ID, "phoneNumberId": pnid}, &got)
			if b, _ := base64.StdEncoding.DecodeString(got); !bytes.Equal(b, redPixel) {
				t.Errorf("the downloaded image has %d bytes, want the %d the customer sent", len(b), len(redPixel))
			}
			var deleted struct{ Success bool }
			d.must("mediaDelete", map[string]any{"mediaId": up.ID, "phoneNumberId": pnid}, &deleted)
			if !deleted.Success {
				t.Errorf("media delete answered %+v", deleted)
			}

			// 360dialog's Cloud flavour: the same bodies with D360-API-KEY
			// alone, no version and no number in the path.
			d360 := stack.Auth{APIKey: key}
			code, _, raw := s.Raw("POST", "/messages", d360, "application/json",
				[]byte(`{"messaging_product":"whatsapp","to":"`+to+`","type":"text","text":{"body":"via 360dialog's flavour"}}`))
			var flavour sentAnswer
			json.Unmarshal(raw, &flavour)
			if code != 200 {
				t.Fatalf("POST /messages = %d %s", code, raw)
			}
			fid := flavour.id(t, to)
			phone.WaitFor(30*time.Second, "the flavour's text", func(e waphone.Event) bool { return e.Event == "message" && e.ID == fid })
			var form bytes.Buffer
			mw := multipart.NewWriter(&form)
			mw.WriteField("messaging_product", "whatsapp")
			mw.WriteField("type", "image/png")
			fw, _ := mw.CreateFormFile("file", "red.png")
			fw.Write(redPixel)
			mw.Close()
			code, _, raw = s.Raw("POST", "/media", d360, mw.FormDataContentType(), form.Bytes())
			var fm struct{ ID string }
			if json.Unmarshal(raw, &fm); code != 200 || fm.ID == "" {
				t.Fatalf("POST /media = %d %s", code, raw)
			}
			code, _, raw = s.Raw("GET", "/"+fm.ID, d360, "", nil)
			var fmeta struct{ URL string }
			if json.Unmarshal(raw, &fmeta); code != 200 || fmeta.URL == "" {
				t.Fatalf("GET /{media-id} = %d %s", code, raw)
			}
			u, _ := url.Parse(fmeta.URL)
			code, _, raw = s.Raw("GET", u.RequestURI(), stack.Auth{}, "", nil) // the URL needs no credentials
			if code != 200 || !bytes.Equal(raw, redPixel) {
				t.Errorf("the media URL = %d with %d bytes, want the file", code, len(raw))
			}
			if code, _, raw = s.Raw("DELETE", "/"+fm.ID, d360, "", nil); code != 200 || !strings.Contains(string(raw), `"success":true`) {
				t.Errorf("DELETE /{media-id} = %d %s", code, raw)
			}
			if code, _, _ = s.Raw("GET", "/"+fm.ID, d360, "", nil); code != 400 {
				t.Errorf("GET of a deleted media id = %d, want 400 (Graph 100)", code)
			}

			// The on-prem API of the same deployment, at the same time.
			onprem := s.Do("POST", "/v1/messages", stack.Auth{APIKey: key}, map[string]any{"to": to, "type": "text", "text": map[string]string{"body": "on-prem too"}})
			opID := onprem.Body["messages"].([]any)[0].(map[string]any)["id"].(string)
			phone.WaitFor(30*time.Second, "the on-prem text", func(e waphone.Event) bool { return e.Event == "message" && e.ID == opID })
			d.waitStatus(opID, "delivered")

			// 25 hours later the window is closed: 200, then a failed
			// status with 131047.
			if code, body := s.Sandbox("POST", "/sandbox/clock", map[string]string{"advance": "25h"}); code != 200 {
				t.Fatalf("POST /sandbox/clock = %d %v", code, body)
			}
			var late string
			if sdk == "kapso" {
				late = send("sendText", map[string]any{"phoneNumberId": pnid, "to": to, "body": "still there?"})
			} else {
				late = send("send", map[string]any{"phoneNumberId": pnid, "to": to, "type": "text", "message": map[string]any{"body": "still there?"}})
			}
			failed := d.waitStatus(late, "failed")
			if len(failed.Errors) != 1 || failed.Errors[0].Code != 131047 {
				t.Errorf("the late text failed with %+v, want 131047", failed.Errors)
			}
			if code, body := s.Sandbox("DELETE", "/sandbox/clock", nil); code != 200 {
				t.Fatalf("DELETE /sandbox/clock = %d %v", code, body)
			}
			d.checkAllVerified()
		})
	}
	if !templateSent {
		t.Error("no SDK sent the template")
	}
}
