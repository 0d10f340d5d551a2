// Package stack starts a whole openwaba stack for end-to-end tests: the real
// chatd, coreapp and webapp binaries as processes on loopback ports (any
// number of coreapps and webapps on one database, as in a high-availability
// deployment), each test with its own fresh databases on the MySQL server
// named by WA_TEST_DSN, plus the pieces a test drives them with (an HTTPS API
// client per webapp, simulated phones, a webhook receiver, TCP proxies to cut
// a node from chatd or from MySQL, a message load generator, chatd's session
// log).
//
// Binaries are built once per test process (with the race detector when the
// tests run with it). Process output goes to files in the test's temporary
// directory and is printed when the test fails.
package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openwaba/openwaba/db/dbtest"
)

// Binaries are the built executables.
type Binaries struct {
	Dir string
}

// Path returns the path of a binary.
func (b Binaries) Path(name string) string { return filepath.Join(b.Dir, name) }

var (
	buildOnce sync.Once
	built     Binaries
	buildErr  error
)

// Build compiles chatd, coreapp and webapp once per test process into a
// directory removed when the process ends (see Main).
func Build(t testing.TB) Binaries {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "openwaba-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		built = Binaries{Dir: dir}
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		for _, b := range []struct{ mod, pkg, name string }{
			{"chatd", "./cmd/chatd", "chatd"},
			{"coreapp", "./cmd/coreapp", "coreapp"},
			{"coreapp", "./cmd/wadebug", "wadebug"},
			{"webapp", "./cmd/webapp", "webapp"},
			{"chatd", "./cmd/waphone", "waphone"},
		} {
			args := []string{"build", "-o", filepath.Join(dir, b.name)}
			if raceEnabled {
				args = append(args, "-race")
			}
			cmd := exec.Command("go", append(args, b.pkg)...)
			cmd.Dir = filepath.Join(root, b.mod)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", b.name, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// Main runs the tests of a package and removes the built binaries.
func Main(m *testing.M) {
	code := m.Run()
	if built.Dir != "" {
		os.RemoveAll(built.Dir)
	}
	os.Exit(code)
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.work not found above the working directory")
		}
		dir = parent
	}
}

// handedOut holds every port FreePort returned in this process: the
// kernel may give a just-closed port to the next bind(0), and two
// listeners of one stack on the same port fail to start.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a loopback port that was free a moment ago and that
// it has not returned before in this process.
func FreePort(t testing.TB) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
	t.Fatal("no loopback port left that was not handed out before")
	return 0
}

// Proc is a running process of the stack.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// Wait blocks until the process exits.
func (p *Proc) Wait() error { <-p.done; return p.err }

// Kill sends SIGKILL and waits.
func (p *Proc) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits (up to 20 s, then SIGKILL).
func (p *Proc) Stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.Kill()
	}
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log returns the process's output so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Start runs a binary with env added to a clean environment.
func Start(t testing.TB, bins Binaries, name string, env map[string]string, args ...string) *Proc {
	t.Helper()
	return startProc(t, bins, name, name, env, args...)
}

