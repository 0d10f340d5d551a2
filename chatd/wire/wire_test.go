package wire_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/openwaba/openwaba/chatd/wire"
)

// frame returns the wire bytes of one frame announcing n bytes, followed by body.
func frame(n int, body []byte) []byte {
	return append([]byte{byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		body []byte
	}{
		{"empty", []byte{}},
		{"one byte", []byte{0x42}},
		{"small", []byte("hello, chatd")},
		{"256", bytes.Repeat([]byte{0xab}, 256)},
		{"max", bytes.Repeat([]byte{0x5a}, wire.MaxFrame)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := wire.WriteFrame(&buf, tt.body); err != nil {
				t.Fatalf("WriteFrame: %v", err)
			}
			if want := frame(len(tt.body), tt.body); !bytes.Equal(want, buf.Bytes()) {
				t.Fatalf("wire bytes = %x…(%d bytes), want %x…(%d bytes)", buf.Bytes()[:min(buf.Len(), 8)], buf.Len(), want[:min(len(want), 8)], len(want))
			}
			// Two frames back to back: the reader must stop at the boundary.
			if err := wire.WriteFrame(&buf, []byte("next")); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(&buf)
			got, err := wire.ReadFrame(br, nil)
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if !bytes.Equal(tt.body, got) || len(got) != len(tt.body) {
				t.Errorf("first frame = %d bytes %x…, want %d bytes %x…", len(got), got[:min(len(got), 8)], len(tt.body), tt.body[:min(len(tt.body), 8)])
			}
			got, err = wire.ReadFrame(br, got) // reuse the buffer
			if err != nil {
				t.Fatalf("ReadFrame #2: %v", err)
			}
			if string(got) != "next" {
				t.Errorf("second frame = %q, want %q", got, "next")
			}
			if _, err := wire.ReadFrame(br, nil); !errors.Is(err, io.EOF) {
				t.Errorf("ReadFrame at a clean end = %v, want io.EOF", err)
			}
		})
	}
}

// countingReader counts the bytes the frame reader pulled from the wire.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReadFrameTooLarge(t *testing.T) {
	for _, n := range []int{wire.MaxFrame + 1, 1 << 20, 1<<24 - 1} {
		// The announced body follows in full: a reader that trusted the
		// header would read it successfully.
		in := frame(n, make([]byte, n))
		cr := &countingReader{r: bytes.NewReader(in)}
		// A 3-byte buffer: the reader cannot read ahead past the header.
		br := bufio.NewReaderSize(cr, 16)
		got, err := wire.ReadFrame(br, nil)
		if !errors.Is(err, wire.ErrFrameTooLarge) {
			t.Fatalf("ReadFrame(header %d) err = %v, want ErrFrameTooLarge", n, err)
		}
		if got != nil {
			t.Errorf("ReadFrame(header %d) returned %d bytes, want nil", n, len(got))
		}
		if cr.n > 16 {
			t.Errorf("ReadFrame(header %d) consumed %d bytes of the body, want only the header", n, cr.n)
		}
	}

	// And it refuses before allocating: 200 refusals of a 16 MiB header must
	// not allocate anything near one such body.
	in := frame(1<<24-1, nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 200 {
		if _, err := wire.ReadFrame(bufio.NewReader(bytes.NewReader(in)), nil); !errors.Is(err, wire.ErrFrameTooLarge) {
			t.Fatalf("err = %v, want ErrFrameTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Errorf("200 refused oversize frames allocated %d bytes; the body must not be allocated", got)
	}
}

func TestReadFrameTruncated(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"nothing", nil, io.EOF},
		{"one header byte", []byte{0}, io.ErrUnexpectedEOF},
		{"two header bytes", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"header without body", frame(10, nil), io.ErrUnexpectedEOF},
		{"short body", frame(10, []byte("12345")), io.ErrUnexpectedEOF},
		{"max header, one byte short", frame(wire.MaxFrame, make([]byte, wire.MaxFrame-1)), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wire.ReadFrame(bufio.NewReader(bytes.NewReader(tt.in)), nil)
			if !errors.Is(err, tt.want) {
				t.Errorf("ReadFrame(%d bytes) err = %v, want %v", len(tt.in), err, tt.want)
			}
		})
	}
}

func TestWriteFrameOversize(t *testing.T) {
	var buf bytes.Buffer
	err := wire.WriteFrame(&buf, make([]byte, wire.MaxFrame+1))
	if !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("WriteFrame(MaxFrame+1) err = %v, want ErrFrameTooLarge", err)
	}
	if buf.Len() != 0 {
		t.Errorf("WriteFrame(MaxFrame+1) wrote %d bytes, want none", buf.Len())
	}
}
