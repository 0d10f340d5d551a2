package config

import (
	"strings"
	"testing"
	"time"
)

// TestChatdMedia: the media settings' defaults, and what is refused.
func TestChatdMedia(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		port    int
		url     string
		ttl     time.Duration
		wantErr string
	}{
		{"defaults", nil, 5281, "", 720 * time.Hour, ""},
		{"disabled", map[string]string{"WA_CHATD_MEDIA_PORT": "0"}, 0, "", 720 * time.Hour, ""},
		{"all set", map[string]string{"WA_CHATD_MEDIA_PORT": "8443", "WA_CHATD_MEDIA_URL": "https://media.example:9443/", "WA_CHATD_MEDIA_TTL": "48h"},
			8443, "https://media.example:9443", 48 * time.Hour, ""},
		{"port out of range", map[string]string{"WA_CHATD_MEDIA_PORT": "70000"}, 0, "", 0, "WA_CHATD_MEDIA_PORT"},
		{"ttl too short", map[string]string{"WA_CHATD_MEDIA_TTL": "30s"}, 0, "", 0, "WA_CHATD_MEDIA_TTL"},
		{"url not https", map[string]string{"WA_CHATD_MEDIA_URL": "http://media.example"}, 0, "", 0, "WA_CHATD_MEDIA_URL"},
		{"url with a query", map[string]string{"WA_CHATD_MEDIA_URL": "https://media.example/?a=b"}, 0, "", 0, "WA_CHATD_MEDIA_URL"},
		{"url without host", map[string]string{"WA_CHATD_MEDIA_URL": "https:///x"}, 0, "", 0, "WA_CHATD_MEDIA_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"WA_CHATD_MEDIA_PORT", "WA_CHATD_MEDIA_URL", "WA_CHATD_MEDIA_TTL"} {
				t.Setenv(k, tt.env[k])
			}
			c, err := LoadChatd("")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadChatd err = %v, want one about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.MediaPort != tt.port || c.MediaURL != tt.url || c.MediaTTL != tt.ttl {
				t.Errorf("media port %d, url %q, ttl %v; want %d, %q, %v", c.MediaPort, c.MediaURL, c.MediaTTL, tt.port, tt.url, tt.ttl)
			}
		})
	}
}

// TestChatdSandboxRules: the window is enforced and templates are approved
// after 5 s unless configured otherwise; bad values are refused.
func TestChatdSandboxRules(t *testing.T) {
	tests := []struct {
		name    string
		enforce string
		delay   string
		want    bool
		wantD   time.Duration
		wantErr string
	}{
		{"defaults", "", "", true, 5 * time.Second, ""},
		{"off, at once", "false", "0", false, 0, ""},
		{"on, slow", "TRUE", "1m", true, time.Minute, ""},
		{"enforce not a bool", "sometimes", "", false, 0, "WA_SANDBOX_ENFORCE_WINDOW"},
		{"delay not a duration", "", "5", false, 0, "WA_SANDBOX_TEMPLATE_APPROVAL_DELAY"},
		{"negative delay", "", "-1s", false, 0, "WA_SANDBOX_TEMPLATE_APPROVAL_DELAY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WA_SANDBOX_ENFORCE_WINDOW", tt.enforce)
			t.Setenv("WA_SANDBOX_TEMPLATE_APPROVAL_DELAY", tt.delay)
			c, err := LoadChatd("")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadChatd err = %v, want one about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.EnforceWindow != tt.want || c.TemplateApprovalDelay != tt.wantD {
				t.Errorf("enforce %v, delay %v; want %v, %v", c.EnforceWindow, c.TemplateApprovalDelay, tt.want, tt.wantD)
			}
		})
	}
}