// startProc runs the binary name, labelled label in logs and failures.
func startProc(t testing.TB, bins Binaries, name, label string, env map[string]string, args ...string) *Proc {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, strings.ReplaceAll(label, " ", "-")+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bins.Path(name), args...)
	cmd.Stdout, cmd.Stderr = f, f
	// env comes last: exec keeps the last value of a duplicated key, so it
	// may override the defaults (chatd logs JSON).
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "WA_LOG_FORMAT=text", "WA_LOG_LEVEL=debug"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	p := &Proc{Name: label, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			p.Stop()
		}
		if strings.Contains(p.Log(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race", label)
		}
		if t.Failed() {
			t.Logf("---- %s output (%s) ----\n%s", label, logPath, tail(p.Log(), 200))
		}
	})
	return p
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// Options tune a Stack.
type Options struct {
	// ProxyChat puts a Proxy between each coreapp and chatd (Core.ChatProxy;
	// s.Proxy is the first coreapp's). Coreapps then have no fallback port.
	ProxyChat bool
	// ProxyDB puts a Proxy between each coreapp and MySQL (Core.DBProxy), so
	// a test can cut one node from the database with Hold or DropAll.
	ProxyDB bool
	// Coreapps is the number of coreapp nodes (0 means 1). They share the
	// database, the keystore secret and the media volume.
	Coreapps int
	// Webapps is the number of webapps (0 means 1); each lists every coreapp
	// in WA_CORE_ENDPOINT.
	Webapps int
	// CoreEnv is added to every coreapp's environment (it overrides the
	// stack's settings).
	CoreEnv map[string]string
	// WebEnv is added to every webapp's environment (it overrides the
	// stack's settings).
	WebEnv map[string]string
	// ChatdEnv is added to chatd's environment (the sandbox's switches,
	// such as WA_SANDBOX_TEMPLATE_APPROVAL_DELAY).
	ChatdEnv map[string]string
}

// Stack is a running openwaba deployment.
type Stack struct {
	t      testing.TB
	Bins   Binaries
	DBEnv  map[string]string // WA_DB_* for every process
	CoreDB string
	ChatDB string

	// CorePort, WebPort and Proxy are the first coreapp's and webapp's
	// (Cores[0].Port, Webs[0].Port, Cores[0].ChatProxy).
	ChatPort, FallbackPort, AdminPort, MediaPort, CorePort, WebPort int
	Proxy                                                           *Proxy
	// RootKey is the chat network's root key (base64), as chatd serves it
	// at /sandbox/root-key; coreapp and the phones pin it.
	RootKey string
	// KeystoreSecret is the WA_KEYSTORE_SECRET every coreapp gets (base64
	// of 32 random bytes, made for this stack).
	KeystoreSecret string

	// Chatd is the running chatd; Coreapp and Webapp are the first
	// coreapp's and webapp's current processes (Cores[0].Proc, Webs[0].Proc).
	Chatd, Coreapp, Webapp *Proc
	// Cores and Webs are every coreapp and webapp node, in start order.
	Cores []*Core
	Webs  []*Web

	chatdProcs []*Proc // every chatd run, oldest first (ChatdSessions)
	coreEnv    map[string]string
	chatdEnv   map[string]string
	dbAddr     string // the MySQL server's host:port (the DB proxies' target)
	mediaDir   string // WA_MEDIA_DIR shared by every coreapp
	ChatData   string // chatd's data dir (its media blobs), kept across restarts

	URL    string // https://127.0.0.1:WebPort, the first webapp
	Client *http.Client
}

// New starts chatd, the coreapps and the webapps on fresh databases and
// waits until each coreapp is ready and each webapp answers. Nodes of a
// kind start at the same time, as in a real deployment.
func New(t testing.TB, o Options) *Stack {
	t.Helper()
	srv := dbtest.Server(t)
	if srv.IsSQLite() && (o.Coreapps > 1 || o.ProxyDB) {
		t.Skip("several coreapps (high availability) need MySQL; this run uses SQLite (WA_TEST_ENGINE=sqlite)")
	}
	bins := Build(t)
	_, coreDB := dbtest.NewName(t)
	_, chatDB := dbtest.NewName(t)
	secret := make([]byte, 32)
	rand.Read(secret)
	s := &Stack{
		t: t, Bins: bins, CoreDB: coreDB, ChatDB: chatDB,
		DBEnv:    dbtest.Env(srv),
		ChatPort: FreePort(t), FallbackPort: FreePort(t), AdminPort: FreePort(t), MediaPort: FreePort(t),
		ChatData:       t.TempDir(),
		KeystoreSecret: base64.StdEncoding.EncodeToString(secret),
		dbAddr:         net.JoinHostPort(srv.Hostname, strconv.Itoa(srv.Port)),
		mediaDir:       t.TempDir(),
		coreEnv:        map[string]string{},
	}
	s.Client = newClient()
	s.chatdEnv = o.ChatdEnv
	s.StartChatd()
	s.startNodes(o)
	return s
}

