package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/go-sql-driver/mysql"
)

// What a phase cost, per message: the CPU of every process (from
// /proc/<pid>/stat, utime + stime) and, on MySQL, the server's work (its
// global status counters before and after). The counters are server-wide:
// the benchmark machine should be otherwise quiet.

// clockTicks is the kernel's USER_HZ (/proc/<pid>/stat counts in it): 100
// on every Linux architecture Go supports.
const clockTicks = 100

// Cost is a phase's work per message.
type Cost struct {
	Phase    string             `json:"phase"`
	Messages int                `json:"messages"`
	CPUms    map[string]float64 `json:"cpu_ms_per_message"`
	// Database: statements (Questions), commits (Handler_commit, one per
	// engine transaction), fsyncs of the redo log, redo and data bytes.
	DB map[string]float64 `json:"db_per_message,omitempty"`
}

// procs are the processes whose CPU is measured: the stack's (-pids),
// the database server (found by name) and wabench itself ("wabench": the
// HTTP client and the simulated phones).
type procs map[string]int

func findProcs(spec string) procs {
	out := procs{}
	if spec != "" {
		for _, kv := range strings.Split(spec, ",") {
			name, p, ok := strings.Cut(kv, "=")
			if n, err := strconv.Atoi(p); ok && err == nil {
				out[name] = n
			}
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		name := strings.TrimSpace(string(comm))
		switch {
		case name == "mariadbd" || name == "mysqld":
			out["mariadb"] = n
		case spec == "" && (name == "chatd" || name == "coreapp" || name == "webapp"):
			out[name] = n
		}
	}
	out["wabench"] = os.Getpid()
	return out
}

// cpuTicks reads a process's user + system time in clock ticks.
func cpuTicks(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command is in parentheses and may hold spaces: fields count
	// from the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64) // utime is field 14 of stat, 12th after the command
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	return u + s, err1 == nil && err2 == nil
}

// dbCounters are the MySQL global status counters a phase reports.
var dbCounters = map[string]string{
	"Questions":             "statements",
	"Handler_commit":        "commits",
	"Innodb_os_log_fsyncs":  "redo_fsyncs", // MySQL and MariaDB before 10.8
	"Innodb_data_fsyncs":    "fsyncs",      // every fsync of InnoDB (MariaDB 10.8 and later have no redo-only count)
	"Innodb_os_log_written": "redo_bytes",
	"Innodb_data_written":   "data_bytes",
}

type snapshot struct {
	at  time.Time
	cpu map[string]int64
	db  map[string]float64
}

type meter struct {
	procs procs
	db    *sql.DB // nil: SQLite, no database counters
}

func newMeter(pidSpec, dsn string) (*meter, error) {
	m := &meter{procs: findProcs(pidSpec)}
	if dsn != "" {
		d, err := sql.Open("mysql", dsn)
		if err != nil {
			return nil, err
		}
		if err := d.Ping(); err != nil {
			return nil, fmt.Errorf("-mysql-dsn: %w", err)
		}
		d.SetMaxOpenConns(1)
		m.db = d
	}
	return m, nil
}

func (m *meter) close() {
	if m.db != nil {
		m.db.Close()
	}
}

func (m *meter) snap(ctx context.Context) snapshot {
	s := snapshot{at: time.Now(), cpu: map[string]int64{}, db: map[string]float64{}}
	for name, pid := range m.procs {
		if t, ok := cpuTicks(pid); ok {
			s.cpu[name] = t
		}
	}
	if m.db == nil {
		return s
	}
	names := make([]string, 0, len(dbCounters))
	for n := range dbCounters {
		names = append(names, "'"+n+"'")
	}
	rows, err := m.db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ("+strings.Join(names, ",")+")")
	if err != nil {
		fmt.Fprintln(os.Stderr, "wabench: reading the database's counters:", err) // the phase then has none
		return s
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if rows.Scan(&k, &v) == nil {
			f, _ := strconv.ParseFloat(v, 64)
			s.db[dbCounters[k]] = f
		}
	}
	return s
}

// cost is the work between two snapshots per message.
func cost(phase string, n int, a, b snapshot) Cost {
	c := Cost{Phase: phase, Messages: n, CPUms: map[string]float64{}}
	if n == 0 {
		return c
	}
	var total float64
	for name, t := range b.cpu {
		if t0, ok := a.cpu[name]; ok {
			ms := float64(t-t0) * 1000 / clockTicks / float64(n)
			c.CPUms[name] = ms
			total += ms
		}
	}
	c.CPUms["total"] = total
	if len(a.db) > 0 && len(b.db) > 0 { // the counters the server has, read before and after
		c.DB = map[string]float64{}
		for k, v := range b.db {
			if v0, ok := a.db[k]; ok {
				c.DB[k] = (v - v0) / float64(n)
			}
		}
	}
	return c
}

func printCosts(w io.Writer, cs []Cost) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nwork per message (CPU ms; the database's counters)\n")
	cols := []string{"webapp", "coreapp", "chatd", "mariadb", "wabench", "total"}
	fmt.Fprintf(w, "%-10s", "phase")
	for _, c := range cols {
		fmt.Fprintf(w, " %9s", c)
	}
	fmt.Fprintf(w, " %10s %8s %8s %10s %10s\n", "statements", "commits", "fsyncs", "redo B", "data B")
	for _, c := range cs {
		fmt.Fprintf(w, "%-10s", c.Phase)
		for _, col := range cols {
			if v, ok := c.CPUms[col]; ok {
				fmt.Fprintf(w, " %9.3f", v)
			} else {
				fmt.Fprintf(w, " %9s", "-")
			}
		}
		if c.DB != nil {
			fsyncs, ok := c.DB["redo_fsyncs"]
			if !ok {
				fsyncs = c.DB["fsyncs"]
			}
			fmt.Fprintf(w, " %10.2f %8.2f %8.2f %10.0f %10.0f", c.DB["statements"], c.DB["commits"], fsyncs, c.DB["redo_bytes"], c.DB["data_bytes"])
		}
		fmt.Fprintln(w)
	}
}

// The same-run baseline: a do-nothing HTTPS endpoint in this process that
// parses the same JSON body and answers the same shape, driven by the same
// client code. accepted/baseline says how much of the client's capacity
// openwaba's own work leaves.

func startBaseline() (string, func(), error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wabench"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body map[string]any
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
				http.Error(w, "bad json", 400)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"messages":[{"id":"wamid.baseline"}],"meta":{"api_status":"stable","version":"baseline"}}`)
		})}
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeTLS(ln, "", "") }()
	return "https://" + ln.Addr().String(), func() { srv.Close(); <-done }, nil
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func latencyOf(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	l := slices.Clone(lat)
	slices.Sort(l)
	pct := func(p float64) float64 { return float64(l[int(p*float64(len(l)-1))]) / 1e6 }
	return Latency{pct(0.50), pct(0.95), pct(0.99), float64(l[len(l)-1]) / 1e6}
}

// textBody is the body of the i-th benchmark text to a phone.
func textBody(to string, i int) map[string]any {
	return map[string]any{"to": to, "type": "text", "text": map[string]string{"body": "benchmark message " + strconv.Itoa(i)}}
}

// baselinePhase drives the do-nothing endpoint as outbound drove the API.
func (b *bench) baselinePhase(ctx context.Context, res *Result) error {
	base, stop, err := startBaseline()
	if err != nil {
		return err
	}
	defer stop()
	n := b.o.messages
	var next atomic.Int64
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range b.o.concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if code, _, err := b.requestTo(ctx, base, "POST", "/v1/messages", textBody("15550000000", i), false); err != nil || code != 201 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		return fmt.Errorf("baseline: %d requests failed", failed.Load())
	}
	res.BaselinePS = float64(n) / time.Since(start).Seconds()
	if res.BaselinePS > 0 {
		res.BaselineRatio = res.AcceptedPS / res.BaselinePS
	}
	return nil
}

// fixedRate offers -messages sends at -rate per second with -concurrency
// clients; each send's latency counts from its intended time, so queueing
// behind a slow answer is part of it. It waits for the phones to receive
// them.
func (b *bench) fixedRate(ctx context.Context, phones []*phone, res *Result) error {
	n, rate := b.o.messages, b.o.rate
	type job struct {
		i        int
		intended time.Time
	}
	jobs := make(chan job, n)
	lat := make([]time.Duration, n)
	ids := make([]string, n)
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { // the producer: offers each send at its intended time
		defer close(jobs)
		for i := range n {
			at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
			jobs <- job{i, at}
		}
	})
	for range b.o.concurrency {
		wg.Go(func() {
			for j := range jobs {
				to := phones[j.i%len(phones)].Number()
				code, raw, err := b.request(ctx, "POST", "/v1/messages", textBody(to, 1_000_000+j.i), false)
				lat[j.i] = time.Since(j.intended)
				if err != nil || code != 201 {
					b.errs.Add(1)
					continue
				}
				var body struct {
					Messages []struct{ ID string } `json:"messages"`
				}
				if json.Unmarshal(raw, &body) == nil && len(body.Messages) == 1 {
					ids[j.i] = body.Messages[0].ID
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	f := &struct {
		Rate       int     `json:"offered_per_s"`
		Messages   int     `json:"messages"`
		AcceptedPS float64 `json:"accepted_per_s"`
		Latency    Latency `json:"latency_ms"`
	}{Rate: rate, Messages: n, AcceptedPS: float64(n) / elapsed.Seconds(), Latency: latencyOf(lat)}
	res.FixedRate = f
	_, err := b.waitDelivered(ctx, phones, ids)
	return err
}
