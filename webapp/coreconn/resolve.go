package coreconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"google.golang.org/grpc/resolver"
)

// lookupTimeout bounds one name lookup.
const lookupTimeout = 10 * time.Second

// maxResolveNowGap caps the pause a ResolveNow request waits for after the
// last resolution (it is Options.Refresh when that is shorter).
const maxResolveNowGap = 5 * time.Second

// resolverBuilder builds the resolver of one Dial's connection.
type resolverBuilder struct {
	endpoints []Endpoint
	opts      Options
}

func (b *resolverBuilder) Scheme() string { return scheme }

func (b *resolverBuilder) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &nameResolver{
		b:      b,
		cc:     cc,
		now:    make(chan struct{}, 1),
		cancel: cancel,
		done:   make(chan struct{}),
		known:  make([][]string, len(b.endpoints)),
	}
	go r.watch(ctx)
	return r, nil
}

// nameResolver resolves every endpoint now, every Refresh and on ResolveNow,
// and gives gRPC the union of their addresses. Its goroutine stops in Close.
type nameResolver struct {
	b      *resolverBuilder
	cc     resolver.ClientConn
	now    chan struct{} // ResolveNow requests, one pending at most
	cancel context.CancelFunc
	done   chan struct{} // closed when watch returns

	// Only watch's goroutine touches these.
	known   [][]string // the last addresses each endpoint resolved to
	last    []string   // the addresses last given to gRPC
	lastErr string     // the last failure logged
}

func (r *nameResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.now <- struct{}{}:
	default:
	}
}

func (r *nameResolver) Close() {
	r.cancel()
	<-r.done
}

func (r *nameResolver) watch(ctx context.Context) {
	defer close(r.done)
	gap := min(r.b.opts.Refresh, maxResolveNowGap)
	for {
		r.resolve(ctx)
		t := time.NewTimer(r.b.opts.Refresh)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-r.now:
			// gRPC asks after connection failures: not more often than gap.
			t.Reset(gap)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// resolve looks every endpoint up and reports the union of the addresses
// when it changed. An endpoint whose lookup fails keeps its last addresses;
// with no address at all, gRPC is told the error (calls fail Unavailable).
func (r *nameResolver) resolve(ctx context.Context) {
	var (
		addrs []string
		errs  []error
	)
	for i, ep := range r.b.endpoints {
		ips, err := r.lookup(ctx, ep.Host)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve %s: %w", ep.Host, err))
			ips = r.known[i]
		} else {
			r.known[i] = ips
		}
		for _, ip := range ips {
			addrs = append(addrs, net.JoinHostPort(ip, ep.Port))
		}
	}
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	log := r.b.opts.Log
	err := errors.Join(errs...)
	if err != nil && err.Error() != r.lastErr {
		log.Warn("coreapp endpoint lookup failed", "err", err, "addresses_kept", addrs)
	}
	r.lastErr = ""
	if err != nil {
		r.lastErr = err.Error()
	}
	if len(addrs) == 0 {
		r.last = nil
		r.cc.ReportError(fmt.Errorf("no coreapp address: %w", err))
		return
	}
	if slices.Equal(addrs, r.last) {
		return
	}
	r.last = addrs
	log.Info("coreapp addresses", "addresses", addrs)
	state := resolver.State{Addresses: make([]resolver.Address, len(addrs))}
	for i, a := range addrs {
		state.Addresses[i] = resolver.Address{Addr: a}
	}
	if err := r.cc.UpdateState(state); err != nil {
		log.Warn("coreapp addresses refused by gRPC", "err", err)
	}
}

// lookup returns the IP addresses of host: itself for an IP literal.
func (r *nameResolver) lookup(ctx context.Context, host string) ([]string, error) {
	if net.ParseIP(host) != nil {
		return []string{host}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	ips, err := r.b.opts.Lookup(ctx, host)
	if err == nil && len(ips) == 0 {
		err = errors.New("no address")
	}
	return ips, err
}
