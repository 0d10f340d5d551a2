// Command wabench measures a running openwaba stack end to end.
//
// It logs in, registers the business number if needed, points the webhook at
// its own receiver, registers simulated phones on the sandbox network, then:
//
//   - outbound: sends -messages text messages through POST /v1/messages with
//     -concurrency clients, and measures the API's accept rate and latency
//     and the rate at which the phones receive them;
//   - inbound: the phones send -inbound messages, and it measures the rate at
//     which they reach the webhook;
//   - webhook-fast and webhook-slow (webhooks.go): a backlog drained to a
//     fast receiver once it recovers (POSTs/s), and one to a receiver that
//     takes -webhook-slow-delay per POST (events/s);
//   - media: uploads -media distinct images of -media-size bytes through
//     POST /v1/media, sends each to a phone by id, and measures the upload
//     rate and the rate at which the phones receive, download, verify and
//     decrypt them (messages/s and MB/s);
//
// and reports each process's peak resident memory (VmHWM of the processes
// named by -pids, or found by name). It prints a table, and JSON with -json.
//
// Each phone first writes to the business, as customers do: the network
// takes free-form messages only within 24 hours of the customer's last one.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/db/gcpolicy"
	"github.com/openwaba/openwaba/db/procprofile"
)

func main() {
	// As the stack's binaries (docs/performance.md): the load generator's
	// collections count in the phone's CPU per message.
	gcpolicy.Apply(gcpolicy.Policy{Percent: 400})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile, err := procprofile.Start("wabench") // the client and the phones
	if err != nil {
		fmt.Fprintln(os.Stderr, "wabench: profiling:", err)
		os.Exit(1)
	}
	err = run(ctx, os.Stdout, os.Args[1:])
	stop()
	if perr := stopProfile(); perr != nil {
		fmt.Fprintln(os.Stderr, "wabench: profiling:", perr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wabench:", err)
		os.Exit(1)
	}
}

type options struct {
	api, user, password, newPassword string
	network, admin                   string
	cc, phone                        string
	phones, messages, concurrency    int
	inbound                          int
	media, mediaSize                 int
	hookAddr                         string
	jsonOut                          string
	pids                             string
	timeout                          time.Duration
	mysqlDSN                         string
	rate                             int
	baseline                         bool
	hookEvents, slowEvents           int
	slowDelay                        time.Duration
}

// Result is the JSON report.
type Result struct {
	Messages    int     `json:"messages"`
	Concurrency int     `json:"concurrency"`
	Phones      int     `json:"phones"`
	AcceptedPS  float64 `json:"accepted_per_s"`
	DeliveredPS float64 `json:"delivered_to_phone_per_s"`
	LatencyMS   struct {
		P50 float64 `json:"p50"`
		P95 float64 `json:"p95"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	} `json:"api_latency_ms"`
	Inbound   int     `json:"inbound"`
	InboundPS float64 `json:"inbound_to_webhook_per_s"`
	Media     struct {
		Files        int     `json:"files"`
		FileBytes    int     `json:"file_bytes"`
		UploadMBPS   float64 `json:"upload_mb_per_s"`
		SentPS       float64 `json:"sent_to_network_per_s"`
		DeliveredPS  float64 `json:"delivered_to_phone_per_s"`
		DeliveredMBP float64 `json:"delivered_to_phone_mb_per_s"`
	} `json:"media"`
	PeakRSSMB map[string]int64 `json:"peak_rss_mb"`
	Errors    int64            `json:"errors"`
	// Baseline is the same client against a do-nothing HTTPS JSON endpoint
	// in this run; Ratio is AcceptedPS / Baseline.
	BaselinePS    float64 `json:"baseline_per_s,omitempty"`
	BaselineRatio float64 `json:"accepted_to_baseline,omitempty"`
	// FixedRate is the -rate phase: sends offered at a fixed rate,
	// latency measured from each send's intended time.
	FixedRate *struct {
		Rate       int     `json:"offered_per_s"`
		Messages   int     `json:"messages"`
		AcceptedPS float64 `json:"accepted_per_s"`
		Latency    Latency `json:"latency_ms"`
	} `json:"fixed_rate,omitempty"`
	Webhooks *WebhookResult `json:"webhooks,omitempty"`
	Costs    []Cost         `json:"work_per_message"`
}

func run(ctx context.Context, stdout io.Writer, args []string) error {
	var o options
	fs := flag.NewFlagSet("wabench", flag.ContinueOnError)
	fs.StringVar(&o.api, "api", "https://127.0.0.1:9090", "webapp URL")
	fs.StringVar(&o.user, "user", "admin", "API user")
	fs.StringVar(&o.password, "password", "Bench-Passw0rd!", "API password")
	fs.StringVar(&o.newPassword, "first-login-password", "Bench-Passw0rd!", "password to set if the admin still has the default one")
	fs.StringVar(&o.network, "network", "127.0.0.1:5222,127.0.0.1:5443", "chatd addresses for the phones")
	fs.StringVar(&o.admin, "admin", "127.0.0.1:5280", "chatd sandbox admin address (verification codes)")
	fs.StringVar(&o.cc, "cc", "1", "business number country code")
	fs.StringVar(&o.phone, "phone-number", "5550100", "business number without country code")
	fs.IntVar(&o.phones, "phones", 20, "simulated customer phones")
	fs.IntVar(&o.messages, "messages", 5000, "outbound messages")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent API clients")
	fs.IntVar(&o.inbound, "inbound", 2000, "inbound messages (phones → webhook)")
	fs.IntVar(&o.media, "media", 500, "image messages sent by media id (0: skip the media phase)")
	fs.IntVar(&o.mediaSize, "media-size", 100_000, "bytes per image of the media phase")
	fs.StringVar(&o.hookAddr, "webhook-listen", "127.0.0.1:0", "address of wabench's webhook receiver")
	fs.StringVar(&o.jsonOut, "json", "", "also write the result as JSON to this file (- for stdout)")
	fs.StringVar(&o.pids, "pids", "", "name=pid,… of the processes to report peak RSS for (default: find chatd, coreapp, webapp by name)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	fs.StringVar(&o.mysqlDSN, "mysql-dsn", "", "MySQL DSN to read the server's status counters from (empty: no database counters)")
	fs.IntVar(&o.rate, "rate", 0, "also offer -messages sends at this fixed rate (per second) and measure latency from each send's intended time")
	fs.IntVar(&o.hookEvents, "webhook-events", 30000, "backlog drained to a fast Cloud-envelope webhook endpoint after it recovers (0: skip)")
	fs.IntVar(&o.slowEvents, "webhook-slow-events", 20000, "backlog drained to an on-prem-envelope webhook endpoint whose receiver takes -webhook-slow-delay per POST (0: skip)")
	fs.DurationVar(&o.slowDelay, "webhook-slow-delay", 200*time.Millisecond, "how long the slow receiver takes per POST")
	fs.BoolVar(&o.baseline, "baseline", true, "measure the same client against a do-nothing HTTPS JSON endpoint")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	b := &bench{o: o, client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: o.concurrency * 2, MaxConnsPerHost: o.concurrency * 2}}}
	res, err := b.run(ctx)
	if err != nil {
		return err
	}
	printTable(stdout, res)
	if o.jsonOut != "" {
		j, _ := json.MarshalIndent(res, "", "  ")
		if o.jsonOut == "-" {
			fmt.Fprintln(stdout, string(j))
		} else if err := os.WriteFile(o.jsonOut, append(j, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

type bench struct {
	o      options
	client *http.Client
	meter  *meter
	token  string
	waID   string
	errs   atomic.Int64
	// elapsed is the duration of the last parallel run.
	elapsed time.Duration

	// The webhook receiver records inbound ids and when the last arrived.
	hookMu   sync.Mutex
	hookIn   map[string]bool
	hookSent map[string]time.Time // the first sent, delivered or read status
	hookLast time.Time
}

func (b *bench) run(ctx context.Context) (*Result, error) {
	b.waID = b.o.cc + b.o.phone
	if err := b.login(ctx); err != nil {
		return nil, err
	}
	if err := b.register(ctx); err != nil {
		return nil, err
	}
	hookURL, stopHook, err := b.startWebhook()
	if err != nil {
		return nil, err
	}
	defer stopHook()
	if _, err := b.call(ctx, "PATCH", "/v1/settings/application", map[string]any{"webhooks": map[string]any{"url": hookURL}}, 200); err != nil {
		return nil, err
	}
	phones, stopPhones, err := b.startPhones(ctx)
	if err != nil {
		return nil, err
	}
	defer stopPhones()

	m, err := newMeter(b.o.pids, b.o.mysqlDSN)
	if err != nil {
		return nil, err
	}
	defer m.close()
	b.meter = m
	res := &Result{Messages: b.o.messages, Concurrency: b.o.concurrency, Phones: b.o.phones, Inbound: b.o.inbound}
	phase := func(name string, n int, run func() error) error {
		a := m.snap(ctx)
		if err := run(); err != nil {
			return err
		}
		res.Costs = append(res.Costs, cost(name, n, a, m.snap(ctx)))
		return nil
	}
	if err := phase("outbound", b.o.messages, func() error { return b.outbound(ctx, phones, res) }); err != nil {
		return nil, err
	}
	if b.o.baseline {
		if err := b.baselinePhase(ctx, res); err != nil {
			return nil, err
		}
	}
	if b.o.rate > 0 {
		if err := phase("fixed-rate", b.o.messages, func() error { return b.fixedRate(ctx, phones, res) }); err != nil {
			return nil, err
		}
	}
	if err := phase("inbound", b.o.inbound, func() error { return b.inboundPhase(ctx, phones, res) }); err != nil {
		return nil, err
	}
	if err := phase("webhook-fast", b.o.hookEvents, func() error { return b.webhookFast(ctx, phones, res) }); err != nil {
		return nil, err
	}
	if err := phase("webhook-slow", b.o.slowEvents, func() error { return b.webhookSlow(ctx, phones, res) }); err != nil {
		return nil, err
	}
	if err := phase("media", b.o.media, func() error { return b.mediaPhase(ctx, phones, res) }); err != nil {
		return nil, err
	}
	res.PeakRSSMB = peakRSS(m.procs)
	res.Errors = b.errs.Load()
	return res, nil
}

func (b *bench) request(ctx context.Context, method, path string, body any, basic bool) (int, []byte, error) {
	return b.requestTo(ctx, b.o.api, method, path, body, basic)
}

func (b *bench) requestTo(ctx context.Context, base, method, path string, body any, basic bool) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if basic {
		req.SetBasicAuth(b.o.user, b.o.password)
	} else if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func (b *bench) call(ctx context.Context, method, path string, body any, want ...int) (map[string]any, error) {
	code, raw, err := b.request(ctx, method, path, body, false)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if !slices.Contains(want, code) {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, code, raw)
	}
	var out map[string]any
	json.Unmarshal(raw, &out)
	return out, nil
}

func (b *bench) login(ctx context.Context) error {
	code, raw, err := b.request(ctx, "POST", "/v1/users/login", nil, true)
	if err != nil {
		return fmt.Errorf("login at %s: %w", b.o.api, err)
	}
	if code != 200 { // maybe the first login: change the default password
		saved := b.o.password
		b.o.password = "secret"
		code, raw, err = b.request(ctx, "POST", "/v1/users/login", map[string]string{"new_password": b.o.newPassword}, true)
		b.o.password = saved
		if err != nil {
			return err
		}
	}
	if code != 200 {
		return fmt.Errorf("login: %d %s", code, raw)
	}
	var body struct {
		Users []struct{ Token string } `json:"users"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || len(body.Users) == 0 {
		return fmt.Errorf("login: unexpected answer %s", raw)
	}
	b.token = body.Users[0].Token
	return nil
}

func (b *bench) register(ctx context.Context) error {
	h, err := b.call(ctx, "GET", "/v1/health", nil, 200)
	if err != nil {
		return err
	}
	if h["health"].(map[string]any)["gateway_status"] == "connected" {
		return nil
	}
	out, err := b.call(ctx, "POST", "/v1/account", map[string]string{"cc": b.o.cc, "phone_number": b.o.phone, "method": "sms",
		"cert": base64.StdEncoding.EncodeToString([]byte("wabench"))}, 201, 202)
	if err != nil {
		return err
	}
	if _, sent := out["account"]; sent {
		code, err := waphone.SandboxCode(ctx, b.o.admin, b.waID)
		if err != nil {
			return err
		}
		if _, err := b.call(ctx, "POST", "/v1/account/verify", map[string]string{"code": code}, 201); err != nil {
			return err
		}
	}
	for {
		h, err := b.call(ctx, "GET", "/v1/health", nil, 200)
		if err != nil {
			return err
		}
		if h["health"].(map[string]any)["gateway_status"] == "connected" {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("the business number did not connect")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (b *bench) startWebhook() (string, func(), error) {
	ln, err := net.Listen("tcp", b.o.hookAddr)
	if err != nil {
		return "", nil, err
	}
	b.hookIn, b.hookSent = map[string]bool{}, map[string]time.Time{}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Messages []struct {
				ID string `json:"id"`
			} `json:"messages"`
			Statuses []struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			} `json:"statuses"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&p); err != nil {
			http.Error(w, "bad json", 400)
			return
		}
		if len(p.Statuses) > 0 {
			now := time.Now()
			b.hookMu.Lock()
			for _, st := range p.Statuses {
				// A delivered status can overtake sent (then sent is not
				// reported): either means chatd has the message.
				if _, seen := b.hookSent[st.ID]; !seen && st.Status != "failed" {
					b.hookSent[st.ID] = now
				}
			}
			b.hookMu.Unlock()
		}
		if len(p.Messages) > 0 {
			b.hookMu.Lock()
			for _, m := range p.Messages {
				b.hookIn[m.ID] = true
			}
			b.hookLast = time.Now()
			b.hookMu.Unlock()
		}
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { srv.Close(); <-done }, nil
}

type phone struct {
	*waphone.Phone
	mu       sync.Mutex
	received map[string]time.Time
}

func (b *bench) startPhones(ctx context.Context) ([]*phone, func(), error) {
	dir, err := os.MkdirTemp("", "wabench-phones-")
	if err != nil {
		return nil, nil, err
	}
	network := strings.Split(b.o.network, ",")
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stop := func() { cancel(); wg.Wait(); os.RemoveAll(dir) }
	var phones []*phone
	for i := range b.o.phones {
		number := fmt.Sprintf("1666%07d", i)
		home := filepath.Join(dir, number)
		if err := waphone.Register(ctx, waphone.RegisterOptions{Home: home, Network: network, Admin: b.o.admin, Number: number, Name: "Bench " + number}); err != nil {
			stop()
			return nil, nil, fmt.Errorf("register phone %s: %w", number, err)
		}
		wp, err := waphone.Open(home, waphone.Options{Log: slog.New(slog.DiscardHandler), EventBuffer: 100_000,
			Session: session.Config{BackoffBase: 200 * time.Millisecond, BackoffMax: 2 * time.Second}})
		if err != nil {
			stop()
			return nil, nil, err
		}
		p := &phone{Phone: wp, received: map[string]time.Time{}}
		ready, delivered := make(chan struct{}), make(chan string, 16)
		wg.Go(func() { wp.Run(runCtx) })
		wg.Go(func() {
			once := sync.Once{}
			for e := range wp.Events() {
				switch e.Event {
				case "ready":
					once.Do(func() { close(ready) })
				case "receipt":
					if e.Status == "delivered" {
						select {
						case delivered <- e.ID:
						default:
						}
					}
				case "message":
					p.mu.Lock()
					p.received[e.ID] = time.Now()
					p.mu.Unlock()
				}
			}
		})
		select {
		case <-ready:
		case <-ctx.Done():
			stop()
			return nil, nil, ctx.Err()
		}
		// The customer writes first, as customers do: the business may
		// answer for 24 hours (the network refuses free-form messages
		// otherwise). Its coreapp has the message once it is delivered.
		id, err := wp.SendText(ctx, b.waID, "hi", "", "")
		if err != nil {
			stop()
			return nil, nil, err
		}
	wait:
		for {
			select {
			case got := <-delivered:
				if got == id {
					break wait
				}
			case <-ctx.Done():
				stop()
				return nil, nil, fmt.Errorf("phone %s: the business did not receive its first message: %w", number, ctx.Err())
			}
		}
		phones = append(phones, p)
	}
	return phones, stop, nil
}

func (b *bench) outbound(ctx context.Context, phones []*phone, res *Result) error {
	lat := make([]time.Duration, b.o.messages)
	ids := make([]string, b.o.messages)
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range b.o.concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.o.messages || ctx.Err() != nil {
					return
				}
				to := phones[i%len(phones)].Number()
				t0 := time.Now()
				code, raw, err := b.request(ctx, "POST", "/v1/messages", textBody(to, i), false)
				lat[i] = time.Since(t0)
				if err != nil || code != 201 {
					b.errs.Add(1)
					continue
				}
				var body struct {
					Messages []struct{ ID string } `json:"messages"`
				}
				if json.Unmarshal(raw, &body) == nil && len(body.Messages) == 1 {
					ids[i] = body.Messages[0].ID
				}
			}
		})
	}
	wg.Wait()
	accepted := time.Since(start)
	res.AcceptedPS = float64(b.o.messages) / accepted.Seconds()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	res.LatencyMS.P50, res.LatencyMS.P95, res.LatencyMS.P99, res.LatencyMS.Max = pct(0.50), pct(0.95), pct(0.99), float64(lat[len(lat)-1])/1e6

	// Wait until every accepted message reached its phone.
	last, err := b.waitDelivered(ctx, phones, ids)
	if err != nil {
		return err
	}
	res.DeliveredPS = float64(b.o.messages-int(b.errs.Load())) / last.Sub(start).Seconds()
	return nil
}

// waitDelivered waits until the phones received every message of ids
// (message i went to phone i mod phones; "" was not accepted) and returns
// when the last arrived.
func (b *bench) waitDelivered(ctx context.Context, phones []*phone, ids []string) (time.Time, error) {
	var last time.Time
	for {
		missing := 0
		for i, id := range ids {
			if id == "" {
				continue
			}
			p := phones[i%len(phones)]
			p.mu.Lock()
			at, ok := p.received[id]
			p.mu.Unlock()
			if !ok {
				missing++
			} else if at.After(last) {
				last = at
			}
		}
		if missing == 0 {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("%d messages never reached the phones", missing)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (b *bench) inboundPhase(ctx context.Context, phones []*phone, res *Result) error {
	if b.o.inbound == 0 {
		return nil
	}
	// Every phone sends its share from its own goroutine, as real
	// customers would: a single sending loop would measure the simulated
	// phones' own cost (each send updates the phone's key file).
	start := time.Now()
	ids, err := b.sendInbound(ctx, phones, b.o.inbound, "inbound benchmark")
	if err != nil {
		return err
	}
	sent := map[string]bool{}
	for _, id := range ids {
		sent[id] = true
	}
	for {
		b.hookMu.Lock()
		got := 0
		for id := range sent {
			if b.hookIn[id] {
				got++
			}
		}
		last := b.hookLast
		b.hookMu.Unlock()
		if got == len(sent) {
			res.InboundPS = float64(len(sent)) / last.Sub(start).Seconds()
			return nil
		}
		select { // polled: a scan per POST would cost the benchmark more than the stack
		case <-ctx.Done():
			return fmt.Errorf("inbound: %d of %d messages reached the webhook", got, len(sent))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// peakRSS reads VmHWM of the measured processes (the stack's, MariaDB's
// and wabench's own).
func peakRSS(pids procs) map[string]int64 {
	out := map[string]int64{}
	for name, pid := range pids {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				out[name] = kb / 1024
			}
		}
	}
	return out
}

func printTable(w io.Writer, r *Result) {
	fmt.Fprintf(w, "wabench: %d outbound messages, %d concurrent clients, %d phones, %d inbound\n\n", r.Messages, r.Concurrency, r.Phones, r.Inbound)
	fmt.Fprintf(w, "%-36s %12s\n", "metric", "value")
	fmt.Fprintf(w, "%-36s %12.0f\n", "outbound accepted (msg/s)", r.AcceptedPS)
	fmt.Fprintf(w, "%-36s %12.0f\n", "outbound delivered to phone (msg/s)", r.DeliveredPS)
	fmt.Fprintf(w, "%-36s %12.1f\n", "API latency p50 (ms)", r.LatencyMS.P50)
	fmt.Fprintf(w, "%-36s %12.1f\n", "API latency p95 (ms)", r.LatencyMS.P95)
	fmt.Fprintf(w, "%-36s %12.1f\n", "API latency p99 (ms)", r.LatencyMS.P99)
	if r.BaselinePS > 0 {
		fmt.Fprintf(w, "%-36s %12.0f\n", "baseline: do-nothing HTTPS (msg/s)", r.BaselinePS)
		fmt.Fprintf(w, "%-36s %12.3f\n", "accepted / baseline", r.BaselineRatio)
	}
	if f := r.FixedRate; f != nil {
		fmt.Fprintf(w, "%-36s %12d\n", "fixed rate offered (msg/s)", f.Rate)
		fmt.Fprintf(w, "%-36s %12.0f\n", "fixed rate accepted (msg/s)", f.AcceptedPS)
		fmt.Fprintf(w, "%-36s %7.1f/%.1f/%.1f/%.1f\n", "  latency p50/p95/p99/max (ms)", f.Latency.P50, f.Latency.P95, f.Latency.P99, f.Latency.Max)
	}
	fmt.Fprintf(w, "%-36s %12.0f\n", "inbound to webhook (msg/s)", r.InboundPS)
	if h := r.Webhooks; h != nil {
		if h.Fast.Events > 0 {
			fmt.Fprintf(w, "%-36s %12.0f\n", "webhook backlog, fast receiver (POST/s)", h.Fast.PostPS)
		}
		if h.Slow.Events > 0 {
			fmt.Fprintf(w, "%-36s %12.0f\n", fmt.Sprintf("webhook %d ms receiver (events/s)", h.Slow.DelayMS), h.Slow.EventPS)
			fmt.Fprintf(w, "%-36s %12.1f\n", "  events per POST", float64(h.Slow.Events)/float64(max(h.Slow.Posts, 1)))
		}
	}
	if r.Media.Files > 0 {
		kb := r.Media.FileBytes / 1000
		fmt.Fprintf(w, "%-36s %12.1f\n", fmt.Sprintf("media upload %d KB files (MB/s)", kb), r.Media.UploadMBPS)
		fmt.Fprintf(w, "%-36s %12.0f\n", fmt.Sprintf("%d KB images sent (msg/s)", kb), r.Media.SentPS)
		fmt.Fprintf(w, "%-36s %12.1f\n", fmt.Sprintf("%d KB images sent (MB/s)", kb), r.Media.SentPS*float64(r.Media.FileBytes)/1e6)
		fmt.Fprintf(w, "%-36s %12.0f\n", fmt.Sprintf("%d KB images to phone (msg/s)", kb), r.Media.DeliveredPS)
		fmt.Fprintf(w, "%-36s %12.1f\n", fmt.Sprintf("%d KB images to phone (MB/s)", kb), r.Media.DeliveredMBP)
	}
	names := make([]string, 0, len(r.PeakRSSMB))
	for n := range r.PeakRSSMB {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "%-36s %12d\n", "peak RSS "+n+" (MB)", r.PeakRSSMB[n])
	}
	fmt.Fprintf(w, "%-36s %12d\n", "errors", r.Errors)
	printCosts(w, r.Costs)
}

// mediaPhase uploads distinct images, sends each to a phone by media id,
// and waits until every phone has downloaded, verified and decrypted its
// images.
func (b *bench) mediaPhase(ctx context.Context, phones []*phone, res *Result) error {
	n := b.o.media
	if n == 0 {
		return nil
	}
	res.Media.Files, res.Media.FileBytes = n, b.o.mediaSize
	upload := func(ctx context.Context, i int) (string, error) {
		img := make([]byte, b.o.mediaSize)
		rand.Read(img)
		req, err := http.NewRequestWithContext(ctx, "POST", b.o.api+"/v1/media", bytes.NewReader(img))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "image/jpeg")
		req.Header.Set("Authorization", "Bearer "+b.token)
		resp, err := b.client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var body struct {
			Media []struct{ ID string } `json:"media"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 201 || len(body.Media) != 1 {
			return "", fmt.Errorf("upload %d: %s, %v", i, resp.Status, err)
		}
		return body.Media[0].ID, nil
	}
	mediaIDs := make([]string, n)
	if err := b.parallel(ctx, n, func(ctx context.Context, i int) error {
		id, err := upload(ctx, i)
		mediaIDs[i] = id
		return err
	}); err != nil {
		return err
	}
	res.Media.UploadMBPS = float64(n*b.o.mediaSize) / 1e6 / b.elapsed.Seconds()

	// "sent" statuses (or delivered, when it overtakes sent) time the
	// business side alone: encrypted, uploaded, sealed and acked by chatd.
	if _, err := b.call(ctx, "PATCH", "/v1/settings/application", map[string]any{"webhooks": map[string]any{"message": map[string]bool{"sent": true}}}, 200); err != nil {
		return err
	}
	msgIDs := make([]string, n)
	start := time.Now()
	if err := b.parallel(ctx, n, func(ctx context.Context, i int) error {
		code, raw, err := b.request(ctx, "POST", "/v1/messages", map[string]any{"to": phones[i%len(phones)].Number(), "type": "image",
			"image": map[string]string{"id": mediaIDs[i], "caption": "bench " + strconv.Itoa(i)}}, false)
		if err != nil || code != 201 {
			return fmt.Errorf("send image %d: %d %s %v", i, code, raw, err)
		}
		var body struct {
			Messages []struct{ ID string } `json:"messages"`
		}
		if err := json.Unmarshal(raw, &body); err != nil || len(body.Messages) != 1 {
			return fmt.Errorf("send image %d: %s", i, raw)
		}
		msgIDs[i] = body.Messages[0].ID
		return nil
	}); err != nil {
		return err
	}
	var last time.Time
	for {
		missing := 0
		for i, id := range msgIDs {
			p := phones[i%len(phones)]
			p.mu.Lock()
			at, ok := p.received[id]
			p.mu.Unlock()
			if !ok {
				missing++
			} else if at.After(last) {
				last = at
			}
		}
		if missing == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("media: %d images never reached the phones", missing)
		case <-time.After(20 * time.Millisecond):
		}
	}
	took := last.Sub(start).Seconds()
	res.Media.DeliveredPS = float64(n) / took
	var lastSent time.Time
	for {
		b.hookMu.Lock()
		got := 0
		for _, id := range msgIDs {
			if at, ok := b.hookSent[id]; ok {
				got++
				if at.After(lastSent) {
					lastSent = at
				}
			}
		}
		b.hookMu.Unlock()
		if got == n {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("media: %d of %d sent statuses arrived", got, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
	res.Media.SentPS = float64(n) / lastSent.Sub(start).Seconds()
	res.Media.DeliveredMBP = float64(n*b.o.mediaSize) / 1e6 / took
	return nil
}

// parallel runs fn for 0..n-1 on -concurrency goroutines, stops at the
// first error, and records how long it took in b.elapsed.
func (b *bench) parallel(ctx context.Context, n int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	start := time.Now()
	var wg sync.WaitGroup
	for range b.o.concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err })
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	b.elapsed = time.Since(start)
	if first != nil {
		return first
	}
	return ctx.Err()
}
