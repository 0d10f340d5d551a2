package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
	"github.com/openwaba/openwaba/webapp/coreconn"
)

// coreNode is one stand-in coreapp of a cluster, on a real loopback gRPC
// server: it records every call and answers with fail(method) when that is
// set, else with a success.
type coreNode struct {
	corev1.UnimplementedCoreServer
	name string
	gs   *grpc.Server
	file []byte // what DownloadMedia streams

	mu    sync.Mutex
	fail  map[string]error // by method name, e.g. "SendMessage"
	calls []nodeCall
}

type nodeCall struct {
	node, method string
	req          proto.Message
	md           metadata.MD
}

func (n *coreNode) record(ctx context.Context, method string, req proto.Message) error {
	md, _ := metadata.FromIncomingContext(ctx)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, nodeCall{node: n.name, method: method, req: proto.Clone(req), md: md})
	return n.fail[method]
}

func (n *coreNode) setFail(method string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fail[method] = err
}

// taken returns and forgets the calls of method.
func (n *coreNode) taken(method string) []nodeCall {
	n.mu.Lock()
	defer n.mu.Unlock()
	var got, rest []nodeCall
	for _, c := range n.calls {
		if c.method == method {
			got = append(got, c)
		} else {
			rest = append(rest, c)
		}
	}
	n.calls = rest
	return got
}

func (n *coreNode) GetHealth(ctx context.Context, req *corev1.GetHealthRequest) (*corev1.GetHealthResponse, error) {
	if err := n.record(ctx, "GetHealth", req); err != nil {
		return nil, err
	}
	return &corev1.GetHealthResponse{GatewayStatus: "connected"}, nil
}

func (n *coreNode) SendMessage(ctx context.Context, req *corev1.SendMessageRequest) (*corev1.SendMessageResponse, error) {
	if err := n.record(ctx, "SendMessage", req); err != nil {
		return nil, err
	}
	return &corev1.SendMessageResponse{Id: "wamid." + req.GetRequestId()}, nil
}

func (n *coreNode) SetShards(ctx context.Context, req *corev1.SetShardsRequest) (*corev1.Account, error) {
	if err := n.record(ctx, "SetShards", req); err != nil {
		return nil, err
	}
	return &corev1.Account{WaId: req.GetCc() + req.GetPhoneNumber(), Shards: req.GetShards()}, nil
}

func (n *coreNode) DownloadMedia(req *corev1.DownloadMediaRequest, stream grpc.ServerStreamingServer[corev1.DownloadMediaResponse]) error {
	if err := n.record(stream.Context(), "DownloadMedia", req); err != nil {
		return err
	}
	hdr := &corev1.DownloadMediaHeader{MimeType: "image/png", Size: int64(len(n.file))}
	if err := stream.Send(&corev1.DownloadMediaResponse{Part: &corev1.DownloadMediaResponse_Header{Header: hdr}}); err != nil {
		return err
	}
	return stream.Send(&corev1.DownloadMediaResponse{Part: &corev1.DownloadMediaResponse_Chunk{Chunk: n.file}})
}

func (n *coreNode) UploadMedia(stream grpc.ClientStreamingServer[corev1.UploadMediaRequest, corev1.UploadMediaResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if err := n.record(stream.Context(), "UploadMedia", first); err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			return stream.SendAndClose(&corev1.UploadMediaResponse{Id: "media-" + n.name})
		} else if err != nil {
			return err
		}
	}
}

// cluster is several coreNodes behind one coreconn connection, as the
// webapp runs with WA_CORE_ENDPOINT listing them.
type cluster struct {
	nodes []*coreNode
	core  corev1.CoreClient
}

