package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/e2e/stack"
)

// crashStack is a registered business behind a proxy to chatd, a phone and
// a webhook receiver.
func crashStack(t *testing.T) (*stack.Stack, string, *stack.Phone, *stack.Webhook) {
	t.Helper()
	s := stack.New(t, stack.Options{ProxyChat: true})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	hook := stack.NewWebhook(t)
	r := s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{
		"webhooks":                  map[string]any{"url": hook.URL, "message": map[string]bool{"sent": true}},
		"callback_backoff_delay_ms": 200, "max_callback_backoff_delay_ms": 1000,
	})
	if r.Status != 200 {
		t.Fatalf("PATCH settings = %d %s", r.Status, r.Raw)
	}
	phone := s.NewPhone("15551234567", "Kerry")
	phone.OpenWindow(bizWaID)
	// Establish the Signal session (bundle fetch, pre-key message) before
	// the tests cut connections, so what they cut is the messages' path.
	warm := sendTexts(t, s, tok, "15551234567", "warm-up", 1)
	phone.WaitFor(30*time.Second, "warm-up", func(e waphone.Event) bool { return e.Event == "message" && e.ID == warm[0] })
	return s, tok, phone, hook
}

func sendTexts(t testing.TB, s *stack.Stack, tok, to, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		r := s.Do("POST", "/v1/messages", bearer(tok), map[string]any{"to": to, "text": map[string]any{"body": fmt.Sprintf("%s %d", prefix, i)}})
		if r.Status != 201 {
			t.Fatalf("send %d = %d %s", i, r.Status, r.Raw)
		}
		ids[i] = r.Body["messages"].([]any)[0].(map[string]any)["id"].(string)
	}
	return ids
}

// restartCut kills coreapp, drops its held connection, and starts it again.
func restartCut(s *stack.Stack, tok string) {
	s.KillCoreapp()
	s.Proxy.DropAll()
	s.Proxy.Release()
	s.RestartCoreapp()
	s.WaitHealth(tok, "connected", 30*time.Second)
}

// assertExactlyOnceInOrder checks that the phone showed every id once, in
// the order they were accepted.
func assertExactlyOnceInOrder(t *testing.T, phone *stack.Phone, ids []string) {
	t.Helper()
	var seen []string
	count := map[string]int{}
	for _, e := range phone.Events() {
		if e.Event == "message" {
			count[e.ID]++
			if slices.Contains(ids, e.ID) && count[e.ID] == 1 {
				seen = append(seen, e.ID)
			}
		}
	}
	for _, id := range ids {
		if count[id] != 1 {
			t.Errorf("message %s shown %d times, want exactly once", id, count[id])
		}
	}
	if !slices.Equal(seen, ids) {
		t.Errorf("messages arrived in order %v, want %v", seen, ids)
	}
}

// TestCrashBetweenAcceptAndSend: messages accepted by the API while
// coreapp's stanzas cannot reach chatd, then coreapp is killed. After a
// restart every accepted message reaches the phone exactly once, in order.
func TestCrashBetweenAcceptAndSend(t *testing.T) {
	s, tok, phone, _ := crashStack(t)
	s.Proxy.Hold(true, false)
	ids := sendTexts(t, s, tok, "15551234567", "before crash", 20)
	restartCut(s, tok)
	phone.WaitCount(30*time.Second, "messages", len(ids), func(e waphone.Event) bool {
		return e.Event == "message" && slices.Contains(ids, e.ID)
	})
	sentinel := sendTexts(t, s, tok, "15551234567", "sentinel", 1)
	phone.WaitFor(30*time.Second, "sentinel", func(e waphone.Event) bool { return e.Event == "message" && e.ID == sentinel[0] })
	assertExactlyOnceInOrder(t, phone, append(ids, sentinel...))
}

// TestCrashBeforeChatdAck: chatd stores and delivers the messages but its
// acks never reach coreapp, which is then killed. The restarted coreapp sends
// them again; chatd recognises the ids, so the phone still shows each once,
// and the statuses move on to sent.
func TestCrashBeforeChatdAck(t *testing.T) {
	s, tok, phone, hook := crashStack(t)
	s.Proxy.Hold(false, true)
	ids := sendTexts(t, s, tok, "15551234567", "ack lost", 20)
	phone.WaitCount(30*time.Second, "messages", len(ids), func(e waphone.Event) bool {
		return e.Event == "message" && slices.Contains(ids, e.ID)
	})
	restartCut(s, tok)
	hook.Wait(30*time.Second, "sent statuses", func(ps []stack.Payload) bool {
		for _, id := range ids {
			if !slices.Contains(stack.StatusesOf(ps, id), "sent") && !slices.Contains(stack.StatusesOf(ps, id), "delivered") {
				return false
			}
		}
		return true
	})
	sentinel := sendTexts(t, s, tok, "15551234567", "sentinel", 1)
	phone.WaitFor(30*time.Second, "sentinel", func(e waphone.Event) bool { return e.Event == "message" && e.ID == sentinel[0] })
	assertExactlyOnceInOrder(t, phone, append(ids, sentinel...))
}

