package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/openwaba/openwaba/chatd/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFileCommand(t *testing.T) {
	tests := []struct {
		args    string
		want    command
		wantErr bool
	}{
		{" /tmp/a.pdf", command{Cmd: "send", To: "15550001", File: "/tmp/a.pdf"}, false},
		{" a.jpg image", command{Cmd: "send", To: "15550001", File: "a.jpg", Type: "image"}, false},
		{" a.jpg image  look at this ", command{Cmd: "send", To: "15550001", File: "a.jpg", Type: "image", Caption: "look at this"}, false},
		{" a.pdf the Q3 report", command{Cmd: "send", To: "15550001", File: "a.pdf", Caption: "the Q3 report"}, false},
		{"", command{}, true},
		{"   ", command{}, true},
	}
	for _, tt := range tests {
		got, err := fileCommand("15550001", tt.args)
		if (err != nil) != tt.wantErr {
			t.Errorf("fileCommand(%q) err = %v, want error %v", tt.args, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("fileCommand(%q) mismatch (-want +got):\n%s", tt.args, diff)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServe: the web phone refuses a plain-HTTP listener off loopback,
// prints where it listens, and answers only the Host names --hosts gives.
func TestServe(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	key := wire.EncodeRootKey(pub)
	var out, errs syncBuffer
	err = run(t.Context(), strings.NewReader(""), &out, &errs, []string{"--root-key", key, "serve", "--dir", t.TempDir(), "--listen", "0.0.0.0:0"})
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("serve on 0.0.0.0 without TLS = %v, want a refusal", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, strings.NewReader(""), &out, &errs, []string{"--root-key", key, "serve", "--dir", t.TempDir(), "--listen", "127.0.0.1:0", "--hosts", "phone.test:80"})
	}()
	var url string
	deadline := time.Now().Add(10 * time.Second)
	for url == "" {
		if _, rest, ok := strings.Cut(out.String(), "Web phone: "); ok {
			url, _, _ = strings.Cut(rest, " ")
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve printed %q (stderr %q)", out.String(), errs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for host, want := range map[string]int{"": http.StatusMisdirectedRequest, "phone.test:80": http.StatusOK} {
		req, _ := http.NewRequest("GET", url+"api/phones", nil)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %sapi/phones with Host %q = %d, want %d", url, host, resp.StatusCode, want)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve = %v, want nil after Ctrl-C", err)
	}
}
