package e2e

import (
	"strings"
	"testing"

	"github.com/openwaba/openwaba/e2e/stack"
)

// TestHarnessMultiNode proves the harness for high availability: two
// coreapps and two webapps on one database come up, each coreapp with its
// own node id, and both webapps answer GET /v1/health with a token made
// through the other one. It also reads a phone's login from chatd's log.
func TestHarnessMultiNode(t *testing.T) {
	s := stack.New(t, stack.Options{Coreapps: 2, Webapps: 2})
	if len(s.Cores) != 2 || len(s.Webs) != 2 {
		t.Fatalf("stack has %d coreapps and %d webapps, want 2 and 2", len(s.Cores), len(s.Webs))
	}
	if want := s.Cores[0].Endpoint() + "," + s.Cores[1].Endpoint(); s.CoreEndpoints() != want {
		t.Errorf("WA_CORE_ENDPOINT = %q, want %q", s.CoreEndpoints(), want)
	}
	for i, c := range s.Cores {
		if !strings.Contains(c.Log(), "node="+c.NodeID) {
			t.Errorf("coreapp %d does not log node=%s", i, c.NodeID)
		}
	}
	if s.Coreapp != s.Cores[0].Proc || s.Webapp != s.Webs[0].Proc || s.URL != s.WebURL(0) {
		t.Error("s.Coreapp, s.Webapp and s.URL are not the first nodes")
	}

	tok := s.Webs[1].Do("POST", "/v1/users/login", stack.Auth{Basic: [2]string{"admin", "secret"}},
		map[string]string{"new_password": stack.AdminPassword}).Body["users"].([]any)[0].(map[string]any)["token"].(string)
	for i, w := range s.Webs {
		r := w.Do("GET", "/v1/health", bearer(tok), nil)
		if r.Status != 200 {
			t.Errorf("webapp %d: GET /v1/health = %d %s, want 200", i, r.Status, r.Raw)
		}
		r = w.Do("GET", "/v1/health", stack.Auth{Header: map[string]string{"Authorization": "Apikey monitoring-key-0123456789"}}, nil)
		if r.Status != 200 {
			t.Errorf("webapp %d: GET /v1/health with the monitoring key = %d %s, want 200", i, r.Status, r.Raw)
		}
	}

	phone := s.NewPhone("15551230001", "Harness")
	var logins int
	for _, e := range s.ChatdSessionsOf(phone.Number()) {
		if e.Event == "login" && !e.Time.IsZero() {
			logins++
		}
	}
	if logins == 0 {
		t.Errorf("chatd's log shows no login of %s: %+v", phone.Number(), s.ChatdSessions())
	}
}