// TestCrashBeforeInboundAck: coreapp receives and stores inbound messages
// but its acks never reach chatd; coreapp is killed. chatd delivers them
// again after the restart: the webhook has every message at least once with
// its id, and the phone sees them delivered.
func TestCrashBeforeInboundAck(t *testing.T) {
	s, tok, phone, hook := crashStack(t)
	s.Proxy.Hold(true, false)
	var ids []string
	for i := range 15 {
		ids = append(ids, phone.Text(bizWaID, fmt.Sprintf("inbound %d", i)))
	}
	hook.Wait(30*time.Second, "inbound messages before the crash", func(ps []stack.Payload) bool {
		got := stack.InboundIDs(ps)
		for _, id := range ids {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	restartCut(s, tok)
	phone.WaitCount(30*time.Second, "delivered receipts", len(ids), func(e waphone.Event) bool {
		return e.Event == "receipt" && e.Status == "delivered" && slices.Contains(ids, e.ID)
	})
	got := stack.InboundIDs(hook.Payloads())
	for _, id := range ids {
		if got[id] < 1 {
			t.Errorf("inbound %s never reached the webhook", id)
		}
	}
	// More traffic after the restart still flows.
	after := phone.Text(bizWaID, "after the restart")
	hook.Wait(30*time.Second, "message after restart", func(ps []stack.Payload) bool { return stack.InboundIDs(ps)[after] > 0 })
}

// TestWebhookOutageAcrossRestart: the receiver fails while events pile up,
// coreapp restarts in the middle, and once the receiver recovers it gets
// every event.
func TestWebhookOutageAcrossRestart(t *testing.T) {
	s := stack.New(t, stack.Options{})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	hook := stack.NewWebhook(t)
	hook.SetFailing(true)
	s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{
		"webhooks":                  map[string]any{"url": hook.URL},
		"callback_backoff_delay_ms": 100, "max_callback_backoff_delay_ms": 500,
	})
	phone := s.NewPhone("15551234567", "Kerry")
	in := []string{phone.OpenWindow(bizWaID)}
	for i := range 10 {
		in = append(in, phone.Text(bizWaID, fmt.Sprintf("during outage %d", i)))
	}
	out := sendTexts(t, s, tok, "15551234567", "reply during outage", 10)
	phone.WaitCount(30*time.Second, "replies", len(out), func(e waphone.Event) bool { return e.Event == "message" && slices.Contains(out, e.ID) })
	deadline := time.Now().Add(30 * time.Second)
	for hook.Attempts() < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if hook.Attempts() < 3 {
		t.Fatalf("webhook attempts during the outage = %d, want retries", hook.Attempts())
	}

	s.Coreapp.Stop()
	s.RestartCoreapp()
	hook.SetFailing(false)
	hook.Wait(60*time.Second, "every event after the outage", func(ps []stack.Payload) bool {
		got := stack.InboundIDs(ps)
		for _, id := range in {
			if got[id] == 0 {
				return false
			}
		}
		for _, id := range out {
			if !slices.Contains(stack.StatusesOf(ps, id), "delivered") {
				return false
			}
		}
		return true
	})
}

// TestWebhookNotPersisted: with callback_persist off, callbacks pending at a
// restart are dropped (the documented on-prem behaviour), and new ones flow.
func TestWebhookNotPersisted(t *testing.T) {
	s := stack.New(t, stack.Options{})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	hook := stack.NewWebhook(t)
	hook.SetFailing(true)
	s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{
		"webhooks": map[string]any{"url": hook.URL}, "callback_persist": false,
		"callback_backoff_delay_ms": 100, "max_callback_backoff_delay_ms": 200,
	})
	phone := s.NewPhone("15551234567", "Kerry")
	lost := phone.Text(bizWaID, "pending at restart")
	deadline := time.Now().Add(30 * time.Second)
	for hook.Attempts() < 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	s.Coreapp.Stop()
	s.RestartCoreapp()
	hook.SetFailing(false)
	next := phone.Text(bizWaID, "after restart")
	ps := hook.Wait(30*time.Second, "the new message", func(ps []stack.Payload) bool { return stack.InboundIDs(ps)[next] > 0 })
	if stack.InboundIDs(ps)[lost] != 0 {
		t.Errorf("a callback pending at the restart was delivered although callback_persist is off")
	}
}
