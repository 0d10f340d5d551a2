package e2e

import (
	"testing"
	"time"

	"github.com/openwaba/openwaba/e2e/stack"
)

// TestOnPremProfile: the on-prem profile routes read and write the same
// business profile the Cloud whatsapp_business_profile edge serves, with
// the on-prem shapes and the profile's limits.
func TestOnPremProfile(t *testing.T) {
	s := stack.New(t, stack.Options{})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)

	r := s.Do("GET", "/v1/settings/business/profile", bearer(tok), nil)
	p, _ := r.Body["settings"].(map[string]any)
	if r.Status != 200 || p == nil {
		t.Fatalf("GET business profile = %d %s", r.Status, r.Raw)
	}
	if r := s.Do("POST", "/v1/settings/business/profile/", bearer(tok), map[string]any{
		"address": "1 Main St", "description": "We sell tea", "email": "shop@example.com", "vertical": "RETAIL",
		"websites": []string{"https://example.com", "https://shop.example.com"},
	}); r.Status != 200 {
		t.Fatalf("POST business profile = %d %s", r.Status, r.Raw)
	}
	if r := s.Do("PATCH", "/v1/settings/profile/about", bearer(tok), map[string]any{"text": "Open 9 to 5"}); r.Status != 200 {
		t.Fatalf("PATCH about = %d %s", r.Status, r.Raw)
	}
	r = s.Do("GET", "/v1/settings/business/profile", bearer(tok), nil)
	want := `{"settings":{"business":{"profile":{"address":"1 Main St","description":"We sell tea","email":"shop@example.com","vertical":"RETAIL","websites":["https://example.com","https://shop.example.com"]}}}`
	if r.Status != 200 || len(r.Raw) < len(want) || string(r.Raw[:len(want)]) != want {
		t.Errorf("GET business profile = %d %s, want it to begin %s", r.Status, r.Raw, want)
	}
	r = s.Do("GET", "/v1/settings/profile/about", bearer(tok), nil)
	if about := dig(r.Body, "settings", "profile", "about", "text"); r.Status != 200 || about != "Open 9 to 5" {
		t.Errorf("GET about = %d %s", r.Status, r.Raw)
	}
	// The Cloud edge serves the same profile.
	r = s.Do("GET", "/v1/configs/phone_number", bearer(tok), nil)
	pnid, _ := r.Body["phone_number_id"].(string)
	r = s.Do("GET", "/v23.0/"+pnid+"/whatsapp_business_profile", bearer(tok), nil)
	data, _ := r.Body["data"].([]any)
	if r.Status != 200 || len(data) != 1 || data[0].(map[string]any)["about"] != "Open 9 to 5" || data[0].(map[string]any)["address"] != "1 Main St" {
		t.Errorf("Cloud profile = %d %s", r.Status, r.Raw)
	}
	for _, tt := range []struct {
		method, path string
		body         any
		code         int
	}{
		{"POST", "/v1/settings/business/profile", map[string]any{"websites": []string{"https://a.example", "https://b.example", "https://c.example"}}, 1009},
		{"POST", "/v1/settings/business/profile", map[string]any{"vertical": "Tea shops"}, 1009},
		{"POST", "/v1/settings/business/profile", map[string]any{"email": "not an email"}, 1009},
		{"POST", "/v1/settings/business/profile", map[string]any{"hours": "9-5"}, 1010},
		{"POST", "/v1/settings/business/profile", map[string]any{}, 1008},
		{"PATCH", "/v1/settings/profile/about", map[string]any{}, 1008},
		{"PATCH", "/v1/settings/profile/about", map[string]any{"text": string(make([]byte, 140))}, 0},
	} {
		r := s.Do(tt.method, tt.path, bearer(tok), tt.body)
		if r.Status != 400 || (tt.code != 0 && r.ErrorCode() != tt.code) {
			t.Errorf("%s %s %v = %d %s, want 400 with %d", tt.method, tt.path, tt.body, r.Status, r.Raw, tt.code)
		}
	}
	// Nothing refused changed the profile.
	r = s.Do("GET", "/v1/settings/business/profile", bearer(tok), nil)
	if len(r.Raw) < len(want) || string(r.Raw[:len(want)]) != want {
		t.Errorf("after the refusals the profile is %s", r.Raw)
	}
}

// dig walks nested JSON objects.
func dig(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}
