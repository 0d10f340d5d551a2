package api_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// TestWebhookRoutes checks what the /v1/webhooks routes ask coreapp and
// how they render its answers; what coreapp does with them is proved end to
// end (e2e TestWebhookEndpointsAndLog).
func TestWebhookRoutes(t *testing.T) {
	rec := &recorder{}
	f := newFixtureWith(t, unreachableCore(t, rec.intercept))
	const metaJSON = `"meta":{"api_status":"stable","version":"v2.53.0-openwaba"}`
	admin := &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}
	url := "https://hooks.example.com/wa"

	tests := []struct {
		name               string
		method, path, body string
		reply              proto.Message
		status             int
		want               string // the whole body
		wantMethod         string
		wantReq            proto.Message
	}{
		{
			name: "create, signed with a generated secret", method: "POST", path: "/v1/webhooks/endpoints",
			body:   `{"url":"` + url + `","headers":{"X-Env":"prod"},"events":["messages","statuses.failed"],"signed":true}`,
			reply:  &corev1.WebhookEndpoint{Id: 7, Url: url, Format: "onprem", Events: []string{"messages", "statuses.failed"}, Signed: true, Secret: "whsec_abc", CreatedAt: 1767225600000, UpdatedAt: 1767225600000},
			status: 201,
			want: `{"endpoints":[{"id":"7","default":false,"url":"` + url + `","headers":{},"format":"onprem","events":["messages","statuses.failed"],"signed":true,"secret":"whsec_abc",` +
				`"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-01T00:00:00.000Z"}],` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/CreateWebhookEndpoint",
			wantReq: &corev1.CreateWebhookEndpointRequest{Account: admin, Url: url, Headers: map[string]string{"X-Env": "prod"},
				Events: []string{"messages", "statuses.failed"}, GenerateSecret: true},
		},
		{
			name: "create with a given secret and the cloud format", method: "POST", path: "/v1/webhooks/endpoints",
			body:       `{"url":"` + url + `","format":"cloud","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}`,
			reply:      &corev1.WebhookEndpoint{Id: 8},
			status:     201,
			wantMethod: "/core.v1.Core/CreateWebhookEndpoint",
			wantReq:    &corev1.CreateWebhookEndpointRequest{Account: admin, Url: url, Format: "cloud", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		},
		{
			name: "patch only events of the first endpoint", method: "PATCH", path: "/v1/webhooks/endpoints/0",
			body:       `{"events":[]}`,
			reply:      &corev1.WebhookEndpoint{Id: 0, Url: url, Format: "onprem"},
			status:     200,
			want:       `{"endpoints":[{"id":"0","default":true,"url":"` + url + `","headers":{},"format":"onprem","events":[],"signed":false}],` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/UpdateWebhookEndpoint",
			wantReq:    &corev1.UpdateWebhookEndpointRequest{Account: admin, Id: 0, SetEvents: true, Events: []string{}},
		},
		{
			name: "patch url and headers", method: "PATCH", path: "/v1/webhooks/endpoints/3",
			body:       `{"url":"` + url + `","headers":{}}`,
			reply:      &corev1.WebhookEndpoint{Id: 3},
			status:     200,
			wantMethod: "/core.v1.Core/UpdateWebhookEndpoint",
			wantReq:    &corev1.UpdateWebhookEndpointRequest{Account: admin, Id: 3, Url: proto.String(url), SetHeaders: true, Headers: map[string]string{}},
		},
		{
			name: "rotate with the default grace", method: "POST", path: "/v1/webhooks/endpoints/3/secret", body: `{}`,
			reply:      &corev1.WebhookEndpoint{Id: 3, Signed: true, Secret: "whsec_new", PreviousSecretExpiresAt: 1767312000000},
			status:     200,
			want:       `{"endpoints":[{"id":"3","default":false,"url":"","headers":{},"format":"","events":[],"signed":true,"secret":"whsec_new","previous_secret_expires_at":"2026-01-02T00:00:00.000Z"}],` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/RotateWebhookSecret",
			wantReq:    &corev1.RotateWebhookSecretRequest{Account: admin, Id: 3, GraceSeconds: 86400},
		},
		{
			name: "rotate now", method: "POST", path: "/v1/webhooks/endpoints/3/secret", body: `{"grace_seconds":0}`,
			reply: &corev1.WebhookEndpoint{Id: 3}, status: 200,
			wantMethod: "/core.v1.Core/RotateWebhookSecret",
			wantReq:    &corev1.RotateWebhookSecretRequest{Account: admin, Id: 3},
		},
		{
			name: "delete", method: "DELETE", path: "/v1/webhooks/endpoints/3",
			reply: &corev1.DeleteWebhookEndpointResponse{}, status: 200, want: `{` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/DeleteWebhookEndpoint",
			wantReq:    &corev1.WebhookEndpointRequest{Account: admin, Id: 3},
		},
		{
			name: "list deliveries with every filter", method: "GET",
			path: "/v1/webhooks/deliveries?status=failing,dead&event=statuses&since=1767225600&until=2026-01-02T00:00:00Z&message_id=wamid.X&endpoint_id=0&limit=2",
			reply: &corev1.WebhookDeliveries{NextBefore: 41, Deliveries: []*corev1.WebhookDelivery{{
				Id: 42, EventId: 9, Topic: "statuses.failed", MessageId: "wamid.X", State: "failing", Attempts: 1,
				CreatedAt: 1767225600000, UpdatedAt: 1767225601000, NextAttemptAt: 1767225602000, EventJson: []byte(`{"id":"wamid.X"}`),
				Log: []*corev1.WebhookAttempt{{N: 1, At: 1767225601000, Url: url, HttpStatus: 502, LatencyMs: 12, Response: "bad gateway"}},
			}}},
			status: 200,
			want: `{"deliveries":[{"id":"42","event_id":"9","endpoint_id":"0","event":"statuses.failed","message_id":"wamid.X","status":"failing","attempts_count":1,` +
				`"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-01T00:00:01.000Z","next_attempt_at":"2026-01-01T00:00:02.000Z","payload":{"id":"wamid.X"},` +
				`"attempts":[{"n":1,"at":"2026-01-01T00:00:01.000Z","url":"` + url + `","http_status":502,"latency_ms":12,"response":"bad gateway"}]}],` +
				`"paging":{"cursors":{"after":"41"},"next":"/v1/webhooks/deliveries?after=41\u0026endpoint_id=0\u0026event=statuses\u0026limit=2\u0026message_id=wamid.X\u0026since=1767225600\u0026status=failing%2Cdead\u0026until=2026-01-02T00%3A00%3A00Z"},` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/ListWebhookDeliveries",
			wantReq: &corev1.ListWebhookDeliveriesRequest{Account: admin, Limit: 2, Filter: &corev1.WebhookDeliveryFilter{
				States: []string{"failing", "dead"}, Topic: "statuses", Since: 1767225600000, Until: 1767312000000, MessageId: "wamid.X", HasEndpoint: true}},
		},
		{
			name: "next page", method: "GET", path: "/v1/webhooks/deliveries?after=41",
			reply: &corev1.WebhookDeliveries{}, status: 200, want: `{"deliveries":[],` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/ListWebhookDeliveries",
			wantReq:    &corev1.ListWebhookDeliveriesRequest{Account: admin, Before: 41, Filter: &corev1.WebhookDeliveryFilter{}},
		},
		{
			name: "replay one", method: "POST", path: "/v1/webhooks/deliveries/42/replay",
			reply: &corev1.ReplayWebhookDeliveriesResponse{Replayed: 1}, status: 200, want: `{"replayed":1,` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/ReplayWebhookDeliveries",
			wantReq:    &corev1.ReplayWebhookDeliveriesRequest{Account: admin, Id: 42},
		},
		{
			name: "replay a range", method: "POST", path: "/v1/webhooks/deliveries/replay",
			body:  `{"status":["failing","dead"],"since":1767225600,"until":"2026-01-02T00:00:00Z","endpoint_id":"5"}`,
			reply: &corev1.ReplayWebhookDeliveriesResponse{Replayed: 12}, status: 200, want: `{"replayed":12,` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/ReplayWebhookDeliveries",
			wantReq: &corev1.ReplayWebhookDeliveriesRequest{Account: admin, Filter: &corev1.WebhookDeliveryFilter{
				States: []string{"failing", "dead"}, Since: 1767225600000, Until: 1767312000000, HasEndpoint: true, EndpointId: 5}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forward{tt.method, tt.path, tt.body, tt.reply, tt.status, tt.want, tt.wantMethod, tt.wantReq}.check(t, f, rec)
		})
	}
}

