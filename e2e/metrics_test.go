package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/e2e/stack"
)

// scrape is one Prometheus text page: "name{labels}" → value, and the
// metric families it names.
type scrape struct {
	values   map[string]float64
	families map[string]bool
}

func parseScrape(t *testing.T, b []byte) scrape {
	t.Helper()
	s := scrape{values: map[string]float64{}, families: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE ") {
			s.families[strings.Fields(line)[2]] = true
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape line %q: %v", line, err)
		}
		s.values[line[:i]] = v
	}
	return s
}

// sum adds the samples of name whose labels contain every label="value".
func (s scrape) sum(name string, labels ...string) float64 {
	total := 0.0
	for k, v := range s.values {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(k, l)
		}
		if ok {
			total += v
		}
	}
	return total
}

func getMetrics(t *testing.T, c *http.Client, url string, auth map[string]string) scrape {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range auth {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET %s = %d %s", url, resp.StatusCode, buf.Bytes())
	}
	return parseScrape(t, buf.Bytes())
}

// TestMetrics: the webapp, coreapp and chatd serve Prometheus metrics;
// after an end-to-end flow the counters moved by the right amounts, and
// every metric the Grafana dashboard queries is exported by the stack.
func TestMetrics(t *testing.T) {
	s, tok, hook := encStack(t, stack.Options{})
	phone := s.NewPhone("15551230011", "Rae")
	phone.OpenWindow(bizWaID)
	monitor := map[string]string{"Authorization": "Apikey monitoring-key-0123456789"}
	core := fmt.Sprintf("http://127.0.0.1:%d/metrics", s.Cores[0].MetricsPort)
	chatd := "http://" + s.AdminAddr() + "/metrics"
	web := s.URL + "/metrics"
	before := [3]scrape{getMetrics(t, s.Client, web, monitor), getMetrics(t, s.Client, core, nil), getMetrics(t, s.Client, chatd, nil)}

	ids := sendTexts(t, s, tok, phone.Number(), "metered", 3)
	for _, id := range ids {
		awaitMessage(t, phone, id)
		hook.Wait(30*time.Second, "delivered "+id, func(ps []stack.Payload) bool { return statusOf(ps, id, "delivered") != nil })
	}
	after := [3]scrape{getMetrics(t, s.Client, web, monitor), getMetrics(t, s.Client, core, nil), getMetrics(t, s.Client, chatd, nil)}
	delta := func(i int, name string, labels ...string) float64 {
		return after[i].sum(name, labels...) - before[i].sum(name, labels...)
	}
	if d := delta(0, "openwaba_http_requests_total", `route="/v1/messages"`, `method="POST"`, `code="201"`); d != 3 {
		t.Errorf("webapp counted %v sends, want 3", d)
	}
	if d := delta(1, "openwaba_messages_accepted_total", `type="text"`); d != 3 {
		t.Errorf("coreapp counted %v accepted texts, want 3", d)
	}
	if d := delta(1, "openwaba_message_statuses_total", `status="delivered"`, `type="text"`); d != 3 {
		t.Errorf("coreapp counted %v delivered statuses, want 3", d)
	}
	if d := delta(1, "openwaba_webhook_posts_total", `result="success"`); d < 1 {
		t.Errorf("coreapp counted %v successful webhook POSTs, want some", d)
	}
	if d := delta(1, "openwaba_grpc_requests_total", `method="/core.v1.Core/SendMessage"`, `code="OK"`); d != 3 {
		t.Errorf("coreapp counted %v SendMessage calls, want 3", d)
	}
	if d := delta(2, "chatd_stanzas_total", `kind="message"`); d < 3 {
		t.Errorf("chatd counted %v messages, want at least 3", d)
	}
	if v := after[1].sum("openwaba_slots_connected"); v != 1 {
		t.Errorf("slots connected = %v, want 1", v)
	}
	if v := after[1].sum("openwaba_primary_master"); v != 1 {
		t.Errorf("primary master = %v, want 1", v)
	}

	// The dashboard names only metrics the stack exports.
	b, err := os.ReadFile(stack.RepoRoot(t) + "/deploy/grafana/openwaba.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`\b(openwaba|chatd)_[a-z0-9_]+`)
	queried := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				queried++
				fam := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if !after[0].families[fam] && !after[1].families[fam] && !after[2].families[fam] {
					t.Errorf("panel %q queries %s, which no process exports", p.Title, m)
				}
			}
		}
	}
	if queried == 0 {
		t.Fatal("the dashboard queries no metric")
	}
}
