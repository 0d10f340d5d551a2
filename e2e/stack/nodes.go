package stack

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Core is one coreapp node of a Stack. Its node id, port and data directory
// stay the same across restarts.
type Core struct {
	Index  int    // its place in Stack.Cores
	NodeID string // WA_NODE_ID: core1, core2, …
	Port   int    // gRPC port (WA_CORE_PORT)
	// MetricsPort serves GET /metrics on loopback (WA_CORE_METRICS_PORT).
	MetricsPort int
	DataDir     string // WA_DATA_DIR, kept across restarts
	// ChatProxy stands between this node and chatd (Options.ProxyChat), and
	// DBProxy between this node and MySQL (Options.ProxyDB); nil otherwise.
	ChatProxy, DBProxy *Proxy
	// Proc is the node's current process, or its last one once it exited.
	Proc *Proc

	procs []*Proc // every run, oldest first
}

// Endpoint is the node's gRPC address, as the webapps dial it.
func (c *Core) Endpoint() string { return fmt.Sprintf("127.0.0.1:%d", c.Port) }

// Running reports whether the node's process is running.
func (c *Core) Running() bool { return c.Proc != nil && !c.Proc.Exited() }

// Log returns the output of every run of the node, oldest first.
func (c *Core) Log() string {
	var b strings.Builder
	for _, p := range c.procs {
		b.WriteString(p.Log())
	}
	return b.String()
}

// Web is one webapp of a Stack, with an API client for it.
type Web struct {
	Index int    // its place in Stack.Webs
	Port  int    // HTTPS port (WA_WEB_PORT)
	URL   string // https://127.0.0.1:Port
	// Proc is the webapp's current process, or its last one once it exited.
	Proc *Proc

	env map[string]string // Options.WebEnv
	s   *Stack
}

// Do is Stack.Do against this webapp.
func (w *Web) Do(method, path string, auth Auth, body any) Response {
	w.s.t.Helper()
	return doOrFail(w.s.t, w.s.Client, w.URL, method, path, auth, body)
}

// TryDo is Stack.TryDo against this webapp.
func (w *Web) TryDo(method, path string, auth Auth, body any) Response {
	w.s.t.Helper()
	return tryDo(w.s.t, w.s.Client, w.URL, method, path, auth, body)
}

// Raw is Stack.Raw against this webapp.
func (w *Web) Raw(method, path string, auth Auth, contentType string, body []byte) (int, http.Header, []byte) {
	w.s.t.Helper()
	return rawRequest(w.s.t, w.s.Client, w.URL, method, path, auth, contentType, body)
}

// CoreEndpoints is the WA_CORE_ENDPOINT every webapp gets: every coreapp,
// comma-separated.
func (s *Stack) CoreEndpoints() string {
	eps := make([]string, len(s.Cores))
	for i, c := range s.Cores {
		eps[i] = c.Endpoint()
	}
	return strings.Join(eps, ",")
}

// WebURL is the base URL of webapp i.
func (s *Stack) WebURL(i int) string { return s.Webs[i].URL }

// StartCore (re)starts coreapp i and waits until it logs that it is ready.
func (s *Stack) StartCore(i int) {
	s.t.Helper()
	c := s.Cores[i]
	s.launchCore(c)
	s.waitLog(c.Proc, "coreapp ready")
}

// KillCore kills coreapp i with SIGKILL and waits for it to exit.
func (s *Stack) KillCore(i int) { s.Cores[i].Proc.Kill() }

// StopCore stops coreapp i with SIGTERM and waits for it to exit (SIGKILL
// after 20 s).
func (s *Stack) StopCore(i int) { s.Cores[i].Proc.Stop() }

// StartWeb (re)starts webapp i and waits until it answers.
func (s *Stack) StartWeb(i int) {
	s.t.Helper()
	w := s.Webs[i]
	s.launchWeb(w)
	s.waitHTTP(w.Proc, w.URL+"/v1/health", true)
}

// KillWeb kills webapp i with SIGKILL and waits for it to exit.
func (s *Stack) KillWeb(i int) { s.Webs[i].Proc.Kill() }

