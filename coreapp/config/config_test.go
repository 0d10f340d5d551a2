package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openwaba/openwaba/chatd/wire"
)

func TestChatAddrs(t *testing.T) {
	tests := []struct {
		name           string
		port, fallback int
		want           []string
	}{
		{"fallback", 5222, 443, []string{"chatd:5222", "chatd:443", "tls://chatd:443"}},
		{"no fallback", 5222, 0, []string{"chatd:5222"}},
		{"fallback on the chat port", 443, 443, []string{"chatd:443", "tls://chatd:443"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Config{ChatHost: "chatd", ChatPort: tt.port, ChatFallbackPort: tt.fallback}.ChatAddrs()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ChatAddrs mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRootKeyRequired(t *testing.T) {
	t.Setenv("WA_CHAT_ROOT_KEY", "")
	t.Setenv("WA_CHAT_ROOT_KEY_FILE", "")
	_, err := Load("")
	if err == nil || !strings.Contains(err.Error(), "chat-root.pub") || !strings.Contains(err.Error(), "/sandbox/root-key") {
		t.Fatalf("Load without a root key = %v, want an error saying where the sandbox writes it", err)
	}
	pub, _, err := wire.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("WA_CHAT_ROOT_KEY", "not-a-key")
	if _, err := Load(""); err == nil {
		t.Error("Load accepted a malformed WA_CHAT_ROOT_KEY")
	}
	t.Setenv("WA_CHAT_ROOT_KEY", wire.EncodeRootKey(pub))
	t.Setenv("WA_CHAT_ROOT_KEY_FILE", "/some/file")
	if _, err := Load(""); err == nil {
		t.Error("Load accepted both WA_CHAT_ROOT_KEY and WA_CHAT_ROOT_KEY_FILE")
	}
	t.Setenv("WA_CHAT_ROOT_KEY_FILE", "")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.RootKey(t.Context(), nil)
	if err != nil || !got.Equal(pub) {
		t.Errorf("RootKey = %x, %v; want %x", got, err, []byte(pub))
	}
}

// TestRootKeyFile: the key is read from the file, waiting for chatd to
// write it, until the context ends.
func TestRootKeyFile(t *testing.T) {
	pub, _, err := wire.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "chat-root.pub")
	c := Config{ChatRootKeyFile: path}

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	waited := 0
	if _, err := c.RootKey(ctx, func() { waited++ }); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("RootKey without the file = %v, want a deadline error saying the file does not exist", err)
	}
	if waited != 1 {
		t.Errorf("onWait called %d times, want 1", waited)
	}

	done := make(chan error, 1)
	waiting := make(chan struct{})
	go func() {
		got, err := c.RootKey(t.Context(), func() { close(waiting) })
		if err == nil && !got.Equal(pub) {
			err = errors.New("another key")
		}
		done <- err
	}()
	<-waiting // the reader found no file and waits for it
	if err := os.WriteFile(path, []byte(wire.EncodeRootKey(pub)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("RootKey once the file exists: %v", err)
	}

	if err := os.WriteFile(path, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RootKey(t.Context(), nil); err == nil {
		t.Error("RootKey accepted a malformed file")
	}
}

func TestMediaSettings(t *testing.T) {
	pub, _, err := wire.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("WA_CHAT_ROOT_KEY", wire.EncodeRootKey(pub))
	t.Setenv("WA_CHAT_ROOT_KEY_FILE", "")
	t.Setenv("WA_DATA_DIR", "/var/lib/coreapp")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.MediaDir != "/var/lib/coreapp/media" || c.MediaAllowPrivateLinks || c.MediaLinkTimeout != time.Minute || c.WebhookAllowPrivate {
		t.Errorf("defaults: media dir %q, private links %v, link timeout %s; want /var/lib/coreapp/media, false, 1m",
			c.MediaDir, c.MediaAllowPrivateLinks, c.MediaLinkTimeout)
	}
	t.Setenv("WA_MEDIA_DIR", "/usr/local/wamedia")
	t.Setenv("WA_MEDIA_ALLOW_PRIVATE_LINKS", "true")
	t.Setenv("WA_WEBHOOK_ALLOW_PRIVATE", "true")
	t.Setenv("WA_MEDIA_LINK_TIMEOUT", "5s")
	if c, err = Load(""); err != nil {
		t.Fatal(err)
	}
	if c.MediaDir != "/usr/local/wamedia" || !c.MediaAllowPrivateLinks || c.MediaLinkTimeout != 5*time.Second || !c.WebhookAllowPrivate {
		t.Errorf("from the environment: %q, %v, %s", c.MediaDir, c.MediaAllowPrivateLinks, c.MediaLinkTimeout)
	}
	t.Setenv("WA_MEDIA_LINK_TIMEOUT", "0s")
	if _, err := Load(""); err == nil {
		t.Error("Load accepted WA_MEDIA_LINK_TIMEOUT=0s")
	}
}

func TestMessageRetention(t *testing.T) {
	pub, _, err := wire.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("WA_CHAT_ROOT_KEY", wire.EncodeRootKey(pub))
	t.Setenv("WA_CHAT_ROOT_KEY_FILE", "")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.MessageRetention != 30*24*time.Hour {
		t.Errorf("default retention = %s, want 720h", c.MessageRetention)
	}
	t.Setenv("WA_MESSAGE_RETENTION", "48h")
	if c, err = Load(""); err != nil || c.MessageRetention != 48*time.Hour {
		t.Errorf("WA_MESSAGE_RETENTION=48h: %s, %v", c.MessageRetention, err)
	}
	t.Setenv("WA_MESSAGE_RETENTION", "10m")
	if _, err := Load(""); err == nil {
		t.Error("Load accepted WA_MESSAGE_RETENTION=10m")
	}
}
