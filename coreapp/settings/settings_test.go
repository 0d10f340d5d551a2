package settings

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
)

func TestApplyValidation(t *testing.T) {
	tests := []struct {
		name     string
		patch    string
		wantCode errcode.Code // 0: accepted
	}{
		{"empty object", `{}`, errcode.Missing},
		{"not an object", `[1]`, errcode.Invalid},
		{"not json", `{"webhooks":`, errcode.Invalid},
		{"unknown top-level field", `{"colour":"blue"}`, errcode.NotRequired},
		{"unknown nested field", `{"webhooks":{"urls":"https://x"}}`, errcode.NotRequired},
		{"wrong type", `{"sent_status":"yes"}`, errcode.Invalid},
		{"wrong nested type", `{"webhooks":{"url":42}}`, errcode.Invalid},
		{"https url", `{"webhooks":{"url":"https://hooks.example.com/wa"}}`, 0},
		{"http to loopback", `{"webhooks":{"url":"http://127.0.0.1:8080/hook"}}`, 0},
		{"http to localhost", `{"webhooks":{"url":"http://localhost/hook"}}`, 0},
		{"http to ipv6 loopback", `{"webhooks":{"url":"http://[::1]:8080/hook"}}`, 0},
		{"http to a public host", `{"webhooks":{"url":"http://example.com/hook"}}`, errcode.Invalid},
		{"ftp", `{"webhooks":{"url":"ftp://example.com/hook"}}`, errcode.Invalid},
		{"empty url disables", `{"webhooks":{"url":""}}`, 0},
		{"concurrency 12", `{"webhooks":{"max_concurrent_requests":12}}`, 0},
		{"concurrency 7", `{"webhooks":{"max_concurrent_requests":7}}`, errcode.Invalid},
		{"backoff as string", `{"callback_backoff_delay_ms":"1500"}`, 0},
		{"backoff zero", `{"callback_backoff_delay_ms":0}`, errcode.Invalid},
		{"max below step", `{"callback_backoff_delay_ms":5000,"max_callback_backoff_delay_ms":1000}`, errcode.Invalid},
		{"auto download", `{"media":{"auto_download":["image","document"]}}`, 0},
		{"auto download unknown type", `{"media":{"auto_download":["hologram"]}}`, errcode.Invalid},
		{"auto download twice", `{"media":{"auto_download":["image","image"]}}`, errcode.Invalid},
		{"auto download too long", `{"media":{"auto_download":["image","video","voice","sticker","audio","document","image"]}}`, errcode.Invalid},
		{"read-only wa_id ignored", `{"wa_id":"123","sent_status":true}`, 0},
		{"header", `{"webhooks":{"headers":{"X-Tenant":"a"}}}`, 0},
		{"header with newline", `{"webhooks":{"headers":{"X-Tenant":"a\r\nX: b"}}}`, errcode.Invalid},
		{"content-type header", `{"webhooks":{"headers":{"content-type":"text/plain"}}}`, errcode.Invalid},
		{"unhealthy below heartbeat", `{"heartbeat_interval":10,"unhealthy_interval":5}`, errcode.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Apply(Defaults(), []byte(tt.patch))
			var se *Error
			switch {
			case tt.wantCode == 0 && err != nil:
				t.Fatalf("Apply(%s) = %v, want accepted", tt.patch, err)
			case tt.wantCode != 0 && !errors.As(err, &se):
				t.Fatalf("Apply(%s) = %v, want error %d", tt.patch, err, tt.wantCode)
			case tt.wantCode != 0 && se.Code != tt.wantCode:
				t.Fatalf("Apply(%s) code = %d (%s), want %d", tt.patch, se.Code, se.Details, tt.wantCode)
			}
		})
	}
}

func TestApplyLeavesMissingFieldsAlone(t *testing.T) {
	cur := Defaults()
	cur.Webhooks.URL = "https://old.example.com"
	cur.CallbackBackoffDelayMs = 1000
	got, err := Apply(cur, []byte(`{"webhooks":{"message":{"read":false}},"sent_status":true}`))
	if err != nil {
		t.Fatal(err)
	}
	want := cur
	want.Webhooks.Message.Read = false
	want.SentStatus = true
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Apply mismatch (-want +got):\n%s", diff)
	}
	if !got.SentEnabled() {
		t.Error("sent_status true must enable sent webhooks")
	}
}

