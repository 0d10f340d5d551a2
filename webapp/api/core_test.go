package api_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
	"github.com/openwaba/openwaba/webapp/api"
)

// recorder is a client interceptor that notes what the webapp sends and
// answers with an error, without any network or coreapp involved.
type recorder struct {
	mu    sync.Mutex
	calls []recorded
	fail  func(method string) error
	reply func(method string) proto.Message // when fail gives nil: merged into the response (nil: an empty one)
}

type recorded struct {
	method   string
	req      proto.Message
	md       metadata.MD
	deadline time.Duration // from the call to its deadline
}

func (r *recorder) intercept(ctx context.Context, method string, req, reply any, _ *grpc.ClientConn, _ grpc.UnaryInvoker, _ ...grpc.CallOption) error {
	md, _ := metadata.FromOutgoingContext(ctx)
	dl, _ := ctx.Deadline()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, recorded{method: method, req: proto.Clone(req.(proto.Message)), md: md, deadline: time.Until(dl)})
	if err := r.fail(method); err != nil {
		return err
	}
	if r.reply != nil {
		if m := r.reply(method); m != nil {
			proto.Merge(reply.(proto.Message), m)
		}
	}
	return nil
}

func (r *recorder) reset(fail func(string) error) {
	r.answer(fail, nil)
}

// answer resets the recorder: calls fail with fail, or succeed with reply.
func (r *recorder) answer(fail func(string) error, reply func(string) proto.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls, r.fail, r.reply = nil, fail, reply
}

