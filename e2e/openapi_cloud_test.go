package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/e2e/stack"
)

// TestCloudAnswersMatchSpec: the Cloud API's requests and answers (and a
// Graph error) are the ones api/openapi.yaml describes.
func TestCloudAnswersMatchSpec(t *testing.T) {
	s := stack.New(t, stack.Options{})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	r := s.Do("POST", "/v1/account/api_keys", bearer(tok), nil)
	key := r.Body["api_keys"].([]any)[0].(map[string]any)["key"].(string)
	r = s.Do("GET", "/v1/configs/phone_number", stack.Auth{APIKey: key}, nil)
	pnid, waba := r.Body["phone_number_id"].(string), r.Body["waba_id"].(string)
	phone := s.NewPhone("15551230014", "Tia")
	phone.OpenWindow(bizWaID)
	spec := loadSpec(t, s.Client, s.URL)
	auth := stack.Auth{Bearer: key}
	checked := 0
	for _, rq := range []struct {
		method, path, body string
	}{
		{"POST", "/" + cloudVersion + "/" + pnid + "/messages", `{"messaging_product":"whatsapp","to":"` + phone.Number() + `","type":"text","text":{"body":"hi"}}`},
		{"POST", "/messages", `{"messaging_product":"whatsapp","to":"` + phone.Number() + `","type":"text","text":{"body":"hi again"}}`},
		{"POST", "/" + cloudVersion + "/" + pnid + "/messages", `{"messaging_product":"whatsapp","to":"` + phone.Number() + `","type":"hologram"}`},
		{"GET", "/" + cloudVersion + "/" + pnid, ""},
		{"GET", "/" + cloudVersion + "/" + waba + "/phone_numbers", ""},
		{"GET", "/" + cloudVersion + "/" + waba + "/message_templates", ""},
		{"GET", "/" + cloudVersion + "/" + pnid + "/whatsapp_business_profile", ""},
		{"POST", "/" + cloudVersion + "/" + pnid + "/whatsapp_business_profile", `{"messaging_product":"whatsapp","about":"Cloud tea"}`},
		{"GET", "/" + cloudVersion + "/106540000009999", ""},
	} {
		var body []byte
		ct := ""
		if rq.body != "" {
			body, ct = []byte(rq.body), "application/json"
			var v any
			json.Unmarshal(body, &v)
			if sch := spec.requestSchema(rq.method, rq.path); sch == nil {
				t.Errorf("%s %s takes no JSON body in api/openapi.yaml", rq.method, rq.path)
			} else if err := spec.validate(v, sch, "request"); err != nil {
				t.Errorf("%s %s: the request does not match api/openapi.yaml: %v", rq.method, rq.path, err)
			}
		}
		code, hdr, resp := s.Raw(rq.method, rq.path, auth, ct, body)
		if code == 404 || code >= 500 {
			t.Errorf("%s %s = %d %s", rq.method, rq.path, code, resp)
			continue
		}
		sch, err := spec.schemaFor(rq.method, rq.path, code)
		switch {
		case err != nil:
			t.Errorf("%s %s = %d: %v", rq.method, rq.path, code, err)
		case sch != nil && strings.HasPrefix(hdr.Get("Content-Type"), "application/json"):
			var v any
			if err := json.Unmarshal(resp, &v); err != nil {
				t.Errorf("%s %s: not JSON: %s", rq.method, rq.path, resp)
			} else if err := spec.validate(v, sch, "answer"); err != nil {
				t.Errorf("%s %s = %d does not match api/openapi.yaml: %v\n%s", rq.method, rq.path, code, err, resp)
			}
			checked++
		}
	}
	if checked < 8 {
		t.Errorf("only %d Cloud answers validated", checked)
	}
}
