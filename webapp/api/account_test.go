package api_test

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

func TestShards(t *testing.T) {
	rec := &recorder{}
	f := newFixtureWith(t, unreachableCore(t, rec.intercept))
	const metaJSON = `"meta":{"api_status":"stable","version":"v2.53.0-openwaba"}`

	tests := []struct {
		name         string
		method, body string
		reply        proto.Message
		status       int
		want         string // the whole body
		wantMethod   string
		wantReq      proto.Message
	}{
		{
			name: "set", method: "POST", body: `{"cc":"1","phone_number":"6315551234","shards":4,"pin":"123456","cert":"Q2VydA=="}`,
			reply:  &corev1.Account{WaId: "16315551234", Shards: 4},
			status: 201, want: `{` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/SetShards",
			wantReq:    &corev1.SetShardsRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, Cc: "1", PhoneNumber: "6315551234", Shards: 4, Pin: "123456"},
		},
		{
			name: "set back to one connection, shards as 1.0", method: "POST", body: `{"cc":"49","phone_number":"15112345678","shards":1.0}`,
			status: 201, want: `{` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/SetShards",
			wantReq:    &corev1.SetShardsRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, Cc: "49", PhoneNumber: "15112345678", Shards: 1},
		},
		{
			name: "get", method: "GET", reply: &corev1.Account{WaId: "16315551234", State: "verified", Shards: 8},
			status: 200, want: `{"account":{"shards":8},` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/GetAccount", wantReq: &corev1.GetAccountRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}},
		},
		{
			name: "get from a coreapp that does not report shards", method: "GET", reply: &corev1.Account{WaId: "16315551234"},
			status: 200, want: `{"account":{"shards":1},` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/GetAccount", wantReq: &corev1.GetAccountRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forward{tt.method, "/v1/account/shards", tt.body, tt.reply, tt.status, tt.want, tt.wantMethod, tt.wantReq}.check(t, f, rec)
		})
	}
}

func TestHealthShapes(t *testing.T) {
	rec := &recorder{}
	f := newFixtureWith(t, unreachableCore(t, rec.intercept))
	const metaJSON = `"meta":{"api_status":"stable","version":"v2.53.0-openwaba"}`
	tests := []struct {
		name  string
		reply *corev1.GetHealthResponse
		want  string
	}{
		{
			name:  "single node, no node list",
			reply: &corev1.GetHealthResponse{GatewayStatus: "connected"},
			want:  `{"health":{"gateway_status":"connected"},` + metaJSON + `}`,
		},
		{
			name: "one node listed: still the single shape",
			reply: &corev1.GetHealthResponse{GatewayStatus: "connecting", Nodes: []*corev1.NodeHealth{
				{Node: "core1:a1b2", GatewayStatus: "connecting", Role: "primary_master"},
			}},
			want: `{"health":{"gateway_status":"connecting"},` + metaJSON + `}`,
		},
		{
			name: "several nodes: keyed by node",
			reply: &corev1.GetHealthResponse{GatewayStatus: "connected", Nodes: []*corev1.NodeHealth{
				{Node: "host2:def456", GatewayStatus: "disconnected", Role: "secondary_master"},
				{Node: "host1:abc123", GatewayStatus: "connected", Role: "primary_master"},
				{Node: "host3:0a0b0c", GatewayStatus: "connected", Role: "coreapp"},
			}},
			want: `{"health":{` +
				`"host1:abc123":{"gateway_status":"connected","role":"primary_master"},` +
				`"host2:def456":{"gateway_status":"disconnected","role":"secondary_master"},` +
				`"host3:0a0b0c":{"gateway_status":"connected","role":"coreapp"}},` + metaJSON + `}`,
		},
		{
			name:  "webhook counts beside health",
			reply: &corev1.GetHealthResponse{GatewayStatus: "connected", Webhooks: &corev1.WebhookCounts{Failing: 3, Dead: 1}},
			want:  `{"health":{"gateway_status":"connected"},"webhooks":{"failing":3,"dead":1},` + metaJSON + `}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.answer(func(string) error { return nil }, func(string) proto.Message { return tt.reply })
			r := f.doJSON(t, "GET", "/v1/health", "", header("Authorization", "Apikey "+monitoringKey))
			if r.status != 200 {
				t.Fatalf("status %d, body %s", r.status, r.body)
			}
			if diff := cmp.Diff(tt.want, string(bytes.TrimSpace(r.body))); diff != "" {
				t.Errorf("body mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