// StopWeb stops webapp i with SIGTERM and waits for it to exit.
func (s *Stack) StopWeb(i int) { s.Webs[i].Proc.Stop() }

// launchCore starts coreapp c without waiting for it.
func (s *Stack) launchCore(c *Core) {
	s.t.Helper()
	if c.Running() {
		s.t.Fatalf("coreapp %s is already running", c.NodeID)
	}
	p := startProc(s.t, s.Bins, "coreapp", "coreapp "+c.NodeID, s.env(s.coreEnvFull(c)))
	if c.DBProxy != nil {
		// Cleanups run last-in first-out: this one runs before the process is
		// stopped, so a node cut from MySQL at the end of a test can still
		// shut down cleanly instead of waiting for the SIGKILL.
		s.t.Cleanup(c.DBProxy.Release)
	}
	c.Proc = p
	c.procs = append(c.procs, p)
	if c.Index == 0 {
		s.Coreapp = p
	}
}

func (s *Stack) coreEnvFull(c *Core) map[string]string {
	e := map[string]string{"WA_DB_NAME": s.CoreDB, "WA_CORE_PORT": strconv.Itoa(c.Port), "WA_CORE_ADDR": "127.0.0.1",
		"WA_CORE_METRICS_PORT": strconv.Itoa(c.MetricsPort),
		"WA_CHAT_HOST":         "127.0.0.1", "WA_NODE_ID": c.NodeID, "WA_DATA_DIR": c.DataDir,
		"WA_CHAT_PORT": strconv.Itoa(s.ChatPort), "WA_CHAT_FALLBACK_PORT": strconv.Itoa(s.FallbackPort),
		"WA_CHAT_ROOT_KEY": s.RootKey, "WA_KEYSTORE_SECRET": s.KeystoreSecret, "WA_MEDIA_DIR": s.mediaDir,
		// The tests' webhook receivers listen on loopback, also for URLs
		// set with API keys; TestTenantGuards turns the guard back on.
		"WA_WEBHOOK_ALLOW_PRIVATE": "true"}
	if c.ChatProxy != nil {
		e["WA_CHAT_PORT"], e["WA_CHAT_FALLBACK_PORT"] = strconv.Itoa(c.ChatProxy.Port()), "0"
	}
	if c.DBProxy != nil {
		host, port, _ := net.SplitHostPort(c.DBProxy.Addr())
		e["WA_DB_HOSTNAME"], e["WA_DB_PORT"] = host, port
	}
	for k, v := range s.coreEnv {
		e[k] = v
	}
	return e
}

// launchWeb starts webapp w without waiting for it.
func (s *Stack) launchWeb(w *Web) {
	s.t.Helper()
	if w.Proc != nil && !w.Proc.Exited() {
		s.t.Fatalf("webapp %d is already running", w.Index+1)
	}
	e := map[string]string{
		"WA_DB_NAME": s.CoreDB, "WA_WEB_PORT": strconv.Itoa(w.Port), "WA_WEB_ADDR": "127.0.0.1",
		"WA_CORE_ENDPOINT": s.CoreEndpoints(), "WA_API_KEY": "monitoring-key-0123456789",
		"WA_KEYSTORE_SECRET": s.KeystoreSecret,
		// Most tests send faster than on-prem's request rate limits allow;
		// the rate limit tests turn them on (Options.WebEnv).
		"WA_RATE_LIMIT_MESSAGES": "off", "WA_RATE_LIMIT_DEFAULT": "off",
	}
	for k, v := range w.env {
		e[k] = v
	}
	w.Proc = startProc(s.t, s.Bins, "webapp", fmt.Sprintf("webapp web%d", w.Index+1), s.env(e))
	if w.Index == 0 {
		s.Webapp = w.Proc
	}
}

// CoreEnviron is coreapp i's environment as KEY=VALUE lines: what a tool
// that reads coreapp's configuration (wadebug) runs with.
func (s *Stack) CoreEnviron(i int) []string {
	var out []string
	for k, v := range s.env(s.coreEnvFull(s.Cores[i])) {
		out = append(out, k+"="+v)
	}
	return out
}