// newCluster starts n nodes and connects to them and to the extra
// addresses (nodes that are down), waiting until every node is ready.
func newCluster(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	cl := &cluster{}
	var addrs []string
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		node := &coreNode{name: fmt.Sprintf("node%d", i), gs: grpc.NewServer(), fail: map[string]error{}, file: []byte("png bytes from node " + fmt.Sprint(i))}
		corev1.RegisterCoreServer(node.gs, node)
		served := make(chan error, 1)
		go func() { served <- node.gs.Serve(lis) }()
		t.Cleanup(func() {
			node.gs.Stop()
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
		cl.nodes = append(cl.nodes, node)
		addrs = append(addrs, lis.Addr().String())
	}
	eps, err := coreconn.ParseEndpoints(strings.Join(append(addrs, extra...), ","))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := coreconn.Dial(eps, coreconn.Options{Creds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cl.core = corev1.NewCoreClient(conn)

	// Calls go to ready nodes only: call until every node has answered.
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := true
		for _, node := range cl.nodes {
			node.mu.Lock()
			all = all && len(node.calls) > 0
			node.mu.Unlock()
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not every coreapp became ready within 10 s")
		}
		if _, err := cl.core.GetHealth(t.Context(), &corev1.GetHealthRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range cl.nodes {
		node.taken("GetHealth")
	}
	return cl
}

// taken returns and forgets the calls of method on every node.
func (cl *cluster) taken(method string) []nodeCall {
	var calls []nodeCall
	for _, n := range cl.nodes {
		calls = append(calls, n.taken(method)...)
	}
	return calls
}

// checkAttempts checks the calls made for one request: each on another node,
// all with the same request and x-request-id, the last on want.
func checkAttempts(t *testing.T, calls []nodeCall, id string, wantReq proto.Message) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range calls {
		if seen[c.node] {
			t.Errorf("%s was asked twice: %v", c.node, calls)
		}
		seen[c.node] = true
		if diff := cmp.Diff([]string{id}, c.md.Get("x-request-id")); diff != "" {
			t.Errorf("%s: x-request-id mismatch (-want +got):\n%s", c.node, diff)
		}
		if diff := cmp.Diff([]string{"Bearer " + coreToken}, c.md.Get("authorization")); diff != "" {
			t.Errorf("%s: authorization mismatch (-want +got):\n%s", c.node, diff)
		}
		if diff := cmp.Diff(wantReq, c.req, protocmp.Transform()); diff != "" {
			t.Errorf("%s: request mismatch (-want +got):\n%s", c.node, diff)
		}
	}
}

// TestRetryOnAnotherCoreapp: two of three coreapps refuse a call in a way
// that means "try another node"; every call succeeds on the third, with the
// same request and request id on each node asked, never twice on one.
func TestRetryOnAnotherCoreapp(t *testing.T) {
	refusals := []struct {
		name string
		err  error
	}{
		{"Unavailable", status.Error(codes.Unavailable, "shutting down")},
		{"1017 Not Primary Master", withDetail(codes.FailedPrecondition, "", &corev1.Error{Code: 1017, Details: "not the primary master"})},
		{"1018 Not Primary Coreapp", withDetail(codes.Unavailable, "", &corev1.Error{Code: 1018, Details: "no connected slot"})},
	}
	for _, refusal := range refusals {
		t.Run(refusal.name, func(t *testing.T) {
			cl := newCluster(t, 3)
			f := newFixtureWith(t, cl.core)
			good := cl.nodes[2]
			for _, n := range cl.nodes[:2] {
				n.setFail("SendMessage", refusal.err)
				n.setFail("SetShards", refusal.err)
			}

			retried := 0
			for i := range 6 {
				id := fmt.Sprintf("send-%d", i)
				r := f.doJSON(t, "POST", "/v1/messages", `{"to":"16315551234","text":{"body":"once"}}`, bearer(f.admin), header("X-Request-Id", id))
				if r.status != 201 || !bytes.Contains(r.body, []byte(`"messages":[{"id":"wamid.`+id+`"}]`)) {
					t.Fatalf("send %s: status %d, body %s", id, r.status, r.body)
				}
				calls := cl.taken("SendMessage")
				if len(calls) == 0 || calls[len(calls)-1].node != good.name {
					t.Fatalf("send %s: calls %v did not end on %s", id, calls, good.name)
				}
				retried += len(calls) - 1
				want := &corev1.SendMessageRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, RequestId: id, To: "16315551234", RecipientType: "individual",
					Content: &messagev1.Content{Body: &messagev1.Content_Text{Text: &messagev1.Text{Body: "once"}}}}
				checkAttempts(t, calls, id, want)
			}
			if retried == 0 {
				t.Errorf("6 sends never met a refusing coreapp: round robin is not spreading calls")
			}

			// SetShards runs on the primary master only (1017 elsewhere).
			r := f.doJSON(t, "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":8}`, bearer(f.admin), header("X-Request-Id", "shards-1"))
			if r.status != 201 || string(bytes.TrimSpace(r.body)) != `{"meta":{"api_status":"stable","version":"v2.53.0-openwaba"}}` {
				t.Fatalf("POST shards: status %d, body %s", r.status, r.body)
			}
			checkAttempts(t, cl.taken("SetShards"), "shards-1",
				&corev1.SetShardsRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, Cc: "1", PhoneNumber: "6315551234", Shards: 8})
		})
	}
}

// TestEveryCoreappRefuses: when every node keeps answering 1018, the
// client gets it (503, retryable) after one attempt per node and more.
func TestEveryCoreappRefuses(t *testing.T) {
	cl := newCluster(t, 3)
	f := newFixtureWith(t, cl.core)
	for _, n := range cl.nodes {
		n.setFail("SendMessage", withDetail(codes.Unavailable, "", &corev1.Error{Code: 1018}))
	}
	r := f.doJSON(t, "POST", "/v1/messages", `{"to":"16315551234","text":{"body":"x"}}`, bearer(f.admin), header("X-Request-Id", "refused"))
	wantError(t, r, 503, 1018, "")
	if r.errors[0].Title != "Not Primary Coreapp" {
		t.Errorf("title = %q, want Not Primary Coreapp", r.errors[0].Title)
	}
	calls := cl.taken("SendMessage")
	if len(calls) != 5 {
		t.Fatalf("%d attempts, want 5 (the default)", len(calls))
	}
	nodes := map[string]int{}
	for _, c := range calls {
		nodes[c.node]++
		if got := c.md.Get("x-request-id"); len(got) != 1 || got[0] != "refused" {
			t.Errorf("x-request-id = %v, want [refused]", got)
		}
	}
	if len(nodes) != 3 {
		t.Errorf("attempts per node %v, want every node tried", nodes)
	}
}

// TestDownCoreappIsSkipped: a listed coreapp that is down is never asked;
// one that stops while the webapp runs is left behind.
func TestDownCoreappIsSkipped(t *testing.T) {
	down := closedAddr(t)
	cl := newCluster(t, 2, down)
	f := newFixtureWith(t, cl.core)
	for i := range 10 {
		r := f.doJSON(t, "POST", "/v1/messages", `{"to":"16315551234","text":{"body":"x"}}`, bearer(f.admin))
		if r.status != 201 {
			t.Fatalf("send %d: status %d, body %s", i, r.status, r.body)
		}
		if calls := cl.taken("SendMessage"); len(calls) != 1 {
			t.Errorf("send %d: %d attempts, want 1 (the down node is not picked)", i, len(calls))
		}
	}

	cl.nodes[0].gs.Stop()
	for i := range 10 {
		r := f.doJSON(t, "POST", "/v1/messages", `{"to":"16315551234","text":{"body":"x"}}`, bearer(f.admin))
		if r.status != 201 {
			t.Fatalf("send %d after node0 stopped: status %d, body %s", i, r.status, r.body)
		}
	}
	if calls := cl.nodes[1].taken("SendMessage"); len(calls) != 10 {
		t.Errorf("node1 answered %d sends after node0 stopped, want 10", len(calls))
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// TestMediaAcrossCoreapps: a download refused before its header is retried
// on another node; an upload that failed after its bytes were sent is not.
func TestMediaAcrossCoreapps(t *testing.T) {
	cl := newCluster(t, 3)
	f := newFixtureWith(t, cl.core)
	good := cl.nodes[2]
	for _, n := range cl.nodes[:2] {
		n.setFail("DownloadMedia", withDetail(codes.Unavailable, "", &corev1.Error{Code: 1018}))
	}
	for i := range 3 {
		req, err := http.NewRequestWithContext(t.Context(), "GET", f.url+"/v1/media/m1", nil)
		if err != nil {
			t.Fatal(err)
		}
		bearer(f.admin)(req)
		req.Header.Set("X-Request-Id", fmt.Sprint("dl-", i))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || !bytes.Equal(b, good.file) {
			t.Fatalf("download %d: status %d, body %q, %v; want 200 with %q", i, res.StatusCode, b, err, good.file)
		}
		checkAttempts(t, cl.taken("DownloadMedia"), fmt.Sprint("dl-", i), &corev1.DownloadMediaRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, Id: "m1"})
	}

	for _, n := range cl.nodes {
		n.setFail("UploadMedia", withDetail(codes.Unavailable, "", &corev1.Error{Code: 1018}))
	}
	r := f.do(t, "POST", "/v1/media", strings.NewReader("a small picture"), bearer(f.admin), header("Content-Type", "image/png"))
	wantError(t, r, 503, 1018, "")
	if calls := cl.taken("UploadMedia"); len(calls) != 1 {
		t.Errorf("%d UploadMedia streams, want 1: the body was sent and cannot be sent again", len(calls))
	}
}
