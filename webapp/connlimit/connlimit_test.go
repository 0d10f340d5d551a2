package connlimit

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestCapPerAddress(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := dial(), dial()
	got := []net.Conn{<-accepted, <-accepted}
	_ = a
	third := dial()
	// The third connection of 127.0.0.1 is closed by the listener.
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil {
		t.Fatal("third connection was not closed")
	}
	if n := l.Refused.Load(); n != 1 {
		t.Fatalf("Refused = %d, want 1", n)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	if n := l.Open(loop); n != 2 {
		t.Fatalf("Open = %d, want 2", n)
	}
	// Closing one makes room for another.
	got[0].Close()
	got[0].Close() // twice: released once
	b.Close()
	if n := l.Open(loop); n != 1 {
		t.Fatalf("Open after close = %d, want 1", n)
	}
	dial()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("a connection under the cap was not accepted")
	}
}
