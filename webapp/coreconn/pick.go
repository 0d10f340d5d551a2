package coreconn

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
)

type attemptsKey struct{}

// attempts records the nodes the attempts of one call were sent to.
type attempts struct {
	mu    sync.Mutex // guards addrs
	addrs []string   // in the order they were picked
}

// WithAttempts returns a context for every attempt of one logical call (its
// retries included): each attempt made with it goes to the ready node that
// the earlier ones used least recently, that is to a node not tried yet
// while there is one. Without it, calls are plain round robin.
func WithAttempts(ctx context.Context) context.Context {
	return context.WithValue(ctx, attemptsKey{}, &attempts{})
}

// Attempted returns the addresses (ip:port) the attempts made with ctx were
// sent to, oldest first; nil for a context without WithAttempts.
func Attempted(ctx context.Context) []string {
	a, _ := ctx.Value(attemptsKey{}).(*attempts)
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.addrs)
}

type pickerBuilder struct{}

// Build makes the picker of the ready sub-connections, in address order.
func (pickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable) // wait for one
	}
	p := &picker{nodes: make([]node, 0, len(info.ReadySCs))}
	for sc, i := range info.ReadySCs {
		p.nodes = append(p.nodes, node{sc: sc, addr: i.Address.Addr})
	}
	slices.SortFunc(p.nodes, func(a, b node) int { return cmp.Compare(a.addr, b.addr) })
	p.next.Store(rand.Uint32()) // webapps started together do not all begin with the same node
	return p
}

type node struct {
	sc   balancer.SubConn
	addr string
}

// picker is round robin over ready nodes, steered by the call's attempts.
type picker struct {
	nodes []node
	next  atomic.Uint32
}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	n := uint32(len(p.nodes))
	start := p.next.Add(1)
	a, _ := info.Ctx.Value(attemptsKey{}).(*attempts)
	if a == nil {
		return balancer.PickResult{SubConn: p.nodes[start%n].sc}, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// The node used least recently by this call (never: -1), starting the
	// search at the round-robin position so that ties spread the load.
	best, bestUse := p.nodes[start%n], len(a.addrs)
	for i := range n {
		nd := p.nodes[(start+i)%n]
		if use := a.lastUseLocked(nd.addr); use < bestUse {
			best, bestUse = nd, use
		}
	}
	a.addrs = append(a.addrs, best.addr)
	return balancer.PickResult{SubConn: best.sc}, nil
}

// lastUseLocked is the index in a.addrs of the latest attempt sent to addr,
// or -1. a.mu is held.
func (a *attempts) lastUseLocked(addr string) int {
	for i := len(a.addrs) - 1; i >= 0; i-- {
		if a.addrs[i] == addr {
			return i
		}
	}
	return -1
}