// NewDeployment starts another deployment on this stack's chat network:
// its own database, keystore secret, media volume, coreapps and webapps (o's
// ChatdEnv is ignored: the network is this one). A number registered on one
// is taken over by the other by registering it there.
func (s *Stack) NewDeployment(o Options) *Stack {
	s.t.Helper()
	_, coreDB := dbtest.NewName(s.t)
	secret := make([]byte, 32)
	rand.Read(secret)
	d := &Stack{
		t: s.t, Bins: s.Bins, CoreDB: coreDB, ChatDB: s.ChatDB, DBEnv: s.DBEnv,
		ChatPort: s.ChatPort, FallbackPort: s.FallbackPort, AdminPort: s.AdminPort, MediaPort: s.MediaPort,
		ChatData: s.ChatData, RootKey: s.RootKey, Chatd: s.Chatd, chatdEnv: s.chatdEnv,
		KeystoreSecret: base64.StdEncoding.EncodeToString(secret),
		dbAddr:         s.dbAddr,
		mediaDir:       s.t.TempDir(),
		coreEnv:        map[string]string{},
	}
	d.Client = newClient()
	d.startNodes(o)
	return d
}

// startNodes starts the coreapps and webapps o asks for and waits until
// they are ready.
func (s *Stack) startNodes(o Options) {
	t := s.t
	t.Helper()
	for k, v := range o.CoreEnv {
		s.coreEnv[k] = v
	}
	for i := range max(o.Coreapps, 1) {
		c := &Core{Index: i, NodeID: fmt.Sprintf("core%d", i+1), Port: FreePort(t), MetricsPort: FreePort(t), DataDir: t.TempDir()}
		if o.ProxyChat {
			c.ChatProxy = NewProxy(t, fmt.Sprintf("127.0.0.1:%d", s.ChatPort))
		}
		if o.ProxyDB {
			c.DBProxy = NewProxy(t, s.dbAddr)
		}
		s.Cores = append(s.Cores, c)
	}
	s.CorePort, s.Proxy = s.Cores[0].Port, s.Cores[0].ChatProxy
	for i := range max(o.Webapps, 1) {
		port := FreePort(t)
		s.Webs = append(s.Webs, &Web{Index: i, Port: port, URL: fmt.Sprintf("https://127.0.0.1:%d", port), env: o.WebEnv, s: s})
	}
	s.WebPort, s.URL = s.Webs[0].Port, s.Webs[0].URL

	for _, c := range s.Cores {
		s.launchCore(c)
	}
	for _, c := range s.Cores {
		s.waitLog(c.Proc, "coreapp ready")
	}
	for _, w := range s.Webs {
		s.launchWeb(w)
	}
	for _, w := range s.Webs {
		s.waitHTTP(w.Proc, w.URL+"/v1/health", true)
	}
}

// newClient is the API client: it accepts the webapp's self-signed
// certificate.
func newClient() *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 64}}
}

// Ports are the loopback ports of a stack started outside the harness.
type Ports struct {
	Web, Chat, Fallback, Admin, Media, Core int
}

// FreePorts returns free ports for every listener of a stack.
func FreePorts(t testing.TB) Ports {
	return Ports{Web: FreePort(t), Chat: FreePort(t), Fallback: FreePort(t), Admin: FreePort(t), Media: FreePort(t), Core: FreePort(t)}
}

// Attach returns a Stack for processes started outside the harness (by
// scripts/run.sh, say) on ports p, to drive them with the same helpers
// (Do, Login, NewPhone, …); the methods that start and stop processes do not
// apply to it.
func Attach(t testing.TB, p Ports) *Stack {
	t.Helper()
	s := &Stack{t: t, ChatPort: p.Chat, FallbackPort: p.Fallback, AdminPort: p.Admin, MediaPort: p.Media,
		CorePort: p.Core, WebPort: p.Web, URL: fmt.Sprintf("https://127.0.0.1:%d", p.Web), Client: newClient()}
	s.RootKey = s.fetchRootKey()
	return s
}