func TestPassThroughCannotBeEnabled(t *testing.T) {
	if _, err := Apply(Defaults(), []byte(`{"pass_through":true}`)); err == nil {
		t.Error("enabling pass_through was accepted (on-prem refuses it since v2.35)")
	}
	on := Defaults()
	on.PassThrough = true // stored by an earlier version
	off, err := Apply(on, []byte(`{"pass_through":false}`))
	if err != nil || off.PassThrough {
		t.Fatalf("turning pass_through off = %+v, %v", off.PassThrough, err)
	}
	if _, err := Apply(off, []byte(`{"pass_through":true}`)); err == nil {
		t.Error("re-enabling pass_through was accepted")
	}
}

// TestStoredSettings: the on-prem settings openwaba keeps without acting on
// them are accepted, merged and answered; bad values and unknown fields
// are still refused.
func TestStoredSettings(t *testing.T) {
	cur, err := Apply(Defaults(), []byte(`{"db_garbagecollector_enable":false,"garbagecollector_enable":{"messages":false},"axolotl_context_striping_disabled":true,`+
		`"on_call_pager":"120363000000000000@g.us","verbose_logging":true,"log_level":"debug","tcp_listen_address":"any","webcallbacks":{"0":"https://a.example"}}`))
	if err != nil {
		t.Fatal(err)
	}
	cur, err = Apply(cur, []byte(`{"garbagecollector_enable":{"media":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cur)
	for _, want := range []string{`"db_garbagecollector_enable":false`, `"garbagecollector_enable":{"messages":false,"media":true}`, `"axolotl_context_striping_disabled":true`,
		`"on_call_pager":"120363000000000000@g.us"`, `"verbose_logging":true`, `"log_level":"debug"`, `"tcp_listen_address":"any"`, `"webcallbacks":{"0":"https://a.example"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("settings %s lack %s", b, want)
		}
	}
	if d, _ := json.Marshal(Defaults()); strings.Contains(string(d), "log_level") {
		t.Errorf("defaults answer a stored-only setting never set: %s", d)
	}
	for _, bad := range []string{`{"log_level":"loud"}`, `{"verbose_logging":"yes"}`, `{"garbagecollector_enable":{"stickers":true}}`, `{"no_such_setting":1}`} {
		if _, err := Apply(cur, []byte(bad)); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}

func TestStoreAccountFallsBackToDeployment(t *testing.T) {
	d := dbtest.New(t, db.Core)
	s := NewStore(d)
	ctx := t.Context()
	if _, err := s.Update(ctx, 0, []byte(`{"webhooks":{"url":"https://deploy.example.com"}}`), ActorAdmin); err != nil {
		t.Fatal(err)
	}
	// A fresh Store (no cache) sees the deployment's settings for an account
	// that has none of its own.
	got, err := NewStore(d).Get(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got.Webhooks.URL != "https://deploy.example.com" {
		t.Errorf("account 7 url = %q, want the deployment's", got.Webhooks.URL)
	}
	if _, err := s.Update(ctx, 7, []byte(`{"sent_status":true}`), ActorTenant); err != nil {
		t.Fatal(err)
	}
	got, err = NewStore(d).Get(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if !got.SentStatus || got.Webhooks.URL != "https://deploy.example.com" {
		t.Errorf("after PATCH account 7 = %+v, want its own copy with sent_status", got)
	}
	reset, err := s.Reset(ctx, 7, ActorTenant)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Defaults(), reset); diff != "" {
		t.Errorf("Reset mismatch (-want +got):\n%s", diff)
	}
}

// TestDeploymentFieldsAreTheAdmins: heartbeat_interval and
// unhealthy_interval drive every number's failover. A tenant (an API key)
// gets 1005 and changes nothing; the admin's change lands in account 0 and
// every account reads it from there.
func TestDeploymentFieldsAreTheAdmins(t *testing.T) {
	d := dbtest.New(t, db.Core)
	s := NewStore(d)
	ctx := t.Context()
	for _, patch := range []string{`{"heartbeat_interval":2}`, `{"unhealthy_interval":60,"sent_status":true}`} {
		_, err := s.Update(ctx, 7, []byte(patch), ActorTenant)
		var se *Error
		if !errors.As(err, &se) || se.Code != errcode.AccessDenied {
			t.Fatalf("tenant PATCH %s = %v, want error 1005", patch, err)
		}
	}
	got, _ := NewStore(d).Get(ctx, 7)
	if got.HeartbeatInterval != Defaults().HeartbeatInterval || got.SentStatus {
		t.Fatalf("a refused tenant PATCH changed something: %+v", got)
	}
	// The admin, addressing account 7 (the default number), changes them for
	// the deployment.
	if _, err := s.Update(ctx, 7, []byte(`{"heartbeat_interval":2,"unhealthy_interval":8,"sent_status":true}`), ActorAdmin); err != nil {
		t.Fatal(err)
	}
	fresh := NewStore(d)
	for _, id := range []int64{0, 7, 8} {
		got, err := fresh.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.HeartbeatInterval != 2 || got.UnhealthyInterval != 8 {
			t.Errorf("account %d: heartbeat %d unhealthy %d, want 2 and 8 from the deployment", id, got.HeartbeatInterval, got.UnhealthyInterval)
		}
	}
	if got, _ := fresh.Get(ctx, 7); !got.SentStatus {
		t.Error("account 7 lost its per-number sent_status")
	}
	// A tenant may still PATCH a GET body back: unchanged deployment fields
	// are refused too, so it must leave them out; its own fields work.
	if _, err := s.Update(ctx, 7, []byte(`{"sent_status":false}`), ActorTenant); err != nil {
		t.Fatal(err)
	}
	// A tenant's reset keeps the deployment's timings; the admin's resets them.
	got, err := s.Reset(ctx, 7, ActorTenant)
	if err != nil || got.HeartbeatInterval != 2 {
		t.Fatalf("tenant reset = %+v, %v; want heartbeat 2 kept", got, err)
	}
	got, err = s.Reset(ctx, 7, ActorAdmin)
	if err != nil || got.HeartbeatInterval != Defaults().HeartbeatInterval {
		t.Fatalf("admin reset = %+v, %v; want the default heartbeat", got, err)
	}
}

// TestTenantWebhookURL: a URL set by a tenant goes through CheckTenantURL
// and is marked, so the dispatcher guards it; the admin's is not checked.
func TestTenantWebhookURL(t *testing.T) {
	d := dbtest.New(t, db.Core)
	s := NewStore(d)
	ctx := t.Context()
	var checked []string
	s.CheckTenantURL = func(_ context.Context, u string) error {
		checked = append(checked, u)
		if strings.Contains(u, "internal") {
			return errors.New("the host internal.example resolves to a private address")
		}
		return nil
	}
	_, err := s.Update(ctx, 7, []byte(`{"webhooks":{"url":"https://internal.example/hook"}}`), ActorTenant)
	var se *Error
	if !errors.As(err, &se) || se.Code != errcode.Invalid || !strings.Contains(se.Details, "WA_WEBHOOK_ALLOW_PRIVATE") {
		t.Fatalf("tenant private URL = %v, want 1009 naming the setting", err)
	}
	if _, err := s.Update(ctx, 7, []byte(`{"webhooks":{"url":"https://hooks.example/in"}}`), ActorTenant); err != nil {
		t.Fatal(err)
	}
	got, _ := NewStore(d).Get(ctx, 7)
	if got.Webhooks.URL != "https://hooks.example/in" || !got.Webhooks.ByTenant {
		t.Fatalf("after a tenant set it: %+v, want the URL marked as the tenant's", got.Webhooks)
	}
	if b, _ := json.Marshal(got); strings.Contains(string(b), "tenant") {
		t.Errorf("the marker is shown: %s", b)
	}
	// The admin's URL: no check, no mark.
	if _, err := s.Update(ctx, 7, []byte(`{"webhooks":{"url":"http://127.0.0.1:9/hook"}}`), ActorAdmin); err != nil {
		t.Fatal(err)
	}
	got, _ = NewStore(d).Get(ctx, 7)
	if got.Webhooks.ByTenant {
		t.Error("an admin's URL is marked as a tenant's")
	}
	if len(checked) != 2 {
		t.Errorf("CheckTenantURL ran for %v, want the two tenant URLs only", checked)
	}
}
