package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/e2e/stack"
)

// The tests of issue 15 over real processes: webhook endpoints, the
// delivery log, dead deliveries and replay (docs/webhooks.md).

// deadAfter is the dead age the test's coreapp runs with
// (WA_WEBHOOK_DEAD_AFTER): long enough for the failing endpoint B to
// recover across a coreapp restart on a loaded machine, short enough for
// C's deliveries to die within the test.
const deadAfter = 30 * time.Second

// verifyStandard checks a Standard Webhooks signature with the receiver's
// own code (not api/webhooksign): v1,base64(HMAC-SHA256(key,
// id.timestamp.body)), where key is the base64 after whsec_. It reports
// whether any of the header's signatures is secret's.
func verifyStandard(secret string, p stack.Post) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return fmt.Errorf("secret %q: %v", secret, err)
	}
	id, ts := p.Header.Get("webhook-id"), p.Header.Get("webhook-timestamp")
	if id == "" || ts == "" {
		return fmt.Errorf("webhook-id %q, webhook-timestamp %q", id, ts)
	}
	var sec int64
	if _, err := fmt.Sscan(ts, &sec); err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("webhook-timestamp %q is not now", ts)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, p.Body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(p.Header.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("webhook-signature %q has no signature of this secret", p.Header.Get("webhook-signature"))
}

