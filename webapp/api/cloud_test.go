package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// graphResponse is a Cloud route's answer.
type graphResponse struct {
	status int
	header http.Header
	body   []byte
	err    struct {
		Message   string `json:"message"`
		Type      string `json:"type"`
		Code      int    `json:"code"`
		Subcode   int    `json:"error_subcode"`
		FBTraceID string `json:"fbtrace_id"`
		Data      struct {
			MessagingProduct string `json:"messaging_product"`
			Details          string `json:"details"`
		} `json:"error_data"`
	}
}

func (e *env) graph(t *testing.T, method, path, contentType string, body io.Reader, opts ...reqOpt) graphResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, o := range opts {
		o(req)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := graphResponse{status: res.StatusCode, header: res.Header, body: b}
	var env struct {
		Error *json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("%s %s: %d %q is not JSON", method, path, res.StatusCode, b)
	}
	if env.Error != nil {
		json.Unmarshal(*env.Error, &r.err)
	}
	return r
}

// TestCloudErrors: every Cloud route answers bad input in the Graph
// envelope with Meta's code and HTTP status, before coreapp is asked where
// the webapp can tell (coreapp is unreachable here: 131000/503 means the
// request was valid).
func TestCloudErrors(t *testing.T) {
	f := newFixture(t)
	key := bearer(f.key.Key)
	const pn = "/v23.0/106540000000001"
	text := `{"messaging_product":"whatsapp","to":"+49 151 1234567","type":"text","text":{"body":"hi","preview_url":false}}`
	form := func(fields map[string]string, file []byte, fileType string) (string, io.Reader) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		for k, v := range fields {
			w.WriteField(k, v)
		}
		if file != nil {
			h := map[string][]string{"Content-Disposition": {`form-data; name="file"; filename="a.png"`}}
			if fileType != "" {
				h["Content-Type"] = []string{fileType}
			}
			p, _ := w.CreatePart(h)
			p.Write(file)
		}
		w.Close()
		return w.FormDataContentType(), &b
	}
	for _, c := range []struct {
		name, method, path, body string
		ct                       string
		opts                     []reqOpt
		status, code, subcode    int
		details                  string
	}{
		{"no credentials", "POST", pn + "/messages", text, "application/json", nil, 401, 190, 0, "missing credentials"},
		{"a bad token", "POST", pn + "/messages", text, "application/json", []reqOpt{bearer("nope")}, 401, 190, 0, "invalid token"},
		{"a revoked-looking key as D360-API-KEY", "POST", pn + "/messages", text, "application/json", []reqOpt{d360("nope")}, 401, 190, 0, "Invalid api_key"},
		{"the monitoring scheme", "GET", pn, "", "", []reqOpt{header("Authorization", "Apikey "+monitoringKey)}, 401, 190, 0, ""},
		{"a waba id as the number", "POST", "/v23.0/102290000000001/messages", text, "application/json", []reqOpt{key}, 400, 100, 33, "does not exist"},
		{"a media id as the number", "POST", "/v23.0/9d3c0a2e-5f4b-4c1e-9a7d-1b2c3d4e5f60/messages", text, "application/json", []reqOpt{key}, 400, 100, 33, "does not exist"},
		{"no messaging_product", "POST", pn + "/messages", `{"to":"4915112345678","type":"text","text":{"body":"hi"}}`, "application/json", []reqOpt{key}, 400, 131008, 0, "messaging_product"},
		{"another messaging_product", "POST", pn + "/messages", strings.Replace(text, `"whatsapp"`, `"sms"`, 1), "application/json", []reqOpt{key}, 400, 131009, 0, "messaging_product"},
		{"an unknown field", "POST", pn + "/messages", strings.Replace(text, `"to"`, `"extra":1,"to"`, 1), "application/json", []reqOpt{key}, 400, 100, 0, "extra"},
		{"hsm is on-prem only", "POST", pn + "/messages", `{"messaging_product":"whatsapp","to":"4915112345678","type":"hsm","hsm":{"namespace":"n","element_name":"x","language":{"policy":"deterministic","code":"en"}}}`, "application/json", []reqOpt{key}, 400, 131009, 0, "hsm"},
		{"a long callback", "POST", pn + "/messages", strings.Replace(text, `"to"`, `"biz_opaque_callback_data":"`+strings.Repeat("x", 513)+`","to"`, 1), "application/json", []reqOpt{key}, 400, 131009, 0, "512"},
		{"a bad recipient", "POST", pn + "/messages", strings.Replace(text, "+49 151 1234567", "abc", 1), "application/json", []reqOpt{key}, 400, 131009, 0, "phone number"},
		{"a template without namespace is valid", "POST", pn + "/messages", `{"messaging_product":"whatsapp","to":"4915112345678","type":"template","template":{"name":"x","language":{"code":"en_US"}}}`, "application/json", []reqOpt{key}, 503, 131000, 0, ""},
		{"a valid send reaches coreapp", "POST", pn + "/messages", text, "application/json", []reqOpt{key}, 503, 131000, 0, "Coreapp unreachable"},
		{"360dialog's flavour", "POST", "/messages", text, "application/json", []reqOpt{d360(f.key.Key)}, 503, 131000, 0, ""},
		{"mark read without message_id", "POST", pn + "/messages", `{"messaging_product":"whatsapp","status":"read"}`, "application/json", []reqOpt{key}, 400, 131008, 0, "message_id"},
		{"mark read with another status", "POST", pn + "/messages", `{"messaging_product":"whatsapp","status":"delivered","message_id":"x"}`, "application/json", []reqOpt{key}, 400, 131009, 0, "read"},
		{"mark read with a text", "POST", pn + "/messages", `{"messaging_product":"whatsapp","status":"read","message_id":"x","text":{}}`, "application/json", []reqOpt{key}, 400, 100, 0, "text"},
		{"not JSON", "POST", pn + "/messages", `{`, "application/json", []reqOpt{key}, 400, 131009, 0, "JSON"},
		{"an upload that is not multipart", "POST", pn + "/media", `{}`, "application/json", []reqOpt{key}, 400, 131009, 0, "multipart"},
		{"a number's template list", "GET", pn + "/message_templates", "", "", []reqOpt{key}, 400, 100, 33, ""},
		{"a bad template limit", "GET", "/v23.0/102290000000001/message_templates?limit=0", "", "", []reqOpt{key}, 400, 131009, 0, "limit"},
		{"template delete without name", "DELETE", "/v23.0/102290000000001/message_templates", "", "", []reqOpt{key}, 400, 131008, 0, "name"},
		{"template delete with a bad hsm_id", "DELETE", "/v23.0/102290000000001/message_templates?name=x&hsm_id=12", "", "", []reqOpt{key}, 400, 100, 33, ""},
		{"a template create that breaks the rules", "POST", "/v23.0/102290000000001/message_templates", `{"name":"Bad Name","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"x"}]}`, "application/json", []reqOpt{key}, 400, 131009, 0, "name"},
		{"the override without a URL", "POST", pn, `{"webhook_configuration":{}}`, "application/json", []reqOpt{key}, 400, 131008, 0, "override_callback_uri"},
		{"a user may not set the override", "POST", pn, `{"webhook_configuration":{"override_callback_uri":"https://x.test"}}`, "application/json", []reqOpt{bearer(f.alice)}, 403, 200, 0, "admin"},
		{"a profile with a bad vertical", "POST", pn + "/whatsapp_business_profile", `{"messaging_product":"whatsapp","vertical":"SPACESHIPS"}`, "application/json", []reqOpt{key}, 400, 131009, 0, "vertical"},
		{"a profile with nothing to change", "POST", pn + "/whatsapp_business_profile", `{"messaging_product":"whatsapp"}`, "application/json", []reqOpt{key}, 400, 131008, 0, "at least one"},
		{"a profile update reaches coreapp", "POST", pn + "/whatsapp_business_profile", `{"messaging_product":"whatsapp","about":"Hi"}`, "application/json", []reqOpt{key}, 503, 131000, 0, ""},
		{"profile fields that do not exist", "GET", pn + "/whatsapp_business_profile?fields=about,secret", "", "", []reqOpt{key}, 400, 131009, 0, "secret"},
		{"a template edit with nothing to change", "POST", "/v23.0/1770000000000001", `{}`, "application/json", []reqOpt{key}, 400, 131008, 0, "components or category"},
		{"a template edit of the name", "POST", "/v23.0/1770000000000001", `{"name":"x"}`, "application/json", []reqOpt{key}, 400, 100, 0, "name"},
		{"a template edit reaches coreapp", "POST", "/v23.0/1770000000000001", `{"category":"MARKETING"}`, "application/json", []reqOpt{key}, 503, 131000, 0, ""},
		{"a media id of another shape", "GET", "/v23.0/not-a-media-id!", "", "", []reqOpt{key}, 400, 100, 33, ""},
		{"a media URL without its signature", "GET", "/cloud/media/9d3c0a2e-5f4b-4c1e-9a7d-1b2c3d4e5f60", "", "", nil, 403, 200, 0, "not valid"},
		{"a media URL with a forged signature", "GET", "/cloud/media/9d3c0a2e-5f4b-4c1e-9a7d-1b2c3d4e5f60?pnid=106540000000001&expires=99999999999&signature=00", "", "", nil, 403, 200, 0, "not valid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			r := f.graph(t, c.method, c.path, c.ct, body, c.opts...)
			if r.status != c.status || r.err.Code != c.code || r.err.Subcode != c.subcode || !strings.Contains(r.err.Data.Details, c.details) {
				t.Fatalf("%s %s = %d %s; want %d with code %d subcode %d and details containing %q", c.method, c.path, r.status, r.body, c.status, c.code, c.subcode, c.details)
			}
			if r.err.Type != "OAuthException" || r.err.Data.MessagingProduct != "whatsapp" || r.err.FBTraceID == "" ||
				!strings.HasPrefix(r.err.Message, "(#") || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("envelope %s is not Graph's", r.body)
			}
		})
	}

	// Uploads: the multipart rules before coreapp.
	for _, c := range []struct {
		name    string
		fields  map[string]string
		file    []byte
		ftype   string
		query   string
		code    int
		details string
	}{
		{"no file", map[string]string{"messaging_product": "whatsapp", "type": "image/png"}, nil, "", "", 131008, "file"},
		{"no type", map[string]string{"messaging_product": "whatsapp"}, []byte("x"), "", "", 131008, "type"},
		{"a refused type", map[string]string{"messaging_product": "whatsapp", "type": "application/x-msdownload"}, []byte("x"), "", "", 131009, "not accepted"},
		{"another product", map[string]string{"messaging_product": "sms", "type": "image/png"}, []byte("x"), "", "", 131009, "messaging_product"},
		{"another product in the query", map[string]string{"type": "image/png"}, []byte("x"), "", "?messaging_product=sms", 131009, "messaging_product"},
		{"an unknown field", map[string]string{"messaging_product": "whatsapp", "color": "red"}, nil, "", "", 100, "color"},
		{"a long field", map[string]string{"messaging_product": strings.Repeat("w", 300)}, nil, "", "", 131009, "messaging_product"},
	} {
		t.Run("upload/"+c.name, func(t *testing.T) {
			ct, body := form(c.fields, c.file, c.ftype)
			r := f.graph(t, "POST", pn+"/media"+c.query, ct, body, key)
			if r.status != 400 || r.err.Code != c.code || !strings.Contains(r.err.Data.Details, c.details) {
				t.Fatalf("upload = %d %s; want 400 with code %d and %q", r.status, r.body, c.code, c.details)
			}
		})
	}
	ct, body := form(map[string]string{"messaging_product": "whatsapp", "type": "image/png"}, []byte("png"), "")
	if r := f.graph(t, "POST", pn+"/media", ct, body, key); r.status != 503 || r.err.Code != 131000 {
		t.Errorf("a valid upload = %d %s, want it to reach coreapp (503/131000)", r.status, r.body)
	}
	ct, body = form(nil, []byte("png"), "image/png") // whatsapp-api-js: product in the query, type on the part
	if r := f.graph(t, "POST", pn+"/media?messaging_product=whatsapp", ct, body, key); r.status != 503 || r.err.Code != 131000 {
		t.Errorf("an upload typed by its part = %d %s, want it to reach coreapp (503/131000)", r.status, r.body)
	}

	// Paths that are no Cloud routes keep the on-prem answers.
	if r := f.doJSON(t, "GET", "/v1/media", "", bearer(f.admin)); r.status != 405 {
		t.Errorf("GET /v1/media = %d, want the on-prem 405", r.status)
	}
	if r := f.doJSON(t, "GET", "/v16.0/106540000000001", "", key); r.status != 404 || len(r.errors) != 1 || r.errors[0].Code != 1006 {
		t.Errorf("a Graph version below v17.0 = %d %v, want the on-prem 404", r.status, r.errors)
	}
	if r := f.doJSON(t, "GET", "/nope", "", key); r.status != 404 || len(r.errors) != 1 || r.errors[0].Code != 1006 {
		t.Errorf("GET /nope = %d %v, want the on-prem 404", r.status, r.errors)
	}
}