// RepoRoot is the repository's top directory (where go.work is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func (s *Stack) env(extra map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range s.DBEnv {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// StartChatd (re)starts chatd and waits for its admin API. chatd logs JSON
// (ChatdSessions reads it).
func (s *Stack) StartChatd() {
	s.t.Helper()
	env := map[string]string{
		"WA_CHATD_DB_NAME": s.ChatDB, "WA_CHAT_PORT": strconv.Itoa(s.ChatPort),
		"WA_CHAT_FALLBACK_PORT": strconv.Itoa(s.FallbackPort), "WA_CHATD_ADMIN_PORT": strconv.Itoa(s.AdminPort),
		"WA_CHATD_LISTEN_ADDR": "127.0.0.1", "WA_DATA_DIR": s.ChatData, "WA_CHATD_MEDIA_PORT": strconv.Itoa(s.MediaPort),
		"WA_LOG_FORMAT": "json",
	}
	for k, v := range s.chatdEnv {
		env[k] = v
	}
	s.Chatd = Start(s.t, s.Bins, "chatd", s.env(env))
	s.chatdProcs = append(s.chatdProcs, s.Chatd)
	s.waitHTTP(s.Chatd, fmt.Sprintf("http://127.0.0.1:%d/healthz", s.AdminPort), false)
	s.RootKey = s.fetchRootKey()
}

// fetchRootKey reads the network root key from chatd's admin API. It is
// stored in chatd's database, so a restarted chatd serves the same one.
func (s *Stack) fetchRootKey() string {
	s.t.Helper()
	resp, err := s.Client.Get(fmt.Sprintf("http://%s/sandbox/root-key", s.AdminAddr()))
	if err != nil {
		s.t.Fatalf("GET /sandbox/root-key: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		RootKey string `json:"root_key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.RootKey == "" {
		s.t.Fatalf("GET /sandbox/root-key: %s, %v", resp.Status, err)
	}
	if s.RootKey != "" && s.RootKey != body.RootKey {
		s.t.Fatalf("chatd's root key changed across a restart: %s, then %s", s.RootKey, body.RootKey)
	}
	return body.RootKey
}

// StartCoreapp (re)starts the first coreapp and waits until it logs that it
// is ready.
func (s *Stack) StartCoreapp() { s.StartCore(0) }

// StartWebapp (re)starts the first webapp and waits until the API answers.
func (s *Stack) StartWebapp() { s.StartWeb(0) }

// AdminAddr is chatd's sandbox admin address.
func (s *Stack) AdminAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.AdminPort) }

// ChatAddrs are chatd's chat addresses (main, fallback).
func (s *Stack) ChatAddrs() []string {
	return []string{fmt.Sprintf("127.0.0.1:%d", s.ChatPort), fmt.Sprintf("127.0.0.1:%d", s.FallbackPort)}
}

func (s *Stack) waitHTTP(p *Proc, url string, insecure bool) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if p.Exited() {
			s.t.Fatalf("%s exited during start-up:\n%s", p.Name, tail(p.Log(), 60))
		}
		resp, err := s.Client.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("%s did not answer %s within 60 s:\n%s", p.Name, url, tail(p.Log(), 60))
}

func (s *Stack) waitLog(p *Proc, marker string) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Log(), marker) {
			return
		}
		if p.Exited() {
			s.t.Fatalf("%s exited during start-up:\n%s", p.Name, tail(p.Log(), 60))
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("%s did not log %q within 60 s:\n%s", p.Name, marker, tail(p.Log(), 60))
}

// Response is a decoded API answer.
type Response struct {
	Status int
	Body   map[string]any
	Raw    []byte
	Header http.Header
}

