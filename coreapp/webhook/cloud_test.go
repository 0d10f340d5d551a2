package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/graph"
	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/db/keystore"
)

var testNumber = Number{WaID: "15550100", PhoneNumberID: graph.PhoneNumberID(1), WABAID: graph.WABAID(1)}

func TestCloudBodies(t *testing.T) {
	raw := func(v any) []byte { b, _ := json.Marshal(v); return b }
	var c Contact
	c.Profile.Name, c.WaID = "José 😀", "4915112345678"
	in := InboundMessage{From: "4915112345678", ID: "ABC", Timestamp: "1700000000"}
	in.SetObject("text", map[string]string{"body": "Olá"})
	unknown := InboundMessage{From: "4915112345678", ID: "DEF", Timestamp: "1", Type: "unknown", Errors: []Error{Err(errcode.UnsupportedType, "")}}
	service := Status{ID: "m1", RecipientID: "4915112345678", Status: "sent", Timestamp: "2", CallbackData: "ref-1"}
	service.Conversation, service.Pricing = ConversationOf("c1", "service", 1700086400)
	marketing := Status{ID: "m2", RecipientID: "4915112345678", Status: "delivered", Timestamp: "3"}
	marketing.Conversation, marketing.Pricing = ConversationOf("c2", "marketing", 0)
	failed := Status{ID: "m3", RecipientID: "4915112345678", Status: "failed", Timestamp: "4", Errors: []Error{Err(errcode.ReEngagement, "")}}
	tpl := templateStatusEvent{Account: "15550100", Time: 5, Value: TemplateStatus{Event: "APPROVED", ID: 3, Name: "order", Language: "en_US", Reason: "NONE"}}

	const head = `{"object":"whatsapp_business_account","entry":[{"id":"102290000000001","changes":[{"field":`
	const meta = `"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550100","phone_number_id":"106540000000001"},`
	for _, tc := range []struct {
		name    string
		kind    string
		payload []byte
		want    string
	}{
		{"text, names outside ASCII", KindMessage, raw(messageEvent{c, in}),
			head + meta + `"contacts":[{"profile":{"name":"Jos\u00e9 \ud83d\ude00"},"wa_id":"4915112345678"}],"messages":[{"from":"4915112345678","id":"ABC","timestamp":"1700000000","type":"text","text":{"body":"Ol\u00e1"}}]}}]}]}`},
		{"unsupported message: Cloud's error object", KindMessage, raw(messageEvent{Message: unknown}),
			head + meta + `"messages":[{"from":"4915112345678","id":"DEF","timestamp":"1","type":"unknown","errors":[{"code":131051,"title":"Message type unknown","message":"Message type unknown","error_data":{"details":"Message type unknown"}}]}]}}]}]}`},
		{"a free service message, with its callback data", KindStatus, raw(service),
			head + meta + `"statuses":[{"id":"m1","status":"sent","timestamp":"2","recipient_id":"4915112345678","conversation":{"id":"c1","expiration_timestamp":"1700086400","origin":{"type":"service"}},"pricing":{"billable":false,"pricing_model":"PMP","category":"service","type":"free_customer_service"},"biz_opaque_callback_data":"ref-1"}]}}]}]}`},
		{"a billable template message", KindStatus, raw(marketing),
			head + meta + `"statuses":[{"id":"m2","status":"delivered","timestamp":"3","recipient_id":"4915112345678","conversation":{"id":"c2","origin":{"type":"marketing"}},"pricing":{"billable":true,"pricing_model":"PMP","category":"marketing","type":"regular"}}]}}]}]}`},
		{"470 is 131047", KindStatus, raw(failed),
			head + meta + `"statuses":[{"id":"m3","status":"failed","timestamp":"4","recipient_id":"4915112345678","errors":[{"code":131047,"title":"Re-engagement message","message":"Re-engagement message","error_data":{"details":"Re-engagement message"}}]}]}}]}]}`},
		{"template status: the waba and the Graph template id", KindTemplateStatus, raw(tpl),
			head + `"message_template_status_update","value":{"event":"APPROVED","message_template_id":1770000000000003,"message_template_name":"order","message_template_language":"en_US","reason":"NONE"}}]}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, skip, err := CloudBody(testNumber, tc.kind, tc.payload)
			if err != nil || skip {
				t.Fatalf("CloudBody: %v (skip %v)", err, skip)
			}
			if string(got) != tc.want {
				t.Errorf("body\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	if _, skip, err := CloudBody(testNumber, KindService, []byte(`{"media":{}}`)); err != nil || !skip {
		t.Errorf("service reports: skip %v, %v; Cloud has none", skip, err)
	}
}

// TestDispatcherCloudFormat: a Cloud-format number gets one event per
// POST, signed with its app secret over exactly the bytes sent, with
// Content-Length; a failure leaves only the undelivered events queued.
func TestDispatcherCloudFormat(t *testing.T) {
	d := dbtest.New(t, db.Core)
	if _, err := d.Exec("INSERT INTO accounts (id, wa_id, cc, phone_number, state, cert, created_at) VALUES (1, '15550100', '1', '5550100', 'verified', '', 0)"); err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got [][]byte
	fail := 0 // answer 500 to this many POSTs first
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte("s3cret"))
		m.Write(b)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("X-Hub-Signature-256") != "sha256="+hex.EncodeToString(m.Sum(nil)) || r.Header.Get("Content-Length") != strconv.Itoa(len(b)) || r.Header.Get("X-Extra") != "1" {
			t.Errorf("POST headers %v do not sign %s", r.Header, b)
		}
		if fail > 0 && len(got) == 1 {
			fail--
			w.WriteHeader(500)
			return
		}
		got = append(got, b)
	}))
	t.Cleanup(srv.Close)
	st := settings.NewStore(d)
	if _, err := st.SetWebhook(t.Context(), 1, srv.URL, map[string]string{"X-Extra": "1"},
		&settings.CloudWebhook{AppSecret: ks.Seal([]byte("s3cret"), AppSecretContext)}, settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(t.Context(), 1, []byte(`{"callback_backoff_delay_ms":50,"max_callback_backoff_delay_ms":50}`), settings.ActorAdmin); err != nil {
		t.Fatal(err)
	}
	fail = 1
	enqueueStatuses(t, d, 1, 3)
	disp := NewDispatcher(d, st, slog.New(slog.DiscardHandler), Options{Keystore: ks})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); disp.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitEmpty(t, d)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("got %d POSTs, want one per status (3)", len(got))
	}
	seen := map[string]bool{}
	for _, b := range got {
		var n graph.Notification
		if err := json.Unmarshal(b, &n); err != nil || n.Object != "whatsapp_business_account" || len(n.Entry) != 1 || n.Entry[0].ID != "102290000000001" {
			t.Fatalf("POST %s is not a Cloud notification", b)
		}
		v := n.Entry[0].Changes[0].Value.(map[string]any)
		sts := v["statuses"].([]any)
		if len(sts) != 1 {
			t.Fatalf("POST %s has %d statuses", b, len(sts))
		}
		id := sts[0].(map[string]any)["id"].(string)
		if seen[id] {
			t.Errorf("status %s delivered twice", id)
		}
		seen[id] = true
	}
	if !strings.HasPrefix(string(got[0]), `{"object":"whatsapp_business_account"`) {
		t.Errorf("first POST %s", got[0])
	}
}
