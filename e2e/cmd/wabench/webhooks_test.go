package main

import (
	"slices"
	"testing"
)

func TestIDsIn(t *testing.T) {
	cloud := `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp",` +
		`"metadata":{"display_phone_number":"15550100","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Kerry"},"wa_id":"15551234567"}],` +
		`"messages":[{"from":"15551234567","id":"3EB0A1","timestamp":"1","type":"text","text":{"body":"say \"id\":\"x\""}}]},"field":"messages"}]}]}`
	onprem := `{"contacts":[{"profile":{"name":"Kerry"},"wa_id":"15551234567"}],"messages":[{"from":"1","id":"3EB0A2","type":"text"},{"from":"2","id":"3EB0A3","type":"text"}]}`
	if got := idsIn([]byte(cloud)); !slices.Contains(got, "3EB0A1") || !slices.Contains(got, "102290129340398") {
		t.Errorf("cloud ids %q", got)
	}
	if got := idsIn([]byte(onprem)); !slices.Equal(got, []string{"3EB0A2", "3EB0A3"}) {
		t.Errorf("on-prem ids %q", got)
	}
}