// ErrorCode returns errors[0].code, or 0.
func (r Response) ErrorCode() int {
	errs, _ := r.Body["errors"].([]any)
	if len(errs) == 0 {
		return 0
	}
	e, _ := errs[0].(map[string]any)
	c, _ := e["code"].(float64)
	return int(c)
}

// Auth is how a request authenticates.
type Auth struct {
	Bearer string
	APIKey string // D360-API-KEY
	Basic  [2]string
	Header map[string]string
}

// set puts the credentials on req.
func (a Auth) set(req *http.Request) {
	switch {
	case a.Bearer != "":
		req.Header.Set("Authorization", "Bearer "+a.Bearer)
	case a.APIKey != "":
		req.Header.Set("D360-API-KEY", a.APIKey)
	case a.Basic[0] != "":
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(a.Basic[0]+":"+a.Basic[1])))
	}
	for k, v := range a.Header {
		req.Header.Set(k, v)
	}
}

// Do sends an API request with a JSON body (nil for none; []byte is sent as
// is) to the first webapp and fails the test if no answer comes.
func (s *Stack) Do(method, path string, auth Auth, body any) Response {
	s.t.Helper()
	return doOrFail(s.t, s.Client, s.URL, method, path, auth, body)
}

// TryDo is Do for a request that may get no answer (status 0).
func (s *Stack) TryDo(method, path string, auth Auth, body any) Response {
	s.t.Helper()
	return tryDo(s.t, s.Client, s.URL, method, path, auth, body)
}