// verifyHub checks X-Hub-Signature-256 as a Cloud receiver does.
func verifyHub(secret string, p stack.Post) error {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(p.Body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := p.Header.Get("X-Hub-Signature-256"); !hmac.Equal([]byte(got), []byte(want)) {
		return fmt.Errorf("X-Hub-Signature-256 %q, want %q", got, want)
	}
	return nil
}

// cloudMessageIDs lists the message ids of a Cloud-envelope body.
func cloudMessageIDs(t *testing.T, body []byte) []string {
	var env struct {
		Entry []struct {
			Changes []struct {
				Value struct {
					Messages []struct {
						ID string `json:"id"`
					} `json:"messages"`
				} `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("cloud webhook body: %v: %s", err, body)
	}
	var ids []string
	for _, e := range env.Entry {
		for _, c := range e.Changes {
			for _, m := range c.Value.Messages {
				ids = append(ids, m.ID)
			}
		}
	}
	return ids
}

type delivery struct {
	ID         string `json:"id"`
	EventID    string `json:"event_id"`
	EndpointID string `json:"endpoint_id"`
	Event      string `json:"event"`
	MessageID  string `json:"message_id"`
	Status     string `json:"status"`
	Attempts   []struct {
		N          int    `json:"n"`
		URL        string `json:"url"`
		HTTPStatus int    `json:"http_status"`
		Response   string `json:"response"`
		Error      string `json:"error"`
	} `json:"attempts"`
}

// deliveries reads every page of the log for query.
func deliveries(t *testing.T, s *stack.Stack, tok, query string) []delivery {
	t.Helper()
	var out []delivery
	path := "/v1/webhooks/deliveries?limit=7&" + query
	for page := 0; path != ""; page++ {
		r := s.Do("GET", path, bearer(tok), nil)
		if r.Status != 200 || page > 100 {
			t.Fatalf("GET %s = %d %s", path, r.Status, r.Raw)
		}
		var body struct {
			Deliveries []delivery `json:"deliveries"`
			Paging     *struct {
				Next string `json:"next"`
			} `json:"paging"`
		}
		if err := json.Unmarshal(r.Raw, &body); err != nil {
			t.Fatal(err)
		}
		out = append(out, body.Deliveries...)
		path = ""
		if body.Paging != nil {
			path = body.Paging.Next
		}
	}
	return out
}

// waitDeliveries polls the log until cond holds for query's deliveries.
func waitDeliveries(t *testing.T, s *stack.Stack, tok, query string, within time.Duration, what string, cond func([]delivery) bool) []delivery {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ds := deliveries(t, s, tok, query)
		if cond(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s: %+v", what, within, ds)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestWebhookEndpointsAndLog: a number feeds its first endpoint A (fast),
// a signed endpoint B that fails for a while and a Cloud-format endpoint C
// that fails until its deliveries die. A is not delayed by B; B gets every
// event once it recovers, across a coreapp killed while its deliveries are
// pending, with the webhook-ids of the failed POSTs; C's dead deliveries
// are replayed one and then by range; every POST verifies.
func TestWebhookEndpointsAndLog(t *testing.T) {
	s := stack.New(t, stack.Options{CoreEnv: map[string]string{"WA_WEBHOOK_DEAD_AFTER": deadAfter.String()}})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	hookA, hookB, hookC := stack.NewWebhook(t), stack.NewWebhook(t), stack.NewWebhook(t)
	if r := s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{
		"webhooks":                  map[string]any{"url": hookA.URL},
		"callback_backoff_delay_ms": 100, "max_callback_backoff_delay_ms": 500,
	}); r.Status != 200 {
		t.Fatalf("PATCH settings = %d %s", r.Status, r.Raw)
	}
	create := func(body map[string]any) map[string]any {
		t.Helper()
		r := s.Do("POST", "/v1/webhooks/endpoints", bearer(tok), body)
		if r.Status != 201 {
			t.Fatalf("POST /v1/webhooks/endpoints = %d %s", r.Status, r.Raw)
		}
		return r.Body["endpoints"].([]any)[0].(map[string]any)
	}
	b := create(map[string]any{"url": hookB.URL, "events": []string{"messages"}, "signed": true, "headers": map[string]string{"X-Tenant": "b"}})
	c := create(map[string]any{"url": hookC.URL, "events": []string{"messages"}, "format": "cloud"})
	bID, bSecret, cID, cSecret := b["id"].(string), b["secret"].(string), c["id"].(string), c["secret"].(string)
	if !strings.HasPrefix(bSecret, "whsec_") || !strings.HasPrefix(cSecret, "whsec_") || c["signed"] != true {
		t.Fatalf("created endpoints %v and %v: want signed with whsec_ secrets", b, c)
	}
	r := s.Do("GET", "/v1/webhooks/endpoints", bearer(tok), nil)
	var list struct {
		Endpoints []struct {
			ID, URL, Secret string
			Default         bool
		}
	}
	json.Unmarshal(r.Raw, &list)
	if r.Status != 200 || len(list.Endpoints) != 3 || !list.Endpoints[0].Default || list.Endpoints[0].URL != hookA.URL || list.Endpoints[1].ID != bID {
		t.Fatalf("GET /v1/webhooks/endpoints = %d %s", r.Status, r.Raw)
	}
	for _, e := range list.Endpoints {
		if e.Secret != "" {
			t.Errorf("the list shows endpoint %s's secret", e.ID)
		}
	}

	d := create(map[string]any{"url": hookB.URL, "events": []string{"templates"}}) // unsigned
	dID := d["id"].(string)
	for _, tt := range []struct {
		method, path string
		body         any
		status, code int
	}{
		{"PATCH", "/v1/webhooks/endpoints/" + dID, map[string]any{"format": "cloud"}, 400, 1009},
		{"POST", "/v1/webhooks/endpoints/" + dID + "/secret", map[string]any{"grace_seconds": 18446744074}, 400, 1009},
		{"POST", "/v1/webhooks/endpoints", map[string]any{"url": hookB.URL, "events": []string{"statuses.seen"}}, 400, 1009},
		{"POST", "/v1/webhooks/endpoints", map[string]any{"url": hookB.URL, "secret": "not-a-secret"}, 400, 1009},
		{"POST", "/v1/webhooks/endpoints", map[string]any{"url": "http://hooks.example.com/wa"}, 400, 1009},
		{"POST", "/v1/webhooks/endpoints", map[string]any{"url": hookB.URL, "format": "xml"}, 400, 1009},
		{"PATCH", "/v1/webhooks/endpoints/0", map[string]any{"url": hookB.URL}, 400, 1009},
		{"DELETE", "/v1/webhooks/endpoints/0", nil, 400, 1009},
		{"GET", "/v1/webhooks/endpoints/9999", nil, 404, 1006},
		{"POST", "/v1/webhooks/endpoints/" + cID + "/secret", map[string]any{"grace_seconds": 8 * 86400}, 400, 1009},
		{"DELETE", "/v1/webhooks/endpoints/" + cID + "/secret", nil, 400, 1009},
		{"GET", "/v1/webhooks/deliveries?status=lost", nil, 400, 1009},
		{"POST", "/v1/webhooks/deliveries/999999/replay", nil, 404, 1006},
	} {
		if r := s.Do(tt.method, tt.path, bearer(tok), tt.body); r.Status != tt.status || r.ErrorCode() != tt.code {
			t.Errorf("%s %s %v = %d %s, want %d with error %d", tt.method, tt.path, tt.body, r.Status, r.Raw, tt.status, tt.code)
		}
	}

	if r := s.Do("DELETE", "/v1/webhooks/endpoints/"+dID, bearer(tok), nil); r.Status != 200 {
		t.Fatalf("DELETE endpoint = %d %s", r.Status, r.Raw)
	}

	hookB.SetFailing(true)
	hookC.SetFailing(true)
	phone := s.NewPhone("15551234567", "Kerry")
	sent := map[string]time.Time{}
	var ids []string
	for i := range 10 {
		id := phone.Text(bizWaID, fmt.Sprintf("fan-out %d", i))
		ids, sent[id] = append(ids, id), time.Now()
	}
	// A gets every message promptly while B and C fail.
	hookA.Wait(20*time.Second, "every message at A", func(ps []stack.Payload) bool {
		got := stack.InboundIDs(ps)
		return !slices.ContainsFunc(ids, func(id string) bool { return got[id] == 0 })
	})
	var worst time.Duration
	for _, p := range hookA.Posts() {
		var pl stack.Payload
		json.Unmarshal(p.Body, &pl)
		for _, m := range pl.Messages {
			if at, ok := sent[m.ID]; ok && p.At.Sub(at) > worst {
				worst = p.At.Sub(at)
			}
		}
	}
	t.Logf("first endpoint: slowest message %s after the phone sent it, while B and C failed", worst.Round(time.Millisecond))
	if worst > 3*time.Second {
		t.Errorf("the first endpoint got a message %s after it was sent: a failing endpoint delays it", worst)
	}

	// B's log shows its failing deliveries with their attempts.
	waitDeliveries(t, s, tok, "endpoint_id="+bID+"&status=failing", 20*time.Second, "failing deliveries of B", func(ds []delivery) bool {
		if len(ds) != len(ids) {
			return false
		}
		for _, d := range ds {
			if len(d.Attempts) == 0 || d.Attempts[0].HTTPStatus != 503 || d.Attempts[0].URL != hookB.URL || !strings.HasPrefix(d.Attempts[0].Response, "failing on purpose") || d.Event != "messages" {
				return false
			}
		}
		return true
	})
	if ds := deliveries(t, s, tok, "message_id="+ids[3]); len(ds) != 3 {
		t.Errorf("deliveries of message %s = %+v, want one per endpoint", ids[3], ds)
	}

	// Kill coreapp with B's deliveries pending; B recovers with the restart.
	s.KillCoreapp()
	hookB.SetFailing(false)
	s.RestartCoreapp()
	s.WaitHealth(tok, "connected", 30*time.Second)
	// A claim held by the killed node expires after 30 s.
	hookB.Wait(90*time.Second, "every message at B", func(ps []stack.Payload) bool {
		got := stack.InboundIDs(ps)
		return !slices.ContainsFunc(ids, func(id string) bool { return got[id] == 0 })
	})
	// webhook-id is the POST's idempotency key: a POST that failed and was
	// retried carries the same events under it, and no event arrives under
	// two ids. (A POST pinned just before the kill may never have been
	// seen failing.)
	messagesOf := func(p stack.Post) string {
		var pl stack.Payload
		json.Unmarshal(p.Body, &pl)
		var ms []string
		for _, m := range pl.Messages {
			ms = append(ms, m.ID)
		}
		slices.Sort(ms)
		return strings.Join(ms, ",")
	}
	failedSets := map[string]string{}
	acceptedUnder := map[string]string{}
	for _, p := range hookB.Posts() {
		if err := verifyStandard(bSecret, p); err != nil {
			t.Errorf("B: POST %s does not verify: %v", p.Header.Get("webhook-id"), err)
		}
		if p.Header.Get("X-Tenant") != "b" {
			t.Errorf("B: POST without its X-Tenant header: %v", p.Header)
		}
		id, set := p.Header.Get("webhook-id"), messagesOf(p)
		if !p.Accepted {
			if prev, ok := failedSets[id]; ok && prev != set {
				t.Errorf("B: webhook-id %s carried %s, then %s", id, prev, set)
			}
			failedSets[id] = set
			continue
		}
		if prev, ok := failedSets[id]; ok && prev != set {
			t.Errorf("B: webhook-id %s failed with %s and was accepted with %s", id, prev, set)
		}
		for _, m := range strings.Split(set, ",") {
			if prev, ok := acceptedUnder[m]; ok && prev != id {
				t.Errorf("B: message %s accepted under webhook-ids %s and %s", m, prev, id)
			}
			acceptedUnder[m] = id
		}
	}
	bLog := waitDeliveries(t, s, tok, "endpoint_id="+bID, 10*time.Second, "B delivered", func(ds []delivery) bool {
		return !slices.ContainsFunc(ds, func(d delivery) bool { return d.Status != "delivered" })
	})
	for _, d := range bLog {
		last := d.Attempts[len(d.Attempts)-1]
		if len(d.Attempts) < 2 || last.HTTPStatus != 200 || d.Attempts[0].HTTPStatus != 503 {
			t.Errorf("B delivery %s log %+v: want failed attempts then a 200", d.ID, d.Attempts)
		}
		for i, a := range d.Attempts {
			if a.N != d.Attempts[0].N+i {
				t.Errorf("B delivery %s: attempt numbers %+v are not consecutive", d.ID, d.Attempts)
				break
			}
		}
	}
	aLog := deliveries(t, s, tok, "endpoint_id=0&event=messages")
	if len(aLog) < len(ids) || slices.ContainsFunc(aLog, func(d delivery) bool { return d.Status != "delivered" }) {
		t.Errorf("A's log across the restart: %+v, want every message delivered", aLog)
	}

	// Rotation: the next POST carries the new and the old signature.
	r = s.Do("POST", "/v1/webhooks/endpoints/"+bID+"/secret", bearer(tok), map[string]any{"grace_seconds": 3600})
	if r.Status != 200 {
		t.Fatalf("rotate = %d %s", r.Status, r.Raw)
	}
	rotated := r.Body["endpoints"].([]any)[0].(map[string]any)
	newSecret, _ := rotated["secret"].(string)
	if newSecret == "" || newSecret == bSecret || rotated["previous_secret_expires_at"] == nil {
		t.Fatalf("rotation answer %v", rotated)
	}
	afterSent := time.Now()
	after := phone.Text(bizWaID, "after the rotation")
	hookB.Wait(20*time.Second, "the message after the rotation", func(ps []stack.Payload) bool { return stack.InboundIDs(ps)[after] > 0 })
	carried := 0
	for _, p := range hookB.Posts() {
		if !slices.Contains(strings.Split(messagesOf(p), ","), after) {
			continue
		}
		carried++
		if err := verifyStandard(newSecret, p); err != nil {
			t.Errorf("after rotation, the new secret does not verify: %v", err)
		}
		if err := verifyStandard(bSecret, p); err != nil {
			t.Errorf("after rotation, the old secret does not verify within its grace: %v", err)
		}
	}

	if carried == 0 {
		t.Error("no POST to B carried the message after the rotation")
	}

	// C: dead after the age limit, counted in health, then replayed.
	// (The message after the rotation goes to C too; it may be dead by now
	// or not.)
	dead := waitDeliveries(t, s, tok, "endpoint_id="+cID+"&status=dead", deadAfter+45*time.Second, "dead deliveries of C", func(ds []delivery) bool {
		return !slices.ContainsFunc(ids, func(id string) bool { return eventOf(ds, id) == "?" })
	})
	if len(dead) > len(ids)+1 {
		t.Errorf("C has %d dead deliveries, want one per message", len(dead))
	}
	r = s.Do("GET", "/v1/health", bearer(tok), nil)
	if w, _ := r.Body["webhooks"].(map[string]any); w == nil || w["dead"] == nil || w["dead"].(float64) < float64(len(ids)) {
		t.Errorf("health = %s, want webhooks.dead ≥ %d", r.Raw, len(ids))
	}
	hookC.SetFailing(false)
	one := dead[len(dead)-1] // the oldest
	if r := s.Do("POST", "/v1/webhooks/deliveries/"+one.ID+"/replay", bearer(tok), nil); r.Status != 200 || r.Body["replayed"] != 1.0 {
		t.Fatalf("replay one = %d %s", r.Status, r.Raw)
	}
	cAccepted := func() map[string]int {
		got := map[string]int{}
		for _, p := range hookC.Posts() {
			if p.Accepted {
				for _, id := range cloudMessageIDs(t, p.Body) {
					got[id]++
				}
			}
		}
		return got
	}
	deadline := time.Now().Add(20 * time.Second)
	for cAccepted()[one.MessageID] == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	// The message after the rotation was not dead yet: it arrives too.
	got := cAccepted()
	for _, id := range ids {
		if n := got[id]; n != 0 && id != one.MessageID || id == one.MessageID && n != 1 {
			t.Fatalf("C after replaying %s got %v", one.MessageID, got)
		}
	}
	r = s.Do("POST", "/v1/webhooks/deliveries/replay", bearer(tok), map[string]any{
		"status": "dead", "endpoint_id": cID, "since": time.Now().Add(-10 * time.Minute).Unix(), "until": afterSent.Format(time.RFC3339Nano),
	})
	if r.Status != 200 || r.Body["replayed"] != float64(len(ids)-1) {
		t.Fatalf("replay the range = %d %s, want %d replayed", r.Status, r.Raw, len(ids)-1)
	}
	// The message after the rotation, if it died meanwhile, by its id.
	if r := s.Do("POST", "/v1/webhooks/deliveries/replay", bearer(tok), map[string]any{"status": "dead", "message_id": after}); r.Status != 200 || r.Body["replayed"].(float64) > 1 {
		t.Fatalf("replay by message id = %d %s", r.Status, r.Raw)
	}
	cLog := waitDeliveries(t, s, tok, "endpoint_id="+cID, 20*time.Second, "C delivered", func(ds []delivery) bool {
		return !slices.ContainsFunc(ds, func(d delivery) bool { return d.Status != "delivered" })
	})
	got = cAccepted()
	for _, id := range append(ids, after) {
		if got[id] != 1 {
			t.Errorf("C got message %s %d times after the replays, want once", id, got[id])
		}
	}
	for _, p := range hookC.Posts() {
		if err := verifyHub(cSecret, p); err != nil {
			t.Errorf("C: %v", err)
		}
		if err := verifyStandard(cSecret, p); err != nil {
			t.Errorf("C: %v", err)
		}
		if ids := cloudMessageIDs(t, p.Body); len(ids) != 1 {
			t.Errorf("C: a Cloud POST carries %d messages, want one", len(ids))
		}
		if id := p.Header.Get("webhook-id"); p.Accepted && id != "evt_"+eventOf(cLog, cloudMessageIDs(t, p.Body)[0]) {
			t.Errorf("C: replayed POST has webhook-id %s, want the event's", id)
		}
	}

	// Delete C: its deliveries go with it.
	if r := s.Do("DELETE", "/v1/webhooks/endpoints/"+cID, bearer(tok), nil); r.Status != 200 {
		t.Fatalf("DELETE endpoint = %d %s", r.Status, r.Raw)
	}
	if r := s.Do("GET", "/v1/webhooks/endpoints/"+cID, bearer(tok), nil); r.Status != 404 || r.ErrorCode() != 1006 {
		t.Errorf("GET a deleted endpoint = %d %s", r.Status, r.Raw)
	}
	if ds := deliveries(t, s, tok, "endpoint_id="+cID); len(ds) != 0 {
		t.Errorf("deleted endpoint's deliveries are still listed: %+v", ds)
	}
}

// eventOf is the event id of the delivery of message id.
func eventOf(ds []delivery, id string) string {
	for _, d := range ds {
		if d.MessageID == id {
			return d.EventID
		}
	}
	return "?"
}
