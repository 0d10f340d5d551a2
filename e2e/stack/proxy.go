package stack

import (
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP relay whose directions can be held (bytes stay unread, as
// on a stalled network) and whose connections can be dropped without
// forwarding what is held. It stands between two real processes to cut them
// apart at a chosen moment.
type Proxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex // guards the fields below
	cond     *sync.Cond
	holdUp   bool // client → server
	holdDown bool // server → client
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	// Recorded, when non-nil, receives every byte relayed in either
	// direction (for privacy tests); set it with Record.
	Recorded func(up bool, b []byte)
}

// NewProxy relays a loopback port to target until the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Record makes the proxy pass every relayed chunk to fn (up: client →
// server), from now on.
func (p *Proxy) Record(fn func(up bool, b []byte)) {
	p.mu.Lock()
	p.Recorded = fn
	p.mu.Unlock()
}

// Hold stops relaying in the given directions (up: client → server).
func (p *Proxy) Hold(up, down bool) {
	p.mu.Lock()
	p.holdUp, p.holdDown = up, down
	p.mu.Unlock()
	p.cond.Broadcast()
}

// Release relays both directions again.
func (p *Proxy) Release() { p.Hold(false, false) }

// DropAll closes every relayed connection; held bytes are discarded.
func (p *Proxy) DropAll() {
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
	p.cond.Broadcast()
}

// Close stops the proxy and waits for its goroutines.
func (p *Proxy) Close() {
	p.ln.Close()
	p.DropAll()
	p.Release()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pump(c, s, true) })
		p.wg.Go(func() { p.pump(s, c, false) })
	}
}

// pump relays src to dst, waiting while its direction is held. A pump
// checks the hold before reading, so held bytes stay in the kernel.
func (p *Proxy) pump(src, dst net.Conn, up bool) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		p.mu.Lock()
		for (up && p.holdUp || !up && p.holdDown) && p.live(src) {
			p.cond.Wait()
		}
		alive := p.live(src)
		rec := p.Recorded
		p.mu.Unlock()
		if !alive {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			held := (up && p.holdUp || !up && p.holdDown)
			p.mu.Unlock()
			if held {
				// The hold began while we were reading: wait, then forward
				// (unless the connection is dropped meanwhile).
				p.mu.Lock()
				for (up && p.holdUp || !up && p.holdDown) && p.live(src) {
					p.cond.Wait()
				}
				alive := p.live(src)
				p.mu.Unlock()
				if !alive {
					return
				}
			}
			if rec != nil {
				rec(up, append([]byte(nil), buf[:n]...))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) live(c net.Conn) bool {
	_, ok := p.conns[c]
	return ok
}
