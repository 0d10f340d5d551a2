package coreconn_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
	"github.com/openwaba/openwaba/webapp/coreconn"
)

func TestParseEndpoints(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "coreapp:6250", want: []string{"coreapp:6250"}},
		{in: "core1:6250, core2:6251 ,10.0.0.7:6250", want: []string{"core1:6250", "core2:6251", "10.0.0.7:6250"}},
		{in: "[::1]:6250,core_app.internal:1", want: []string{"[::1]:6250", "core_app.internal:1"}},
		{in: "", wantErr: "empty"},
		{in: "core1:6250,,core2:6250", wantErr: "entry 2 is empty"},
		{in: "core1:6250,", wantErr: "entry 2 is empty"},
		{in: "coreapp", wantErr: "not host:port"},
		{in: ":6250", wantErr: "not a host name"},
		{in: "coreapp:0", wantErr: "port"},
		{in: "coreapp:65536", wantErr: "port"},
		{in: "coreapp:grpc", wantErr: "port"},
		{in: "dns:///coreapp:6250", wantErr: "not host:port"},
		{in: "core/app:6250", wantErr: "not a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			eps, err := coreconn.ParseEndpoints(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseEndpoints(%q) = %v, %v; want an error containing %q", tt.in, eps, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEndpoints(%q): %v", tt.in, err)
			}
			var got []string
			for _, ep := range eps {
				got = append(got, ep.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseEndpoints(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// node is a stand-in coreapp whose GetHealth answers its own address.
type node struct {
	corev1.UnimplementedCoreServer
	addr string
}

func (n *node) GetHealth(context.Context, *corev1.GetHealthRequest) (*corev1.GetHealthResponse, error) {
	return &corev1.GetHealthResponse{GatewayStatus: n.addr}, nil
}

// serve starts a node on addr ("127.0.0.1:0" for any port) and returns its
// address; ok is false when addr cannot be listened on.
func serve(t *testing.T, addr string) (string, bool) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", false
	}
	gs := grpc.NewServer()
	corev1.RegisterCoreServer(gs, &node{addr: lis.Addr().String()})
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String(), true
}

// closedAddr returns a loopback address nobody listens on.
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

func dial(t *testing.T, list string, opts coreconn.Options) corev1.CoreClient {
	t.Helper()
	eps, err := coreconn.ParseEndpoints(list)
	if err != nil {
		t.Fatal(err)
	}
	opts.Creds = insecure.NewCredentials()
	conn, err := coreconn.Dial(eps, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return corev1.NewCoreClient(conn)
}

// who asks any node for its address.
func who(ctx context.Context, core corev1.CoreClient) (string, error) {
	resp, err := core.GetHealth(ctx, &corev1.GetHealthRequest{})
	return resp.GetGatewayStatus(), err
}

// waitForNodes calls until exactly the nodes in want have answered among the
// last len(want)*4 calls, or fails after 10 s.
func waitForNodes(t *testing.T, core corev1.CoreClient, want ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(10 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		got = got[:0]
		for range len(want) * 4 {
			addr, err := who(t.Context(), core)
			if err != nil {
				t.Fatalf("GetHealth: %v", err)
			}
			got = append(got, addr)
		}
		slices.Sort(got)
		if slices.Equal(slices.Compact(got), want) {
			return
		}
	}
	t.Fatalf("the calls reached %v, want every one of %v", got, want)
}

func TestRoundRobinAndRetriesOnOtherNodes(t *testing.T) {
	var addrs []string
	for range 3 {
		a, _ := serve(t, "127.0.0.1:0")
		addrs = append(addrs, a)
	}
	core := dial(t, strings.Join(addrs, ","), coreconn.Options{})
	waitForNodes(t, core, slices.Clone(addrs)...)

	// Plain calls: round robin, every node in turn.
	count := map[string]int{}
	for range 30 {
		a, err := who(t.Context(), core)
		if err != nil {
			t.Fatal(err)
		}
		count[a]++
	}
	for _, a := range addrs {
		if count[a] != 10 {
			t.Errorf("30 calls: %v; want 10 on each node", count)
			break
		}
	}

	// The attempts of one call: a new node each time, then the one used
	// least recently, although other calls (two between each attempt, which
	// plain round robin would bring back to the same node) go on.
	ctx := coreconn.WithAttempts(t.Context())
	var got []string
	for range 5 {
		a, err := who(ctx, core)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
		for range 2 {
			if _, err := who(t.Context(), core); err != nil {
				t.Fatal(err)
			}
		}
	}
	if diff := cmp.Diff(got, coreconn.Attempted(ctx)); diff != "" {
		t.Errorf("Attempted mismatch (-answered +attempted):\n%s", diff)
	}
	first := slices.Clone(got[:3])
	slices.Sort(first)
	if !slices.Equal(first, slices.Sorted(slices.Values(addrs))) || got[3] != got[0] || got[4] != got[1] {
		t.Errorf("5 attempts went to %v; want each of %v once, then the first two again", got, addrs)
	}
	if a := coreconn.Attempted(t.Context()); a != nil {
		t.Errorf("Attempted without WithAttempts = %v, want nil", a)
	}
}

func TestDownNodeIsSkipped(t *testing.T) {
	up, _ := serve(t, "127.0.0.1:0")
	down := closedAddr(t)
	core := dial(t, down+","+up, coreconn.Options{})
	for i := range 20 {
		a, err := who(t.Context(), core)
		if err != nil || a != up {
			t.Fatalf("call %d: %q, %v; want an answer from %s", i, a, err, up)
		}
	}
}

func TestEveryNodeDownIsUnavailable(t *testing.T) {
	core := dial(t, closedAddr(t)+","+closedAddr(t), coreconn.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := who(ctx, core); status.Code(err) != codes.Unavailable {
		t.Fatalf("GetHealth with every node down: %v, want Unavailable", err)
	}
}

// lookups is a settable name service.
type lookups struct {
	mu    sync.Mutex
	hosts map[string][]string
	fail  error
	calls int
}

func (l *lookups) set(host string, ips []string, fail error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hosts[host], l.fail = ips, fail
}

func (l *lookups) LookupHost(_ context.Context, host string) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.fail != nil {
		return nil, l.fail
	}
	if ips, ok := l.hosts[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestNameWithSeveralAddresses stands for docker compose --scale coreapp=3:
// one name, one A record per node, on the same port; nodes come and go.
func TestNameWithSeveralAddresses(t *testing.T) {
	first, ok := serve(t, "127.0.0.1:0")
	if !ok {
		t.Fatal("cannot listen on 127.0.0.1")
	}
	_, port, _ := net.SplitHostPort(first)
	nodes := []string{first}
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		a, ok := serve(t, net.JoinHostPort(ip, port))
		if !ok {
			t.Skipf("cannot listen on %s (loopback aliases are Linux-only)", ip)
		}
		nodes = append(nodes, a)
	}
	dns := &lookups{hosts: map[string][]string{"coreapp": {"127.0.0.1", "127.0.0.2"}}}
	core := dial(t, "coreapp:"+port, coreconn.Options{Lookup: dns.LookupHost, Refresh: 20 * time.Millisecond})
	waitForNodes(t, core, nodes[0], nodes[1])

	// A third node is scaled up: found by the periodic resolution.
	dns.set("coreapp", []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, nil)
	waitForNodes(t, core, nodes...)

	// The name service fails: the known addresses are kept.
	dns.set("coreapp", nil, errors.New("server misbehaving"))
	dns.mu.Lock()
	before := dns.calls
	dns.mu.Unlock()
	for {
		dns.mu.Lock()
		n := dns.calls
		dns.mu.Unlock()
		if n >= before+2 {
			break
		}
		waitForNodes(t, core, nodes...)
	}
	waitForNodes(t, core, nodes...)

	// A node is scaled down: no call goes there any more.
	dns.set("coreapp", []string{"127.0.0.2", "127.0.0.3"}, nil)
	waitForNodes(t, core, nodes[1], nodes[2])
}

// TestCloseStopsTheResolver: closing the connection ends the resolver's
// goroutine, cancelling a lookup in progress, before Close returns.
func TestCloseStopsTheResolver(t *testing.T) {
	started := make(chan struct{})
	var once sync.Once
	returned := make(chan struct{})
	lookup := func(ctx context.Context, host string) ([]string, error) {
		once.Do(func() { close(started) })
		<-ctx.Done()
		close(returned)
		return nil, ctx.Err()
	}
	eps, err := coreconn.ParseEndpoints("coreapp:6250")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := coreconn.Dial(eps, coreconn.Options{Creds: insecure.NewCredentials(), Lookup: lookup})
	if err != nil {
		t.Fatal(err)
	}
	<-started // Dial starts resolving at once, without a call
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-returned:
	default:
		t.Fatal("Close returned while a lookup was still running")
	}
}