func doOrFail(t testing.TB, c *http.Client, base, method, path string, auth Auth, body any) Response {
	t.Helper()
	r, err := request(context.Background(), c, base, method, path, auth, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func tryDo(t testing.TB, c *http.Client, base, method, path string, auth Auth, body any) Response {
	t.Helper()
	r, err := request(context.Background(), c, base, method, path, auth, body)
	var nj notJSONError
	if errors.As(err, &nj) || errors.Is(err, errBadBody) {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// errBadBody is a request body that does not encode as JSON.
var errBadBody = errors.New("request body does not encode as JSON")

// notJSONError is an answer whose body is not a JSON object.
type notJSONError struct {
	status int
	raw    []byte
}

func (e notJSONError) Error() string {
	return fmt.Sprintf("answer is not a JSON object (%d): %s", e.status, e.raw)
}

// request sends one API request to base+path. It never touches a
// testing.TB, so goroutines other than the test's may use it.
func request(ctx context.Context, c *http.Client, base, method, path string, auth Auth, body any) (Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return Response{}, fmt.Errorf("%w: %v", errBadBody, err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return Response{}, fmt.Errorf("%w: %v", errBadBody, err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	auth.set(req)
	resp, err := c.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	r := Response{Status: resp.StatusCode, Raw: raw, Header: resp.Header}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			return r, notJSONError{status: resp.StatusCode, raw: raw}
		}
	}
	return r, nil
}

// AdminPassword is the password tests set on first login.
const AdminPassword = "Sup3r-secret!"

// Login logs the admin in (the first time, changing the default password)
// and returns a bearer token. It tries AdminPassword first, so that a
// stack's repeated logins are not failures the login throttle counts.
func (s *Stack) Login() string {
	s.t.Helper()
	r := s.Do("POST", "/v1/users/login", Auth{Basic: [2]string{"admin", AdminPassword}}, nil)
	if r.Status != 200 {
		r = s.Do("POST", "/v1/users/login", Auth{Basic: [2]string{"admin", "secret"}}, map[string]string{"new_password": AdminPassword})
	}
	if r.Status != 200 {
		s.t.Fatalf("login: %d %s", r.Status, r.Raw)
	}
	users := r.Body["users"].([]any)
	return users[0].(map[string]any)["token"].(string)
}

// Register registers and verifies the business number cc+phone.
func (s *Stack) Register(token, cc, phone string) {
	s.t.Helper()
	r := s.Do("POST", "/v1/account", Auth{Bearer: token}, map[string]string{"cc": cc, "phone_number": phone, "method": "sms", "cert": base64.StdEncoding.EncodeToString([]byte("Acme Shop"))})
	if r.Status != 202 {
		s.t.Fatalf("POST /v1/account: %d %s", r.Status, r.Raw)
	}
	code := s.SandboxCode(cc + phone)
	r = s.Do("POST", "/v1/account/verify", Auth{Bearer: token}, map[string]string{"code": code})
	if r.Status != 201 {
		s.t.Fatalf("POST /v1/account/verify: %d %s", r.Status, r.Raw)
	}
}

// SandboxCode reads a pending verification code from chatd.
func (s *Stack) SandboxCode(number string) string {
	s.t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s/sandbox/codes/%s", s.AdminAddr(), number))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Code string }
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 200 || body.Code == "" {
		s.t.Fatalf("sandbox code for %s: %s", number, resp.Status)
	}
	return body.Code
}

// WaitHealth polls /v1/health until gateway_status is want. With several
// coreapps the answer is keyed by node ({"health":{"<node>":{…}}}): then
// "connected" needs one node connected (the account's slot is live
// somewhere; with several shards, one of them), and any other status needs
// every node to report it.
func (s *Stack) WaitHealth(token, want string, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	var last Response
	for time.Now().Before(deadline) {
		last = s.Do("GET", "/v1/health", Auth{Bearer: token}, nil)
		if healthIs(last, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("gateway_status did not become %q within %s; last answer %d %s", want, within, last.Status, last.Raw)
}

func healthIs(r Response, want string) bool {
	h, ok := r.Body["health"].(map[string]any)
	if !ok {
		return false
	}
	if g, ok := h["gateway_status"]; ok {
		return g == want
	}
	var nodes, have int
	for _, n := range h {
		if n, ok := n.(map[string]any); ok {
			nodes++
			if n["gateway_status"] == want {
				have++
			}
		}
	}
	if want == "connected" {
		return have > 0
	}
	return nodes > 0 && have == nodes
}

// MediaDir is the coreapps' shared media volume (WA_MEDIA_DIR).
func (s *Stack) MediaDir() string {
	if d := s.coreEnv["WA_MEDIA_DIR"]; d != "" {
		return d
	}
	return s.mediaDir
}

// Raw sends a request with a raw body and content type (POST /v1/media)
// to the first webapp and returns the status, headers and body unparsed.
func (s *Stack) Raw(method, path string, auth Auth, contentType string, body []byte) (int, http.Header, []byte) {
	s.t.Helper()
	return rawRequest(s.t, s.Client, s.URL, method, path, auth, contentType, body)
}

func rawRequest(t testing.TB, c *http.Client, base, method, path string, auth Auth, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	auth.set(req)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, b
}

// Upload posts a file to /v1/media and returns its media id.
func (s *Stack) Upload(auth Auth, contentType string, body []byte) string {
	s.t.Helper()
	code, _, raw := s.Raw("POST", "/v1/media", auth, contentType, body)
	var out struct {
		Media []struct{ ID string } `json:"media"`
	}
	if code != http.StatusCreated || json.Unmarshal(raw, &out) != nil || len(out.Media) != 1 || out.Media[0].ID == "" {
		s.t.Fatalf("POST /v1/media (%s, %d bytes): %d %s", contentType, len(body), code, raw)
	}
	return out.Media[0].ID
}

// KillCoreapp kills the first coreapp with SIGKILL.
func (s *Stack) KillCoreapp() { s.KillCore(0) }

// RestartCoreapp starts the first coreapp again (after a kill or stop).
func (s *Stack) RestartCoreapp() { s.StartCore(0) }

// Sandbox calls chatd's sandbox admin API (POST /sandbox/templates/{id}/status,
// /sandbox/clock, …) with a JSON body (nil: none) and returns the status
// and the decoded answer.
func (s *Stack) Sandbox(method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+s.AdminAddr()+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		s.t.Fatalf("%s %s: %s, body is not a JSON object: %v", method, path, resp.Status, err)
	}
	return resp.StatusCode, out
}