func (r *recorder) taken() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func withDetail(c codes.Code, msg string, e *corev1.Error) error {
	st, err := status.New(c, msg).WithDetails(e)
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func TestCoreCalls(t *testing.T) {
	rec := &recorder{}
	e := newEnv(t, unreachableCore(t, rec.intercept))
	ctx := t.Context()
	admin, err := e.store.Login(ctx, "", "admin", "secret", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	key, err := e.store.CreateAPIKey(ctx, keyNumber, "admin")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name         string
		method, path string
		body         string
		opts         []reqOpt
		fail         error
		status, code int
		title        string
		details      string
		wantMethod   string
		wantReq      proto.Message
		wantCalls    int
		wantDeadline time.Duration
		wantID       string // the x-request-id metadata; "" means any
	}{
		{
			name: "send with an API key, retried while Unavailable", method: "POST", path: "/v1/messages",
			body: `{"messaging_product":"whatsapp","to":"+49 151 1234-5678","text":{"body":"hi"},"preview_url":true,"context":{"message_id":"wamid.Q"}}`,
			opts: []reqOpt{d360(key.Key), header("X-Request-Id", "retry-me-1")},
			fail: status.Error(codes.Unavailable, "dial tcp: connection refused"), status: 503, code: 1014, title: "Internal error", details: "Coreapp unreachable",
			wantMethod: "/core.v1.Core/SendMessage",
			wantReq: &corev1.SendMessageRequest{
				Account: &corev1.AccountRef{WaId: keyNumber, Caller: corev1.Caller_CALLER_API_KEY}, RequestId: "retry-me-1", To: "4915112345678", RecipientType: "individual",
				Content: &messagev1.Content{
					Body:    &messagev1.Content_Text{Text: &messagev1.Text{Body: "hi", PreviewUrl: true}},
					Context: &messagev1.ContextInfo{MessageId: "wamid.Q"},
				},
			},
			wantCalls: api.DefaultAttempts, wantDeadline: 30 * time.Second, wantID: "retry-me-1",
		},
		{
			name: "send answered Not Primary Coreapp by every attempt", method: "POST", path: "/v1/messages",
			body: `{"to":"16315551234","text":{"body":"yo"}}`, opts: []reqOpt{bearer(admin.Value), header("X-Request-Id", "retry-me-2")},
			fail:   withDetail(codes.Unavailable, "slot 3 moved", &corev1.Error{Code: 1018, Details: "this node holds no connected slot of 16315551234"}),
			status: 503, code: 1018, title: "Not Primary Coreapp", details: "no connected slot",
			wantMethod: "/core.v1.Core/SendMessage",
			wantReq: &corev1.SendMessageRequest{
				Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, RequestId: "retry-me-2", To: "16315551234", RecipientType: "individual",
				Content: &messagev1.Content{Body: &messagev1.Content_Text{Text: &messagev1.Text{Body: "yo"}}},
			},
			wantCalls: api.DefaultAttempts, wantDeadline: 30 * time.Second, wantID: "retry-me-2",
		},
		{
			name: "Not Primary Master is retried and 503 whatever the gRPC code", method: "POST", path: "/v1/account/shards",
			body: `{"cc":"1","phone_number":"6315551234","shards":4}`, opts: []reqOpt{bearer(admin.Value)},
			fail:   withDetail(codes.FailedPrecondition, "", &corev1.Error{Code: 1017}),
			status: 503, code: 1017, title: "Not Primary Master", details: "",
			wantMethod: "/core.v1.Core/SetShards",
			wantReq:    &corev1.SetShardsRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, Cc: "1", PhoneNumber: "6315551234", Shards: 4},
			wantCalls:  api.DefaultAttempts, wantDeadline: 30 * time.Second, // resharding waits for leases

		},
		{
			name: "Aborted is not retried", method: "PUT", path: "/v1/messages/wamid.Y",
			body: `{"status":"read"}`, opts: []reqOpt{bearer(admin.Value)},
			fail:   status.Error(codes.Aborted, "lock wait timeout"),
			status: 503, code: 1014, title: "Internal error", details: "",
			wantMethod: "/core.v1.Core/MarkRead", wantReq: &corev1.MarkReadRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, MessageId: "wamid.Y"},
			wantCalls: 1, wantDeadline: 10 * time.Second,
		},
		{
			name: "send refused by coreapp with an on-prem error, not retried", method: "POST", path: "/v1/messages",
			body:   `{"to":"16315551234","text":{"body":"yo","preview_url":true}}`,
			opts:   []reqOpt{bearer(admin.Value)},
			fail:   withDetail(codes.InvalidArgument, "internal words", &corev1.Error{Code: 1013, Title: "User is not valid", Details: "16315551234 is not a WhatsApp user"}),
			status: 400, code: 1013, title: "User is not valid", details: "16315551234 is not a WhatsApp user",
			wantMethod: "/core.v1.Core/SendMessage",
			wantReq: &corev1.SendMessageRequest{
				Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, To: "16315551234", RecipientType: "individual",
				Content: &messagev1.Content{Body: &messagev1.Content_Text{Text: &messagev1.Text{Body: "yo", PreviewUrl: true}}},
			},
			wantCalls: 1, wantDeadline: 30 * time.Second,
		},
		{
			name: "mark read of an unknown message", method: "PUT", path: "/v1/messages/wamid.X",
			body: `{"status":"read"}`, opts: []reqOpt{bearer(admin.Value)},
			fail:   status.Error(codes.NotFound, "message wamid.X not found"),
			status: 404, code: 1006, title: "Resource not found", details: "message wamid.X not found",
			wantMethod: "/core.v1.Core/MarkRead", wantReq: &corev1.MarkReadRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, MessageId: "wamid.X"},
			wantCalls: 1, wantDeadline: 10 * time.Second,
		},
		{
			name: "settings patch passes the raw object", method: "PATCH", path: "/v1/settings/application",
			body: `{"webhooks": {"url": "https://example.test"}, "bogus": 1}`, opts: []reqOpt{d360(key.Key)},
			fail:   withDetail(codes.InvalidArgument, "", &corev1.Error{Code: 1010, Details: "bogus is not a setting"}),
			status: 400, code: 1010, title: "Parameter is not required", details: "bogus is not a setting",
			wantMethod: "/core.v1.Core/UpdateSettings",
			wantReq:    &corev1.UpdateSettingsRequest{Account: &corev1.AccountRef{WaId: keyNumber, Caller: corev1.Caller_CALLER_API_KEY}, PatchJson: []byte(`{"webhooks": {"url": "https://example.test"}, "bogus": 1}`)},
			wantCalls:  1, wantDeadline: 10 * time.Second,
		},
		{
			name: "contacts default to no_wait", method: "POST", path: "/v1/contacts",
			body: `{"contacts":["+1 631 555 1001","x"],"force_check":true}`, opts: []reqOpt{bearer(admin.Value)},
			fail:   status.Error(codes.DeadlineExceeded, "slow"),
			status: 504, code: 1014, title: "Internal error", details: "did not answer in time",
			wantMethod: "/core.v1.Core/CheckContacts",
			wantReq:    &corev1.CheckContactsRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, Blocking: "no_wait", Contacts: []string{"+1 631 555 1001", "x"}, ForceCheck: true},
			wantCalls:  1, wantDeadline: 10 * time.Second,
		},
		{
			name: "block normalizes the number; the network's 2048 is passed on", method: "POST", path: "/v1/contacts/+1%20631%20555%201001/block",
			body: `{"reason":"spam"}`, opts: []reqOpt{d360(key.Key)},
			fail:   withDetail(codes.InvalidArgument, "", &corev1.Error{Code: 2048, Details: "Invalid Request. This contact has not engaged with you in the last 24 hrs."}),
			status: 400, code: 2048, title: "Not engaged contact", details: "not engaged with you in the last 24 hrs",
			wantMethod: "/core.v1.Core/SetBlocked",
			wantReq:    &corev1.SetBlockedRequest{Account: &corev1.AccountRef{WaId: keyNumber, Caller: corev1.Caller_CALLER_API_KEY}, WaId: "16315551001", Blocked: true},
			wantCalls:  1, wantDeadline: 10 * time.Second,
		},
		{
			name: "unblock", method: "POST", path: "/v1/contacts/16315551001/unblock/", opts: []reqOpt{bearer(admin.Value)},
			fail:   status.Error(codes.Unavailable, "down"),
			status: 503, code: 1014, title: "Internal error", details: "Coreapp unreachable",
			wantMethod: "/core.v1.Core/SetBlocked",
			wantReq:    &corev1.SetBlockedRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, WaId: "16315551001"},
			wantCalls:  api.DefaultAttempts, wantDeadline: 10 * time.Second,
		},
		{
			name: "health with the monitoring key addresses the default account", method: "GET", path: "/v1/health",
			opts:   []reqOpt{header("Authorization", "Apikey "+monitoringKey)},
			fail:   status.Error(codes.FailedPrecondition, "no account registered"),
			status: 400, code: 1011, title: "Service not ready", details: "no account registered",
			wantMethod: "/core.v1.Core/GetHealth", wantReq: &corev1.GetHealthRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_MONITOR}},
			wantCalls: 1, wantDeadline: 10 * time.Second,
		},
		{
			name: "API key creation needs the account", method: "POST", path: "/v1/account/api_keys",
			body: `{"wa_id":"16315551234"}`, opts: []reqOpt{bearer(admin.Value)},
			fail:   status.Error(codes.Internal, "SELECT failed: secret table names"),
			status: 500, code: 1014, title: "Internal error", details: "",
			wantMethod: "/core.v1.Core/GetAccount", wantReq: &corev1.GetAccountRequest{Account: &corev1.AccountRef{WaId: "16315551234", Caller: corev1.Caller_CALLER_ADMIN}},
			wantCalls: 1, wantDeadline: 10 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.reset(func(string) error { return tt.fail })
			r := e.doJSON(t, tt.method, tt.path, tt.body, tt.opts...)
			wantError(t, r, tt.status, tt.code, tt.details)
			if r.errors[0].Title != tt.title {
				t.Errorf("title = %q, want %q", r.errors[0].Title, tt.title)
			}
			if tt.details == "" && r.errors[0].Details != "" {
				t.Errorf("details = %q, want none (internal causes stay in the log)", r.errors[0].Details)
			}
			calls := rec.taken()
			if len(calls) != tt.wantCalls {
				t.Fatalf("%d calls, want %d", len(calls), tt.wantCalls)
			}
			id := r.header.Get("X-Request-Id")
			if tt.wantID != "" && id != tt.wantID {
				t.Errorf("response X-Request-Id = %q, want %q", id, tt.wantID)
			}
			for _, c := range calls {
				if c.method != tt.wantMethod {
					t.Errorf("method = %s, want %s", c.method, tt.wantMethod)
				}
				want := proto.Clone(tt.wantReq)
				if sm, ok := want.(*corev1.SendMessageRequest); ok && sm.RequestId == "" {
					sm.RequestId = id // generated by the webapp
				}
				if diff := cmp.Diff(want, c.req, protocmp.Transform()); diff != "" {
					t.Errorf("request mismatch (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"Bearer " + coreToken}, c.md.Get("authorization")); diff != "" {
					t.Errorf("authorization metadata mismatch (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{id}, c.md.Get("x-request-id")); diff != "" {
					t.Errorf("x-request-id metadata mismatch (-want +got):\n%s", diff)
				}
				if c.deadline > tt.wantDeadline || c.deadline < tt.wantDeadline-5*time.Second {
					t.Errorf("deadline in %v, want about %v", c.deadline, tt.wantDeadline)
				}
			}
			if strings.Contains(string(r.body), "secret") || strings.Contains(string(r.body), "connection refused") {
				t.Errorf("internal cause leaked to the client: %s", r.body)
			}
		})
	}
}