// TestCloudCoreCalls: what a Cloud request asks of coreapp, and how
// coreapp's answers are rendered.
func TestCloudCoreCalls(t *testing.T) {
	rec := &recorder{}
	f := newFixtureWith(t, unreachableCore(t, rec.intercept))
	key := bearer(f.key.Key)
	const pn = "/v23.0/106540000000001"
	body := `{"messaging_product":"whatsapp","recipient_type":"individual","to":"+49 151 1234567","type":"text","text":{"body":"hi","preview_url":true},"biz_opaque_callback_data":"ref-9"}`

	rec.answer(func(string) error { return nil }, func(string) proto.Message { return &corev1.SendMessageResponse{Id: "wamid.X"} })
	r := f.graph(t, "POST", pn+"/messages", "application/json", strings.NewReader(body), key, header("X-Request-Id", "req-77"))
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"messaging_product":"whatsapp","contacts":[{"input":"+49 151 1234567","wa_id":"491511234567"}],"messages":[{"id":"wamid.X"}]}` {
		t.Errorf("send answered %d %s", r.status, r.body)
	}
	calls := rec.taken()
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	sm, ok := calls[0].req.(*corev1.SendMessageRequest)
	if !ok || sm.To != "491511234567" || sm.CallbackData != "ref-9" || !sm.HydrateNow || sm.RequestId != "req-77" ||
		sm.Account.GetPhoneNumberId() != 106540000000001 || sm.Account.GetWaId() != f.key.WaID || sm.Content.GetText().GetBody() != "hi" || !sm.Content.GetText().GetPreviewUrl() {
		t.Errorf("SendMessage request = %v", calls[0].req)
	}

	rec.answer(func(string) error { return nil }, nil)
	r = f.graph(t, "POST", pn+"/messages", "application/json", strings.NewReader(`{"messaging_product":"whatsapp","status":"read","message_id":"ABC","typing_indicator":{"type":"text"}}`), key)
	if mr, ok := rec.taken()[0].req.(*corev1.MarkReadRequest); r.status != 200 || strings.TrimSpace(string(r.body)) != `{"success":true}` || !ok || mr.MessageId != "ABC" {
		t.Errorf("mark read = %d %s, request %v", r.status, r.body, rec.taken()[0].req)
	}

	for _, c := range []struct {
		err                error
		status, code       int
		retryAfter, detail string
	}{
		{withDetail(codes.ResourceExhausted, "", &corev1.Error{Code: 1015, Details: "slow down"}), 429, 130429, "1", "slow down"},
		{withDetail(codes.InvalidArgument, "", &corev1.Error{Code: 2001, Details: "no template x in en"}), 404, 132001, "", "no template x"},
		{withDetail(codes.InvalidArgument, "", &corev1.Error{Code: 2000, Details: "body has 1 parameter, the template 2"}), 400, 132000, "", "parameter"},
		{withDetail(codes.InvalidArgument, "", &corev1.Error{Code: 1021}), 400, 131021, "", ""},
		{withDetail(codes.NotFound, "", &corev1.Error{Code: 1006, Details: "Unsupported request. Object with ID '106540000000001' does not exist"}), 400, 100, "", "does not exist"},
		{withDetail(codes.FailedPrecondition, "", &corev1.Error{Code: 1011, Details: "not verified"}), 400, 133010, "", "not verified"},
	} {
		rec.answer(func(string) error { return c.err }, nil)
		r := f.graph(t, "POST", pn+"/messages", "application/json", strings.NewReader(body), key)
		if r.status != c.status || r.err.Code != c.code || r.header.Get("Retry-After") != c.retryAfter || !strings.Contains(r.err.Data.Details, c.detail) {
			t.Errorf("coreapp error %v = %d %s (Retry-After %q), want %d/%d", c.err, r.status, r.body, r.header.Get("Retry-After"), c.status, c.code)
		}
	}

	rec.answer(func(string) error { return nil }, func(string) proto.Message {
		return &corev1.Account{WaId: "15550100", Vname: "Acme", State: "verified", PhoneNumberId: 106540000000001, WabaId: 102290000000001}
	})
	r = f.graph(t, "GET", "/v23.0/102290000000001/phone_numbers", "", nil, key)
	var page struct {
		Data []struct {
			ID                     string `json:"id"`
			VerifiedName           string `json:"verified_name"`
			CodeVerificationStatus string `json:"code_verification_status"`
		}
	}
	json.Unmarshal(r.body, &page)
	if r.status != 200 || len(page.Data) != 1 || page.Data[0].ID != "106540000000001" || page.Data[0].VerifiedName != "Acme" || page.Data[0].CodeVerificationStatus != "VERIFIED" {
		t.Errorf("phone_numbers = %d %s", r.status, r.body)
	}
	if ga, ok := rec.taken()[0].req.(*corev1.GetAccountRequest); !ok || ga.Account.GetPhoneNumberId() != 106540000000001 {
		t.Errorf("phone_numbers asked %v", rec.taken()[0].req)
	}
}
