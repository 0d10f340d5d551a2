package api

import (
	"strings"
	"testing"
)

func TestMaskSettings(t *testing.T) {
	in := `{"webhooks":{"url":"https://hook:pw@example.test/in?token=s3cret&b=1","headers":{"Authorization":"Bearer s3cret"},"max_concurrent_requests":6},"sent_status":true}`
	out, err := maskSettings([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if strings.Contains(got, "s3cret") || strings.Contains(got, "pw@") {
		t.Errorf("masked settings still hold a secret: %s", got)
	}
	for _, want := range []string{`"Authorization":"********"`, `example.test/in?b=********\u0026token=********`, `"sent_status":true`, `"max_concurrent_requests":6`} {
		if !strings.Contains(got, want) {
			t.Errorf("masked settings %s lack %s", got, want)
		}
	}
	// The same settings give the same digest input, whatever the key order.
	again, _ := maskSettings([]byte(`{"sent_status":true,"webhooks":{"max_concurrent_requests":6,"headers":{"Authorization":"other"},"url":"https://hook:x@example.test/in?b=2&token=t"}}`))
	if string(again) != got {
		t.Errorf("masking is not stable:\n%s\n%s", got, again)
	}
	if _, err := maskSettings([]byte(`[1]`)); err == nil {
		t.Error("settings that are not an object were accepted")
	}
	if out, err := maskSettings(nil); err != nil || string(out) != "{}" {
		t.Errorf("no settings = %s, %v", out, err)
	}
}
