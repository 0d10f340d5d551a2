package e2e

import (
	"testing"
	"time"

	"github.com/openwaba/openwaba/e2e/stack"
)

// TestRateLimits: on-prem's request rate limiting, shared by two webapps
// (each fills at half the limit, so the pair allows the limit, not
// twice it): past the burst the API answers 429 with Retry-After, 1015 in
// the on-prem envelope and 130429 in the Graph one.
func TestRateLimits(t *testing.T) {
	s := stack.New(t, stack.Options{Webapps: 2, WebEnv: map[string]string{"WA_RATE_LIMIT_DEFAULT": "2/10", "WA_RATE_LIMIT_MESSAGES": "2/6"}})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	// Both webapps count each other (they beat every 5 s).
	monitor := map[string]string{"Authorization": "Apikey monitoring-key-0123456789"}
	deadline := time.Now().Add(30 * time.Second)
	for i := range s.Webs {
		for getMetrics(t, s.Client, s.WebURL(i)+"/metrics", monitor).sum("openwaba_rate_limit_share") != 2 {
			if time.Now().After(deadline) {
				t.Fatalf("webapp %d does not count two webapps", i)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	// The set-up above spent the admin's tokens: wait for them.
	patient := func(method, path string, auth stack.Auth) stack.Response {
		t.Helper()
		for range 50 {
			if r := s.Do(method, path, auth, nil); r.Status != 429 {
				return r
			}
			time.Sleep(300 * time.Millisecond)
		}
		t.Fatalf("%s %s: still 429", method, path)
		return stack.Response{}
	}
	kr := patient("POST", "/v1/account/api_keys", bearer(tok))
	key := kr.Body["api_keys"].([]any)[0].(map[string]any)["key"].(string)
	pnid, _ := patient("GET", "/v1/configs/phone_number", bearer(tok)).Body["phone_number_id"].(string)

	// A burst spread over both webapps: about the shared burst gets through.
	allowed, refused := 0, 0
	for i := range 30 {
		r := s.Webs[i%2].Do("GET", "/v1/configs/phone_number", stack.Auth{APIKey: key}, nil)
		switch r.Status {
		case 200:
			allowed++
		case 429:
			refused++
			if r.ErrorCode() != 1015 || r.Header.Get("Retry-After") == "" {
				t.Errorf("429 = %s (Retry-After %q), want 1015 and Retry-After", r.Raw, r.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("GET = %d %s", r.Status, r.Raw)
		}
	}
	if allowed < 8 || allowed > 12 || refused == 0 {
		t.Errorf("%d allowed and %d refused of 30 within the burst of 10 shared by two webapps", allowed, refused)
	}
	// Another caller has its own bucket.
	if r := patient("GET", "/v1/health", bearer(tok)); r.Status != 200 {
		t.Errorf("the admin's request after the key's burst = %d %s", r.Status, r.Raw)
	}

	// The Cloud messages route: the messages group, in Graph's envelope.
	graph429 := 0
	for i := range 20 {
		r := s.Webs[i%2].Do("POST", "/v23.0/"+pnid+"/messages", stack.Auth{APIKey: key},
			map[string]any{"messaging_product": "whatsapp", "to": "15551230012", "type": "text", "text": map[string]any{"body": "hi"}})
		if r.Status == 429 {
			graph429++
			if code := dig(r.Body, "error", "code"); code != float64(130429) || r.Header.Get("Retry-After") == "" {
				t.Errorf("Graph 429 = %s, want code 130429 and Retry-After", r.Raw)
			}
		}
	}
	if graph429 == 0 {
		t.Error("20 Cloud sends past a burst of 6 were all accepted")
	}
	// It refills at the rate: a second later a request goes through.
	time.Sleep(1500 * time.Millisecond)
	if r := s.Do("GET", "/v1/configs/phone_number", stack.Auth{APIKey: key}, nil); r.Status != 200 {
		t.Errorf("after a pause = %d %s, want 200", r.Status, r.Raw)
	}
}

// TestBacklogLimit: on-prem's concurrent rate limiting. While the network
// is away a number's accepted messages wait; past WA_MAX_PENDING_MESSAGES
// sends answer 503 (1016), and once the backlog drained they are taken
// again. Nothing accepted before the limit is lost.
func TestBacklogLimit(t *testing.T) {
	s := stack.New(t, stack.Options{CoreEnv: map[string]string{"WA_MAX_PENDING_MESSAGES": "3"}})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	phone := s.NewPhone("15551230013", "Sam")
	phone.OpenWindow(bizWaID)
	s.Chatd.Stop()
	s.WaitHealth(tok, "disconnected", 30*time.Second)

	var accepted []string
	refused := false
	for i := 0; i < 20 && !refused; i++ {
		r := s.Do("POST", "/v1/messages", bearer(tok), map[string]any{"to": phone.Number(), "text": map[string]any{"body": "queued"}})
		switch r.Status {
		case 201:
			accepted = append(accepted, r.Body["messages"].([]any)[0].(map[string]any)["id"].(string))
		case 503:
			if r.ErrorCode() != 1016 {
				t.Errorf("503 = %s, want 1016", r.Raw)
			}
			refused = true
		default:
			t.Fatalf("send = %d %s", r.Status, r.Raw)
		}
		time.Sleep(250 * time.Millisecond) // the count is read at most once a second
	}
	if !refused || len(accepted) < 3 || len(accepted) > 8 {
		t.Fatalf("%d accepted, refused %v; want about 3 accepted, then 503", len(accepted), refused)
	}
	s.StartChatd()
	for _, id := range accepted {
		awaitMessage(t, phone, id)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := s.Do("POST", "/v1/messages", bearer(tok), map[string]any{"to": phone.Number(), "text": map[string]any{"body": "after"}})
		if r.Status == 201 {
			break
		}
		if r.Status != 503 || time.Now().After(deadline) {
			t.Fatalf("after the backlog drained, send = %d %s", r.Status, r.Raw)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
