package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/e2e/stack"
)

// encStack is a registered business with a webhook and every status on.
func encStack(t *testing.T, o stack.Options) (*stack.Stack, string, *stack.Webhook) {
	t.Helper()
	s := stack.New(t, o)
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	hook := stack.NewWebhook(t)
	if r := s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{
		"webhooks": map[string]any{"url": hook.URL, "message": map[string]bool{"sent": true}},
	}); r.Status != 200 {
		t.Fatalf("PATCH settings = %d %s", r.Status, r.Raw)
	}
	return s, tok, hook
}

func sendOne(t *testing.T, s *stack.Stack, tok, to, body string) string {
	t.Helper()
	return sendTexts(t, s, tok, to, body, 1)[0]
}

func awaitMessage(t *testing.T, p *stack.Phone, id string) waphone.Event {
	t.Helper()
	return p.WaitFor(30*time.Second, "message "+id, func(e waphone.Event) bool { return e.Event == "message" && e.ID == id })
}

// systemMessages returns the user_identity_changed messages the webhook got.
func identityChanges(ps []stack.Payload) []string {
	var out []string
	for _, p := range ps {
		for _, m := range p.Messages {
			if m.Type == "system" {
				out = append(out, m.From)
			}
		}
	}
	return out
}

// TestIdentityChange: a customer reinstalls (new key, new identity). The
// business's next message cannot be decrypted on the new install; after the
// retry receipts the business rebuilds the session from the new bundle,
// trusts the new identity, tells the webhook (user_identity_changed), and
// the message arrives once. The customer's reply arrives too.
func TestIdentityChange(t *testing.T) {
	s, tok, hook := encStack(t, stack.Options{})
	const kerry = "15551234567"
	phone := s.NewPhone(kerry, "Kerry")
	phone.OpenWindow(bizWaID)
	awaitMessage(t, phone, sendOne(t, s, tok, kerry, "before the reinstall"))
	phone.Stop()

	reinstalled := s.OpenPhone(filepath.Join(t.TempDir(), "new-install"), kerry, "Kerry", true)
	id := sendOne(t, s, tok, kerry, "after the reinstall")
	got := awaitMessage(t, reinstalled, id)
	if !strings.HasPrefix(got.Text, "after the reinstall") {
		t.Errorf("text = %q", got.Text)
	}
	ps := hook.Wait(30*time.Second, "user_identity_changed", func(ps []stack.Payload) bool { return len(identityChanges(ps)) > 0 })
	if ch := identityChanges(ps); ch[0] != kerry {
		t.Errorf("identity change reported for %v, want %s", ch, kerry)
	}
	for _, p := range ps {
		for _, m := range p.Messages {
			if m.Type == "system" && (m.System == nil || m.System.Type != "user_identity_changed" || m.System.Customer != kerry || m.System.Identity == "") {
				t.Errorf("system message = %s, want user_identity_changed for %s with the new identity", mustJSON(t, m), kerry)
			}
		}
	}
	reply := reinstalled.Text(bizWaID, "reply from the new install")
	hook.Wait(30*time.Second, "the reply", func(ps []stack.Payload) bool { return stack.InboundIDs(ps)[reply] > 0 })
	reinstalled.Messages() // each shown once
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRetryReceiptRebuildsSession: the phone loses its session with the
// business (its identity stays). It answers the next message with retry
// receipts; the business re-encrypts, then rebuilds the session from a new
// bundle, and the message arrives once, with no identity change reported.
func TestRetryReceiptRebuildsSession(t *testing.T) {
	s, tok, hook := encStack(t, stack.Options{})
	const kerry = "15551234567"
	phone := s.NewPhone(kerry, "Kerry")
	phone.OpenWindow(bizWaID)
	awaitMessage(t, phone, sendOne(t, s, tok, kerry, "first"))
	phone.Stop()

	// Drop the phone's sessions from its key file.
	path := filepath.Join(phone.Home, "signal.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var state map[string]json.RawMessage
	if err := json.Unmarshal(raw, &state); err != nil {
		t.Fatal(err)
	}
	var store map[string]json.RawMessage
	if err := json.Unmarshal(state["store"], &store); err != nil {
		t.Fatal(err)
	}
	store["sessions"] = json.RawMessage(`{}`)
	state["store"] = mustJSON(t, store)
	if err := os.WriteFile(path, mustJSON(t, state), 0o600); err != nil {
		t.Fatal(err)
	}
	// And from the journal of what changed since (waphone's keys are a
	// snapshot and a journal): each line's written sessions.
	jpath := filepath.Join(phone.Home, "signal.journal")
	if jraw, err := os.ReadFile(jpath); err == nil {
		var out []byte
		for _, line := range bytes.Split(bytes.TrimSpace(jraw), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var entry map[string]json.RawMessage
			if err := json.Unmarshal(line, &entry); err != nil {
				t.Fatalf("journal line %s: %v", line, err)
			}
			var st map[string]json.RawMessage
			if err := json.Unmarshal(entry["store"], &st); err != nil {
				t.Fatal(err)
			}
			delete(st, "sessions")
			entry["store"] = mustJSON(t, st)
			out = append(append(out, mustJSON(t, entry)...), '\n')
		}
		if err := os.WriteFile(jpath, out, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	phone = s.OpenPhone(phone.Home, kerry, "Kerry", false)
	id := sendOne(t, s, tok, kerry, "after losing the session")
	if got := awaitMessage(t, phone, id); !strings.HasPrefix(got.Text, "after losing the session") {
		t.Errorf("text = %q", got.Text)
	}
	next := sendOne(t, s, tok, kerry, "on the rebuilt session")
	awaitMessage(t, phone, next)
	phone.Messages()
	if ch := identityChanges(hook.Payloads()); len(ch) != 0 {
		t.Errorf("identity change reported for %v, want none (same identity)", ch)
	}
	if !strings.Contains(s.Coreapp.Log(), "encrypting messages again") {
		t.Error("coreapp did not log answering the retry receipts")
	}
}

// TestPrivacy sends a unique marker both ways and checks that it appears
// nowhere the network can see: chatd's database, chatd's log, and every byte
// that crossed chatd's ports (relayed through recording proxies).
func TestPrivacy(t *testing.T) {
	s, tok, hook := encStack(t, stack.Options{ProxyChat: true})
	var mu sync.Mutex
	var wireBytes bytes.Buffer
	record := func(up bool, b []byte) {
		mu.Lock()
		wireBytes.Write(b)
		mu.Unlock()
	}
	s.Proxy.Record(record)
	phoneProxy := stack.NewProxy(t, s.ChatAddrs()[0])
	phoneProxy.Record(record)

	marker := "MARKER-" + rand.Text()
	const kerry = "15551234567"
	phone := s.OpenPhoneVia(filepath.Join(t.TempDir(), "kerry"), kerry, "Kerry", true, []string{phoneProxy.Addr()})
	in := phone.Text(bizWaID, "inbound "+marker)
	ps := hook.Wait(30*time.Second, "the marked message", func(ps []stack.Payload) bool { return stack.InboundIDs(ps)[in] > 0 })
	if !strings.Contains(string(mustJSON(t, ps)), marker) {
		t.Fatal("the business did not get the marker: the test would prove nothing")
	}
	out := sendOne(t, s, tok, kerry, "reply "+marker)
	if got := awaitMessage(t, phone, out); !strings.Contains(got.Text, marker) {
		t.Fatal("the phone did not get the marker")
	}

	mu.Lock()
	crossed := wireBytes.Bytes()
	mu.Unlock()
	if len(crossed) < 1000 {
		t.Fatalf("only %d bytes recorded: the proxies saw no traffic", len(crossed))
	}
	if bytes.Contains(crossed, []byte(marker)) {
		t.Error("the marker crossed chatd's ports in the clear")
	}
	if strings.Contains(s.Chatd.Log(), marker) {
		t.Error("the marker is in chatd's log")
	}
	for _, p := range []*stack.Proc{s.Coreapp, s.Webapp} {
		if strings.Contains(p.Log(), marker) {
			t.Errorf("a message body is in %s's log", p.Name)
		}
	}
	dump := dumpDatabase(t, s.ChatDB)
	if len(dump) == 0 {
		t.Fatal("empty chatd database dump")
	}
	if bytes.Contains(dump, []byte(marker)) {
		t.Error("the marker is in chatd's database")
	}
}

// dumpDatabase returns every value of every table of a database.
func dumpDatabase(t *testing.T, name string) []byte {
	t.Helper()
	d := dbtest.Open(t, name)
	q, args := "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", []any{name}
	if db.IsSQLite(d) {
		q, args = "SELECT name FROM sqlite_master WHERE type = 'table'", nil
	}
	tables, err := d.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for tables.Next() {
		var n string
		tables.Scan(&n)
		names = append(names, n)
	}
	tables.Close()
	var out bytes.Buffer
	for _, n := range names {
		rows, err := d.Query("SELECT * FROM `" + n + "`")
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				fmt.Fprintf(&out, "%s|", v)
			}
		}
		rows.Close()
	}
	return out.Bytes()
}

// TestKillDuringBurst kills coreapp while sends are in flight: every send
// the API accepted reaches the phone exactly once after the restart, and
// the session still works both ways.
func TestKillDuringBurst(t *testing.T) {
	s, tok, hook := encStack(t, stack.Options{})
	const kerry = "15551234567"
	phone := s.NewPhone(kerry, "Kerry")
	phone.OpenWindow(bizWaID)
	awaitMessage(t, phone, sendOne(t, s, tok, kerry, "warm-up"))

	var mu sync.Mutex
	var accepted []string
	var wg sync.WaitGroup
	killed := make(chan struct{})
	var once sync.Once
	for w := range 6 {
		wg.Go(func() {
			for i := range 15 {
				r := s.TryDo("POST", "/v1/messages", bearer(tok), map[string]any{"to": kerry, "text": map[string]any{"body": fmt.Sprintf("burst %d-%d", w, i)}})
				if r.Status == 201 {
					mu.Lock()
					accepted = append(accepted, r.Body["messages"].([]any)[0].(map[string]any)["id"].(string))
					n := len(accepted)
					mu.Unlock()
					if n == 30 {
						once.Do(func() { s.KillCoreapp(); close(killed) })
					}
				}
			}
		})
	}
	wg.Wait()
	<-killed
	s.RestartCoreapp()
	s.WaitHealth(tok, "connected", 30*time.Second)
	phone.WaitCount(60*time.Second, "accepted messages", len(accepted), func(e waphone.Event) bool {
		return e.Event == "message" && slices.Contains(accepted, e.ID)
	})
	after := sendOne(t, s, tok, kerry, "after the kill")
	awaitMessage(t, phone, after)
	reply := phone.Text(bizWaID, "still readable")
	hook.Wait(30*time.Second, "the reply", func(ps []stack.Payload) bool { return stack.InboundIDs(ps)[reply] > 0 })
	phone.Messages() // fails on a message shown twice
}
