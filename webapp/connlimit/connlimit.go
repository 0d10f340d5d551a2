// Package connlimit caps the TCP connections one client address may hold
// open on a listener, so that one client (a runaway script, a slow-loris
// attacker) cannot take every connection the webapp can serve. A connection
// over the cap is closed at once, before TLS, and counted.
//
// A Listener is safe for concurrent use.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Listener wraps a net.Listener with a per-address cap.
type Listener struct {
	net.Listener
	max int

	mu    sync.Mutex // guards conns
	conns map[netip.Addr]int
	// Refused counts connections closed for being over the cap.
	Refused atomic.Int64
}

// New returns l limited to max open connections per remote IP address
// (max <= 0: no limit).
func New(l net.Listener, max int) *Listener {
	return &Listener{Listener: l, max: max, conns: map[netip.Addr]int{}}
}

// Accept returns the next connection within the cap; connections over it
// are closed and skipped.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.max <= 0 {
			return c, err
		}
		addr := remoteAddr(c)
		l.mu.Lock()
		n := l.conns[addr]
		if n >= l.max {
			l.mu.Unlock()
			l.Refused.Add(1)
			c.Close()
			continue
		}
		l.conns[addr] = n + 1
		l.mu.Unlock()
		return &conn{Conn: c, l: l, addr: addr}, nil
	}
}

// Open returns the open connections of addr.
func (l *Listener) Open(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[addr]
}

func (l *Listener) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[addr] <= 1 {
		delete(l.conns, addr)
		return
	}
	l.conns[addr]--
}

func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

type conn struct {
	net.Conn
	l    *Listener
	addr netip.Addr
	once sync.Once
}

// Close releases the connection's place under the cap (once).
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.addr) })
	return err
}