// TestWebhookRoutesRefuse checks the input the webapp refuses before it
// asks coreapp.
func TestWebhookRoutesRefuse(t *testing.T) {
	rec := &recorder{}
	f := newFixtureWith(t, unreachableCore(t, rec.intercept))
	tests := []struct {
		name, method, path, body string
		status, code             int
		details                  string
	}{
		{"create without url", "POST", "/v1/webhooks/endpoints", `{"events":["messages"]}`, 400, 1008, "url is required"},
		{"create with a relative url", "POST", "/v1/webhooks/endpoints", `{"url":"/wa"}`, 400, 1009, "absolute http or https URL"},
		{"create with an unknown field", "POST", "/v1/webhooks/endpoints", `{"url":"https://a.example","sign":true}`, 400, 1010, "parameter sign is not expected"},
		{"create with events not a list", "POST", "/v1/webhooks/endpoints", `{"url":"https://a.example","events":"messages"}`, 400, 1009, "events"},
		{"create with a bad header", "POST", "/v1/webhooks/endpoints", `{"url":"https://a.example","headers":{"Bad Name":"x"}}`, 400, 1009, "not a valid HTTP header name"},
		{"signed false with a secret", "POST", "/v1/webhooks/endpoints", `{"url":"https://a.example","signed":false,"secret":"whsec_x"}`, 400, 1009, "contradicts"},
		{"endpoint id not a number", "GET", "/v1/webhooks/endpoints/abc", ``, 404, 1006, "unknown webhook endpoint id"},
		{"grace not a number", "POST", "/v1/webhooks/endpoints/1/secret", `{"grace_seconds":"a day"}`, 400, 1009, "grace_seconds"},
		{"limit too large", "GET", "/v1/webhooks/deliveries?limit=500", ``, 400, 1009, "limit must be between 1 and 100"},
		{"bad since", "GET", "/v1/webhooks/deliveries?since=yesterday", ``, 400, 1009, "since must be Unix seconds or an RFC 3339 time"},
		{"bad cursor", "GET", "/v1/webhooks/deliveries?after=-3", ``, 400, 1009, "after must be the cursor"},
		{"since past the year 9999", "GET", "/v1/webhooks/deliveries?since=9223372036854775807", ``, 400, 1009, "since must be Unix seconds"},
		{"a status that is none", "GET", "/v1/webhooks/deliveries?status=pending,delivered,failing,dead,lost", ``, 400, 1009, "status must be"},
		{"bulk replay until before 1970", "POST", "/v1/webhooks/deliveries/replay", `{"status":"delivered","until":"1960-01-01T00:00:00Z"}`, 400, 1009, "until must be"},
		{"bulk replay without a filter", "POST", "/v1/webhooks/deliveries/replay", `{}`, 400, 1008, "at least one filter"},
		{"replay of a bad id", "POST", "/v1/webhooks/deliveries/x/replay", ``, 404, 1006, "unknown webhook delivery id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.doJSON(t, tt.method, tt.path, tt.body, bearer(f.admin))
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (body %s)", r.status, tt.status, r.body)
			}
			if !strings.Contains(string(r.body), fmt.Sprintf(`"code":%d`, tt.code)) || !strings.Contains(string(r.body), tt.details) {
				t.Errorf("body %s, want code %d and %q", r.body, tt.code, tt.details)
			}
			if calls := rec.taken(); len(calls) != 0 {
				t.Errorf("coreapp was asked %+v", calls)
			}
		})
	}
}