// TestTrailingSlash: every route answers with a trailing slash too, as
// on-prem's do (Meta's request collection posts media messages to
// /v1/messages/).
func TestTrailingSlash(t *testing.T) {
	rec := &recorder{}
	f := newFixtureWith(t, unreachableCore(t, rec.intercept))
	for _, tt := range []struct{ method, path, body, want string }{
		{"POST", "/v1/messages/", `{"to":"16315551234","text":{"body":"hi"}}`, "/core.v1.Core/SendMessage"},
		{"GET", "/v1/settings/application/", "", "/core.v1.Core/GetSettings"},
		{"GET", "/v1/webhooks/endpoints/", "", "/core.v1.Core/ListWebhookEndpoints"},
		{"GET", "/v1/health/", "", "/core.v1.Core/GetHealth"},
	} {
		rec.answer(func(string) error { return nil }, func(string) proto.Message { return nil })
		r := f.doJSON(t, tt.method, tt.path, tt.body, bearer(f.admin))
		calls := rec.taken()
		if r.status == 404 || len(calls) == 0 || calls[0].method != tt.want {
			t.Errorf("%s %s = %d %s, calls %+v: want it routed to %s", tt.method, tt.path, r.status, r.body, calls, tt.want)
		}
	}
}

// forward is one request a route forwards to coreapp: coreapp answers
// reply; the route must answer status and body want ("": only the status
// is checked) after exactly one call wantMethod with wantReq.
type forward struct {
	method, path, body string
	reply              proto.Message
	status             int
	want               string
	wantMethod         string
	wantReq            proto.Message
}

// check runs c as the admin.
func (c forward) check(t *testing.T, f *fixture, rec *recorder) {
	t.Helper()
	rec.answer(func(string) error { return nil }, func(string) proto.Message { return c.reply })
	r := f.doJSON(t, c.method, c.path, c.body, bearer(f.admin))
	if r.status != c.status {
		t.Fatalf("status %d, want %d (body %s)", r.status, c.status, r.body)
	}
	if c.want != "" {
		if diff := cmp.Diff(c.want, string(bytes.TrimSpace(r.body))); diff != "" {
			t.Errorf("body mismatch (-want +got):\n%s", diff)
		}
	}
	calls := rec.taken()
	if len(calls) != 1 || calls[0].method != c.wantMethod {
		t.Fatalf("calls %+v, want one %s", calls, c.wantMethod)
	}
	if diff := cmp.Diff(c.wantReq, calls[0].req, protocmp.Transform()); diff != "" {
		t.Errorf("request mismatch (-want +got):\n%s", diff)
	}
}
