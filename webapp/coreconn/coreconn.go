// Package coreconn is the webapp's gRPC connection to the coreapps of a
// deployment: one grpc.ClientConn over every address of every configured
// endpoint (WA_CORE_ENDPOINT, a comma-separated list of host:port).
//
// Names are resolved when the connection starts, every Options.Refresh after
// that, and when gRPC asks (a connection failed), so a name with several A
// records (docker compose --scale coreapp=3) gives one sub-connection per
// address and nodes that come and go are followed. A lookup that fails keeps
// that name's last known addresses.
//
// Calls are spread round robin over the ready sub-connections: a node that is
// down (refused, unreachable) is never picked. The attempts of one logical
// call share a context made by WithAttempts: each attempt goes to the ready
// node that the earlier attempts used least recently, so a retry lands on
// another node whenever there is one (see Attempted for where they went).
//
// Nodes are pinged after 20 s without traffic (coreapp allows a ping every
// 10 s), so one that vanished without closing its connections is dropped
// within about 25 s and the calls it held fail Unavailable.
//
// The resolver's goroutine is owned by the grpc.ClientConn: it stops when
// the connection is closed. The balancing policy is registered
// with gRPC (a process-wide registry) by the first Dial.
package coreconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// Options tune Dial. Zero values take the defaults.
type Options struct {
	// Creds secure every connection (the pinned cluster TLS certificate).
	// Required.
	Creds credentials.TransportCredentials
	// Refresh is how often names are resolved again (10 s). gRPC may ask
	// sooner after a connection failure, at most once per Refresh (and at
	// most every 5 s).
	Refresh time.Duration
	// Lookup resolves a host name to IP addresses
	// (net.DefaultResolver.LookupHost). IP literals are never looked up.
	Lookup func(ctx context.Context, host string) ([]string, error)
	// Log receives address changes and lookup failures (discarded if nil).
	Log *slog.Logger
	// DialOptions are added to the connection's (tests: interceptors).
	DialOptions []grpc.DialOption
}

// Policy is the name of the load-balancing policy Dial configures.
const Policy = "openwaba_coreapps"

// Keepalive pings: sent after keepaliveTime without any frame from a node;
// the connection is closed when no answer comes within keepaliveTimeout.
const (
	keepaliveTime    = 20 * time.Second
	keepaliveTimeout = 5 * time.Second
)

// scheme is the resolver scheme of Dial's target; the resolver is given to
// the connection itself (grpc.WithResolvers), never registered globally.
const scheme = "openwaba-coreapps"

var register = sync.OnceFunc(func() {
	balancer.Register(base.NewBalancerBuilder(Policy, pickerBuilder{}, base.Config{}))
})

// Endpoint is one host:port of WA_CORE_ENDPOINT.
type Endpoint struct {
	Host, Port string
}

func (e Endpoint) String() string { return net.JoinHostPort(e.Host, e.Port) }

// ParseEndpoints parses a comma-separated list of host:port (spaces around
// entries are ignored). Every entry needs a host (a name or an IP address,
// IPv6 in brackets) and a port from 1 to 65535; the list may not be empty.
func ParseEndpoints(list string) ([]Endpoint, error) {
	return ParseEndpointList(strings.Split(list, ","))
}

// ParseEndpointList is ParseEndpoints for entries already split.
func ParseEndpointList(entries []string) ([]Endpoint, error) {
	var eps []Endpoint
	for i, s := range entries {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, fmt.Errorf("entry %d is empty", i+1)
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not host:port: %w", s, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
		}
		if !validHost(host) {
			return nil, fmt.Errorf("%q: %q is not a host name or IP address", s, host)
		}
		eps = append(eps, Endpoint{Host: host, Port: port})
	}
	if len(eps) == 0 {
		return nil, errors.New("no endpoint")
	}
	return eps, nil
}

// validHost accepts IP addresses and names of letters, digits, '-', '_' and
// '.' (docker service names may have underscores).
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// Dial returns a connection to every address of endpoints, balanced by
// Policy. It does not wait for anything: names are resolved and connections
// made in the background from now on (and kept: the connection never goes
// idle), and calls wait for a ready node (or fail with Unavailable when every
// node is down).
func Dial(endpoints []Endpoint, opts Options) (*grpc.ClientConn, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("coreconn: no endpoint")
	}
	if opts.Creds == nil {
		return nil, errors.New("coreconn: no transport credentials")
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 10 * time.Second
	}
	if opts.Lookup == nil {
		opts.Lookup = net.DefaultResolver.LookupHost
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	register()
	rb := &resolverBuilder{endpoints: endpoints, opts: opts}
	dopts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(opts.Creds),
		grpc.WithResolvers(rb),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"` + Policy + `":{}}]}`),
		// The :authority (and TLS server name) of every node: the first
		// entry, as a single-endpoint client would have sent.
		grpc.WithAuthority(endpoints[0].String()),
		// A node that vanished without closing its connections (power
		// loss, partition) is noticed by pings: its calls then fail
		// Unavailable (and are retried elsewhere) instead of hanging, and it
		// leaves the ready set. Coreapp permits pings every 10 s.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true}),
		// Never idle: the connections stay up (and a dead node known) even
		// when no request came for a while.
		grpc.WithIdleTimeout(0),
	}, opts.DialOptions...)
	conn, err := grpc.NewClient(scheme+":///coreapps", dopts...)
	if err != nil {
		return nil, fmt.Errorf("coreconn: %w", err)
	}
	conn.Connect() // resolve and connect now, not on the first call
	return conn, nil
}
