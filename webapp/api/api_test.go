package api_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
	"github.com/openwaba/openwaba/webapp/api"
	"github.com/openwaba/openwaba/webapp/auth"
)

const (
	monitoringKey = "monitoring-key-0123"
	coreToken     = "core-call-token"
	adminPassword = "Adm1n-Passw0rd!"
	alicePassword = "Al1ce-Passw0rd!"
	keyNumber     = "4915112345678"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	url   string
	store *auth.Store
	clk   *clock
	srv   *api.Server
}

// unreachableCore returns a client for an address nobody listens on: every
// call fails with Unavailable, which shows that a request passed the
// webapp's authentication and validation. interceptors may observe calls.
func unreachableCore(t *testing.T, interceptors ...grpc.UnaryClientInterceptor) corev1.CoreClient {
	t.Helper()
	return unreachableCoreWith(t, grpc.WithChainUnaryInterceptor(interceptors...))
}

// unreachableCoreWith is unreachableCore with any dial options, such as
// stream interceptors.
func unreachableCoreWith(t *testing.T, opts ...grpc.DialOption) corev1.CoreClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	conn, err := grpc.NewClient("passthrough:///"+addr,
		append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return corev1.NewCoreClient(conn)
}

func newEnv(t *testing.T, core corev1.CoreClient) *env {
	t.Helper()
	d := dbtest.New(t, db.Core)
	clk := &clock{t: time.Date(2026, 11, 21, 15, 29, 26, 0, time.UTC)}
	return newEnvOn(t, d, clk, core)
}

// newEnvOn is newEnv on an existing database and clock: several of them
// are webapps side by side.
func newEnvOn(t *testing.T, d *sql.DB, clk *clock, core corev1.CoreClient) *env {
	t.Helper()
	store := auth.New(d, auth.Options{BcryptCost: bcrypt.MinCost, Now: clk.Now})
	if err := store.SeedAdmin(t.Context()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := api.New(core, store, log, api.Options{
		MonitoringKey: monitoringKey,
		CoreToken:     coreToken,
		RetryBackoff:  time.Millisecond,
		Now:           clk.Now,
		// Short, so that TestSlowLoginBody does not wait the default 10 s.
		PublicReadTimeout: 300 * time.Millisecond,
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &env{url: hs.URL, store: store, clk: clk, srv: srv}
}

// fixture is an environment with an admin token, a USER token and an API key.
type fixture struct {
	*env
	admin, alice string
	key          auth.APIKey
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, unreachableCore(t))
}

// newFixtureWith is newFixture with the given coreapp client.
func newFixtureWith(t *testing.T, core corev1.CoreClient) *fixture {
	t.Helper()
	e := newEnv(t, core)
	ctx := t.Context()
	admin, err := e.store.Login(ctx, "", "admin", "secret", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateUser(ctx, "alice", alicePassword); err != nil {
		t.Fatal(err)
	}
	alice, err := e.store.Login(ctx, "", "alice", alicePassword, "")
	if err != nil {
		t.Fatal(err)
	}
	key, err := e.store.CreateAPIKey(ctx, keyNumber, "admin")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{env: e, admin: admin.Value, alice: alice.Value, key: key}
}

// reqOpt decorates a request (credentials, headers).
type reqOpt func(*http.Request)

func bearer(tok string) reqOpt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func d360(key string) reqOpt {
	return func(r *http.Request) { r.Header.Set("D360-API-KEY", key) }
}

func header(k, v string) reqOpt {
	return func(r *http.Request) { r.Header.Set(k, v) }
}

func basic(u, p string) reqOpt {
	return func(r *http.Request) { r.SetBasicAuth(u, p) }
}

type errorItem struct {
	Code    int    `json:"code"`
	Title   string `json:"title"`
	Details string `json:"details"`
}

type response struct {
	status int
	header http.Header
	body   []byte
	meta   map[string]string
	errors []errorItem
}

var wantMeta = map[string]string{"api_status": "stable", "version": "v2.53.0-openwaba"}

func (e *env) do(t *testing.T, method, path string, body io.Reader, opts ...reqOpt) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(req)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: res.StatusCode, header: res.Header, body: b}
	var env struct {
		Meta   map[string]any `json:"meta"`
		Errors []errorItem    `json:"errors"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("%s %s: status %d, body %q is not JSON: %v", method, path, res.StatusCode, b, err)
	}
	var gotMeta map[string]string
	if env.Meta != nil {
		gotMeta = map[string]string{}
		for k, v := range env.Meta {
			switch k {
			case "httpCode", "developerMessage", "success": // 360dialog's, TestInvalidD360KeyShape
			default:
				gotMeta[k] = fmt.Sprint(v)
			}
		}
	}
	if diff := cmp.Diff(wantMeta, gotMeta); diff != "" {
		t.Errorf("%s %s: meta mismatch (-want +got):\n%s", method, path, diff)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type = %q, want application/json", method, path, ct)
	}
	r.meta, r.errors = gotMeta, env.Errors
	return r
}

func (e *env) doJSON(t *testing.T, method, path, body string, opts ...reqOpt) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return e.do(t, method, path, rd, opts...)
}

// wantError checks the status and the single error's code (and title when
// given, and that details contain wantDetails).
func wantError(t *testing.T, r response, status, code int, wantDetails string) {
	t.Helper()
	if r.status != status || len(r.errors) != 1 || r.errors[0].Code != code {
		t.Fatalf("got status %d, errors %+v; want status %d with code %d (body %s)", r.status, r.errors, status, code, r.body)
	}
	if r.errors[0].Title == "" {
		t.Errorf("error without a title: %+v", r.errors[0])
	}
	if !strings.Contains(r.errors[0].Details, wantDetails) {
		t.Errorf("details %q do not contain %q", r.errors[0].Details, wantDetails)
	}
}

func TestFirstLogin(t *testing.T) {
	e := newEnv(t, unreachableCore(t))

	r := e.doJSON(t, "POST", "/v1/users/login", "")
	wantError(t, r, 401, 1005, "Basic")
	r = e.doJSON(t, "POST", "/v1/users/login", "", basic("admin", "wrong"))
	wantError(t, r, 401, 1005, "invalid username or password")
	r = e.doJSON(t, "POST", "/v1/users/login", "", basic("nobody", "secret"))
	wantError(t, r, 401, 1005, "invalid username or password")

	r = e.doJSON(t, "POST", "/v1/users/login", "", basic("admin", "secret"))
	wantError(t, r, 400, 1024, "new_password")
	if r.errors[0].Title != "Password Change Required" {
		t.Errorf("title = %q, want Password Change Required", r.errors[0].Title)
	}
	r = e.doJSON(t, "POST", "/v1/users/login", "{}", basic("admin", "secret"))
	wantError(t, r, 400, 1024, "")

	r = e.doJSON(t, "POST", "/v1/users/login", `{"new_password":"Weakpass1"}`, basic("admin", "secret"))
	wantError(t, r, 400, 1009, "special character")
	r = e.doJSON(t, "POST", "/v1/users/login", `{"new_password":"short"}`, basic("admin", "secret"))
	wantError(t, r, 400, 1009, "8 to 64 characters")
	r = e.doJSON(t, "POST", "/v1/users/login", `{"new_password":123}`, basic("admin", "secret"))
	wantError(t, r, 400, 1009, "new_password must be a string")
	r = e.doJSON(t, "POST", "/v1/users/login", `{"new_password":"`+adminPassword+`","x":1}`, basic("admin", "secret"))
	wantError(t, r, 400, 1010, "x")
	r = e.doJSON(t, "POST", "/v1/users/login", `{"new_password":`, basic("admin", "secret"))
	wantError(t, r, 400, 1009, "not valid JSON")

	r = e.doJSON(t, "POST", "/v1/users/login", `{"new_password":"`+adminPassword+`"}`, basic("admin", "secret"))
	if r.status != 200 {
		t.Fatalf("login with new_password: status %d, body %s", r.status, r.body)
	}
	var login struct {
		Users []struct {
			Token        string `json:"token"`
			ExpiresAfter string `json:"expires_after"`
		} `json:"users"`
	}
	if err := json.Unmarshal(r.body, &login); err != nil || len(login.Users) != 1 {
		t.Fatalf("login body %s: %v", r.body, err)
	}
	if got, want := login.Users[0].ExpiresAfter, "2026-11-28 15:29:26+00:00"; got != want {
		t.Errorf("expires_after = %q, want %q", got, want)
	}

	// The token works; the flag is cleared; the old password is gone.
	r = e.doJSON(t, "GET", "/v1/users/admin", "", bearer(login.Users[0].Token))
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"users":[{"ROLES":"ROLE_ADMIN","username":"admin"}]`)) {
		t.Errorf("GET /v1/users/admin: status %d, body %s", r.status, r.body)
	}
	r = e.doJSON(t, "POST", "/v1/users/login", "", basic("admin", adminPassword))
	if r.status != 200 {
		t.Errorf("second login: status %d, body %s", r.status, r.body)
	}
	r = e.doJSON(t, "POST", "/v1/users/login", `{"new_password":"`+adminPassword+`"}`, basic("admin", "secret"))
	wantError(t, r, 401, 1005, "")
}

// An unknown D360-API-KEY gets 360dialog's meta as well as errors[].
func TestInvalidD360KeyShape(t *testing.T) {
	f := newFixture(t)
	r := f.doJSON(t, "GET", "/v1/health", "", d360("NOSUCHKEY"+strings.Repeat("A", 40)))
	wantError(t, r, 401, 1005, "Invalid api_key or token expired")
	var body struct {
		Meta struct {
			HTTPCode         int    `json:"httpCode"`
			DeveloperMessage string `json:"developerMessage"`
			Success          *bool  `json:"success"`
			Version          string `json:"version"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if m := body.Meta; m.HTTPCode != 401 || m.DeveloperMessage != "Invalid api_key or token expired" || m.Success == nil || *m.Success || m.Version == "" {
		t.Errorf("meta = %+v (body %s); want httpCode 401, 360dialog's developerMessage, success false and the version", m, r.body)
	}
	// A bad bearer token keeps the plain on-prem envelope.
	r = f.doJSON(t, "GET", "/v1/health", "", bearer("garbage"))
	if strings.Contains(string(r.body), "developerMessage") {
		t.Errorf("a bad token answered %s; want the on-prem envelope only", r.body)
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	admin, alice, key := bearer(f.admin), bearer(f.alice), d360(f.key.Key)
	apikey := header("Authorization", "Apikey "+monitoringKey)
	text := func(extra string) string {
		return `{"to":"+49 (151) 123-4567","type":"text","text":{"body":"hi"}` + extra + `}`
	}
	many := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = `"1631555` + strings.Repeat("0", 4) + `"`
		}
		return `{"contacts":[` + strings.Join(s, ",") + `]}`
	}
	manyHeaders := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = `"X-H` + strings.Repeat("a", i+1) + `":"v"`
		}
		return `{"url":"https://example.test/hook","headers":{` + strings.Join(s, ",") + `}}`
	}

	tests := []struct {
		name         string
		method, path string
		body         string
		opts         []reqOpt
		status, code int
		details      string
	}{
		// Routing.
		{"unknown route", "GET", "/v1/nothing", "", nil, 404, 1006, "unknown path"},
		{"unknown route with credentials", "POST", "/v2/messages", "", []reqOpt{admin}, 404, 1006, ""},
		{"wrong method", "GET", "/v1/messages", "", []reqOpt{admin}, 405, 1006, ""},

		// Authentication.
		{"no credentials", "POST", "/v1/messages", text(""), nil, 401, 1005, "missing credentials"},
		{"garbage token", "POST", "/v1/messages", text(""), []reqOpt{bearer("garbage")}, 401, 1005, "invalid token"},
		{"well-formed unknown token", "GET", "/v1/health", "", []reqOpt{bearer(strings.Repeat("A", 43))}, 401, 1005, "invalid token"},
		{"empty bearer", "GET", "/v1/health", "", []reqOpt{header("Authorization", "Bearer")}, 401, 1005, ""},
		{"basic scheme on an API route", "POST", "/v1/messages", text(""), []reqOpt{basic("admin", adminPassword)}, 401, 1005, "unsupported"},
		{"unknown API key", "POST", "/v1/messages", text(""), []reqOpt{d360("NOSUCHKEY" + strings.Repeat("A", 40))}, 401, 1005, "Invalid api_key or token expired"},
		{"API key with a valid bearer is still checked first", "GET", "/v1/health", "", []reqOpt{d360("bad"), admin}, 401, 1005, "Invalid api_key"},
		{"monitoring key on messages", "POST", "/v1/messages", text(""), []reqOpt{apikey}, 401, 1005, "monitoring"},
		{"monitoring key on settings", "GET", "/v1/settings/application", "", []reqOpt{apikey}, 401, 1005, "monitoring"},
		{"wrong monitoring key on health", "GET", "/v1/health", "", []reqOpt{header("Authorization", "Apikey wrong-key-0123")}, 401, 1005, "invalid API key"},

		// Roles.
		{"user creates a user", "POST", "/v1/users", `{"username":"bobby","password":"B0bby-pass"}`, []reqOpt{alice}, 403, 1005, "admin"},
		{"user deletes a user", "DELETE", "/v1/users/alice", "", []reqOpt{alice}, 403, 1005, "admin"},
		{"user reads another user", "GET", "/v1/users/admin", "", []reqOpt{alice}, 403, 1005, ""},
		{"user reads an unknown user", "GET", "/v1/users/nobody", "", []reqOpt{alice}, 403, 1005, ""},
		{"user sets another's password", "PUT", "/v1/users/admin", `{"password":"N3w-passw0rd"}`, []reqOpt{alice}, 403, 1005, ""},
		{"user reads settings", "GET", "/v1/settings/application", "", []reqOpt{alice}, 403, 1005, "admin"},
		{"user patches settings", "PATCH", "/v1/settings/application", `{}`, []reqOpt{alice}, 403, 1005, "admin"},
		{"user resets settings", "DELETE", "/v1/settings/application", "", []reqOpt{alice}, 403, 1005, "admin"},
		{"user registers", "POST", "/v1/account", `{"cc":"1","phone_number":"6315551234","method":"sms"}`, []reqOpt{alice}, 403, 1005, "admin"},
		{"user verifies", "POST", "/v1/account/verify", `{"code":"123456"}`, []reqOpt{alice}, 403, 1005, "admin"},
		{"user creates an API key", "POST", "/v1/account/api_keys", "", []reqOpt{alice}, 403, 1005, "admin"},
		{"user lists API keys", "GET", "/v1/account/api_keys", "", []reqOpt{alice}, 403, 1005, "admin"},
		{"user sets the webhook", "POST", "/v1/configs/webhook", `{"url":"https://example.test"}`, []reqOpt{alice}, 403, 1005, "admin"},
		{"API key on users", "POST", "/v1/users", `{"username":"bobby","password":"B0bby-pass"}`, []reqOpt{key}, 403, 1005, "API keys"},
		{"API key reads a user", "GET", "/v1/users/admin", "", []reqOpt{key}, 403, 1005, "API keys"},
		{"API key logs out", "POST", "/v1/users/logout", "", []reqOpt{key}, 403, 1005, "API keys"},
		{"API key registers", "POST", "/v1/account", `{"cc":"1","phone_number":"6315551234","method":"sms"}`, []reqOpt{key}, 403, 1005, "API keys"},
		{"API key lists keys", "GET", "/v1/account/api_keys", "", []reqOpt{key}, 403, 1005, "API keys"},
		{"API key deletes a key", "DELETE", "/v1/account/api_keys/" + f.key.Prefix, "", []reqOpt{key}, 403, 1005, "API keys"},

		// Users.
		{"delete admin", "DELETE", "/v1/users/admin", "", []reqOpt{admin}, 403, 1005, "cannot be deleted"},
		{"delete unknown user", "DELETE", "/v1/users/nobody", "", []reqOpt{admin}, 404, 1006, ""},
		{"get unknown user", "GET", "/v1/users/nobody", "", []reqOpt{admin}, 404, 1006, ""},
		{"create user without password", "POST", "/v1/users", `{"username":"bobby"}`, []reqOpt{admin}, 400, 1008, "password"},
		{"create user without anything", "POST", "/v1/users", ``, []reqOpt{admin}, 400, 1008, "username"},
		{"create user, bad username", "POST", "/v1/users", `{"username":"b b","password":"B0bby-pass"}`, []reqOpt{admin}, 400, 1009, "username"},
		{"create user, weak password", "POST", "/v1/users", `{"username":"bobby","password":"bobbypass"}`, []reqOpt{admin}, 400, 1009, "digit"},
		{"create user, exists", "POST", "/v1/users", `{"username":"alice","password":"B0bby-pass"}`, []reqOpt{admin}, 409, 1004, ""},
		{"create user, extra field", "POST", "/v1/users", `{"username":"bobby","password":"B0bby-pass","role":"ADMIN"}`, []reqOpt{admin}, 400, 1010, "role"},
		{"set password, weak", "PUT", "/v1/users/alice", `{"password":"alicepass1"}`, []reqOpt{alice}, 400, 1009, "upper-case"},
		{"set password, missing", "PUT", "/v1/users/alice", `{}`, []reqOpt{alice}, 400, 1008, "password"},
		{"set password, unknown user", "PUT", "/v1/users/nobody", `{"password":"N3w-passw0rd"}`, []reqOpt{admin}, 404, 1006, ""},

		// Backup and restore.
		{"backup without a password", "POST", "/v1/settings/backup", `{}`, []reqOpt{admin}, 400, 1008, "password"},
		{"backup by an API key", "POST", "/v1/settings/backup", `{"password":"correct horse"}`, []reqOpt{key}, 403, 1005, "API keys"},
		{"backup reaches coreapp", "POST", "/v1/settings/backup/", `{"password":"correct horse"}`, []reqOpt{admin}, 503, 1014, ""},
		{"restore without data", "POST", "/v1/settings/restore", `{"password":"correct horse"}`, []reqOpt{admin}, 400, 1008, "data"},
		{"restore with an unknown field", "POST", "/v1/settings/restore", `{"password":"correct horse","data":"x","shards":2}`, []reqOpt{admin}, 400, 1010, "shards"},
		{"restore over its limit", "POST", "/v1/settings/restore", `{"password":"correct horse","data":"` + strings.Repeat("A", api.MaxRestoreBody) + `"}`, []reqOpt{admin}, 413, 1025, "larger than"},
		{"restore over the body limit of other routes reaches coreapp", "POST", "/v1/settings/restore/", `{"password":"correct horse","data":"` + strings.Repeat("A", api.MaxBody+1) + `"}`, []reqOpt{admin}, 503, 1014, ""},

		// Two-step.
		{"two-step without a pin", "POST", "/v1/settings/account/two-step", `{}`, []reqOpt{admin}, 400, 1008, "pin"},
		{"two-step, short pin", "POST", "/v1/settings/account/two-step", `{"pin":"12345"}`, []reqOpt{admin}, 400, 1009, "6 digits"},
		{"two-step, letters", "POST", "/v1/settings/account/two-step", `{"pin":"12345a"}`, []reqOpt{admin}, 400, 1009, "6 digits"},
		{"two-step, pin a number", "POST", "/v1/settings/account/two-step", `{"pin":123456}`, []reqOpt{admin}, 400, 1009, "pin"},
		{"two-step by a user", "POST", "/v1/settings/account/two-step", `{"pin":"123456"}`, []reqOpt{alice}, 403, 1005, "admin"},
		{"two-step off with a body", "DELETE", "/v1/settings/account/two-step", `{"pin":"123456"}`, []reqOpt{admin}, 400, 1010, "pin"},
		{"two-step reaches coreapp", "POST", "/v1/settings/account/two-step/", `{"pin":"123456"}`, []reqOpt{key}, 503, 1014, ""},

		// Blocks.
		{"block, reason too long", "POST", "/v1/contacts/16315551001/block", `{"reason":"` + strings.Repeat("r", 60) + `"}`, []reqOpt{key}, 400, 1009, "reason"},
		{"block, reason not a string", "POST", "/v1/contacts/16315551001/block", `{"reason":5}`, []reqOpt{key}, 400, 1009, "reason"},
		{"block, unknown field", "POST", "/v1/contacts/16315551001/block", `{"why":"x"}`, []reqOpt{key}, 400, 1010, "why"},
		{"block, not a number", "POST", "/v1/contacts/abc/block", ``, []reqOpt{key}, 400, 1009, "phone number"},
		{"unblock with a reason", "POST", "/v1/contacts/16315551001/unblock", `{"reason":"x"}`, []reqOpt{key}, 400, 1010, "reason"},
		{"block reaches coreapp", "POST", "/v1/contacts/16315551001/block", `{"reason":"` + strings.Repeat("r", 59) + `"}`, []reqOpt{alice}, 503, 1014, ""},

		// Messages.
		{"message without to", "POST", "/v1/messages", `{"text":{"body":"hi"}}`, []reqOpt{admin}, 400, 1008, "to"},
		{"message, empty body", "POST", "/v1/messages", ``, []reqOpt{admin}, 400, 1008, "to"},
		{"message, to not a string", "POST", "/v1/messages", `{"to":4915112345678,"text":{"body":"hi"}}`, []reqOpt{admin}, 400, 1009, "to must be a string"},
		{"message, to too short", "POST", "/v1/messages", `{"to":"+12 34","text":{"body":"hi"}}`, []reqOpt{admin}, 400, 1009, "5 to 20 digits"},
		{"message, to has letters", "POST", "/v1/messages", `{"to":"49151abc4567","text":{"body":"hi"}}`, []reqOpt{admin}, 400, 1009, "5 to 20 digits"},
		{"message, group recipient", "POST", "/v1/messages", text(`,"recipient_type":"group"`), []reqOpt{admin}, 400, 1002, "individual"},
		{"message, odd recipient", "POST", "/v1/messages", text(`,"recipient_type":"everyone"`), []reqOpt{admin}, 400, 1002, ""},
		{"message, image type reaches coreapp", "POST", "/v1/messages", `{"to":"4915112345678","type":"image","image":{"id":"x"}}`, []reqOpt{admin}, 503, 1014, ""},
		{"message, template without its object", "POST", "/v1/messages", `{"to":"4915112345678","type":"template"}`, []reqOpt{admin}, 400, 1008, "template is required"},
		{"message, template without namespace", "POST", "/v1/messages", `{"to":"4915112345678","type":"template","template":{"name":"x","language":{"policy":"deterministic","code":"en"}}}`, []reqOpt{admin}, 400, 2014, "namespace"},
		{"template, no components", "POST", "/v1/configs/templates", `{"name":"x","language":"en","category":"UTILITY"}`, []reqOpt{admin}, 400, 1008, "components"},
		{"template, bad category", "POST", "/v1/configs/templates", `{"name":"x","language":"en","category":"PROMO","components":[{"type":"BODY","text":"x"}]}`, []reqOpt{admin}, 400, 1009, "category"},
		{"template, unknown field", "POST", "/v1/configs/templates", `{"name":"x","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"}],"x":1}`, []reqOpt{admin}, 400, 1010, ""},
		{"template, valid reaches coreapp", "POST", "/v1/configs/templates", `{"name":"x","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"x"}]}`, []reqOpt{admin}, 503, 1014, ""},
		{"templates, bad status filter", "GET", "/v1/configs/templates?status=gone", "", []reqOpt{admin}, 400, 1009, "status"},
		{"templates, bad limit", "GET", "/v1/configs/templates?limit=5000", "", []reqOpt{admin}, 400, 1009, "limit"},
		{"templates, list reaches coreapp", "GET", "/v1/configs/templates?status=APPROVED&limit=10", "", []reqOpt{admin}, 503, 1014, ""},
		{"template delete, bad name", "DELETE", "/v1/configs/templates/Not%20A%20Name", "", []reqOpt{admin}, 404, 1006, ""},
		{"template delete, bad language", "DELETE", "/v1/configs/templates/x?language=english", "", []reqOpt{admin}, 400, 1009, "language"},
		{"message, unknown type", "POST", "/v1/messages", `{"to":"4915112345678","type":"hologram"}`, []reqOpt{admin}, 400, 1009, "unknown"},
		{"message, type not a string", "POST", "/v1/messages", `{"to":"4915112345678","type":1}`, []reqOpt{admin}, 400, 1009, "type must be a string"},
		{"message, text missing", "POST", "/v1/messages", `{"to":"4915112345678","type":"text"}`, []reqOpt{admin}, 400, 1008, "text"},
		{"message, body missing", "POST", "/v1/messages", `{"to":"4915112345678","text":{}}`, []reqOpt{admin}, 400, 1008, "text.body"},
		{"message, body empty", "POST", "/v1/messages", `{"to":"4915112345678","text":{"body":""}}`, []reqOpt{admin}, 400, 1008, "text.body"},
		{"message, body not a string", "POST", "/v1/messages", `{"to":"4915112345678","text":{"body":5}}`, []reqOpt{admin}, 400, 1009, "text.body must be a string"},
		{"message, text not an object", "POST", "/v1/messages", `{"to":"4915112345678","text":"hi"}`, []reqOpt{admin}, 400, 1009, "text must be an object"},
		{"message, unknown text field", "POST", "/v1/messages", `{"to":"4915112345678","text":{"body":"hi","bold":true}}`, []reqOpt{admin}, 400, 1010, "text.bold"},
		{"message too long", "POST", "/v1/messages", `{"to":"4915112345678","text":{"body":"` + strings.Repeat("é", 4097) + `"}}`, []reqOpt{admin}, 400, 1001, "4097"},
		{"message, unknown field", "POST", "/v1/messages", text(`,"priority":"high"`), []reqOpt{admin}, 400, 1010, "priority"},
		{"message, object of another type", "POST", "/v1/messages", text(`,"image":{"id":"x"}`), []reqOpt{admin}, 400, 1010, "image"},
		{"message, preview_url not a bool", "POST", "/v1/messages", text(`,"preview_url":"yes"`), []reqOpt{admin}, 400, 1009, "preview_url must be a boolean"},
		{"message, context without id", "POST", "/v1/messages", text(`,"context":{}`), []reqOpt{admin}, 400, 1008, "context.message_id"},
		{"message, malformed JSON", "POST", "/v1/messages", `{"to":`, []reqOpt{admin}, 400, 1009, "not valid JSON"},
		{"message, array body", "POST", "/v1/messages", `[1,2]`, []reqOpt{admin}, 400, 1009, "JSON object"},
		{"message, null body", "POST", "/v1/messages", `null`, []reqOpt{admin}, 400, 1009, "JSON object"},

		// Validation passed: coreapp is unreachable (so: accepted by the webapp).
		{"message, 4096 characters reach coreapp", "POST", "/v1/messages", `{"to":"4915112345678","text":{"body":"` + strings.Repeat("é", 4096) + `"}}`, []reqOpt{admin}, 503, 1014, "Coreapp unreachable"},
		{"message with messaging_product reaches coreapp", "POST", "/v1/messages", text(`,"messaging_product":"whatsapp","preview_url":true,"context":{"message_id":"m1"}`), []reqOpt{key}, 503, 1014, ""},
		{"message by a user reaches coreapp", "POST", "/v1/messages", text(""), []reqOpt{alice}, 503, 1014, ""},

		// Mark read.
		{"mark read without status", "PUT", "/v1/messages/abc", `{}`, []reqOpt{admin}, 400, 1008, "status"},
		{"mark delivered", "PUT", "/v1/messages/abc", `{"status":"delivered"}`, []reqOpt{admin}, 400, 1009, "read"},
		{"mark read, extra field", "PUT", "/v1/messages/abc", `{"status":"read","x":1}`, []reqOpt{admin}, 400, 1010, "x"},
		{"mark read reaches coreapp", "PUT", "/v1/messages/abc", `{"status":"read"}`, []reqOpt{key}, 503, 1014, ""},

		// Contacts.
		{"contacts missing", "POST", "/v1/contacts", `{"blocking":"wait"}`, []reqOpt{admin}, 400, 1008, "contacts"},
		{"contacts empty", "POST", "/v1/contacts", `{"contacts":[]}`, []reqOpt{admin}, 400, 1009, "empty"},
		{"contacts not an array", "POST", "/v1/contacts", `{"contacts":"+1 631 555 1001"}`, []reqOpt{admin}, 400, 1009, "array of strings"},
		{"contacts of numbers", "POST", "/v1/contacts", `{"contacts":[16315551001]}`, []reqOpt{admin}, 400, 1009, "array of strings"},
		{"too many contacts", "POST", "/v1/contacts", many(1001), []reqOpt{admin}, 400, 1009, "1001"},
		{"contacts, bad blocking", "POST", "/v1/contacts", `{"contacts":["1"],"blocking":"maybe"}`, []reqOpt{admin}, 400, 1009, "blocking"},
		{"contacts, bad force_check", "POST", "/v1/contacts", `{"contacts":["1"],"force_check":"no"}`, []reqOpt{admin}, 400, 1009, "force_check"},
		{"contacts, extra field", "POST", "/v1/contacts", `{"contacts":["1"],"cache":false}`, []reqOpt{admin}, 400, 1010, "cache"},
		{"1000 contacts reach coreapp", "POST", "/v1/contacts", many(1000), []reqOpt{key}, 503, 1014, ""},

		// Registration.
		{"register, nothing", "POST", "/v1/account", `{}`, []reqOpt{admin}, 400, 1008, "cc"},
		{"register, no method", "POST", "/v1/account", `{"cc":"1","phone_number":"6315551234"}`, []reqOpt{admin}, 400, 1008, "method"},
		{"register, bad cc", "POST", "/v1/account", `{"cc":"1234","phone_number":"6315551234","method":"sms"}`, []reqOpt{admin}, 400, 1009, "cc"},
		{"register, cc as a number", "POST", "/v1/account", `{"cc":1,"phone_number":"6315551234","method":"sms"}`, []reqOpt{admin}, 400, 1009, "cc must be a string"},
		{"register, bad number", "POST", "/v1/account", `{"cc":"1","phone_number":"631-555","method":"sms"}`, []reqOpt{admin}, 400, 1009, "phone_number"},
		{"register, bad method", "POST", "/v1/account", `{"cc":"1","phone_number":"6315551234","method":"fax"}`, []reqOpt{admin}, 400, 1009, "method"},
		{"register, bad pin", "POST", "/v1/account", `{"cc":"1","phone_number":"6315551234","method":"sms","pin":"12"}`, []reqOpt{admin}, 400, 1009, "pin"},
		{"register, extra field", "POST", "/v1/account", `{"cc":"1","phone_number":"6315551234","method":"sms","shards":2}`, []reqOpt{admin}, 400, 1010, "shards"},
		{"register reaches coreapp", "POST", "/v1/account", `{"cc":"1","phone_number":"6315551234","method":"voice","pin":"123456","cert":"Q2VydA=="}`, []reqOpt{admin}, 503, 1014, ""},
		{"verify, no code", "POST", "/v1/account/verify", `{}`, []reqOpt{admin}, 400, 1008, "code"},

		// Shards.
		{"user sets shards", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":2}`, []reqOpt{alice}, 403, 1005, "admin"},
		{"user reads shards", "GET", "/v1/account/shards", "", []reqOpt{alice}, 403, 1005, "admin"},
		{"API key sets shards", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":2}`, []reqOpt{key}, 403, 1005, "API keys"},
		{"API key reads shards", "GET", "/v1/account/shards", "", []reqOpt{key}, 403, 1005, "API keys"},
		{"monitoring key reads shards", "GET", "/v1/account/shards", "", []reqOpt{apikey}, 401, 1005, "monitoring"},
		{"shards without credentials", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":2}`, nil, 401, 1005, ""},
		{"shards, nothing", "POST", "/v1/account/shards", ``, []reqOpt{admin}, 400, 1008, "cc"},
		{"shards, no phone_number", "POST", "/v1/account/shards", `{"cc":"1","shards":2}`, []reqOpt{admin}, 400, 1008, "phone_number"},
		{"shards, empty cc", "POST", "/v1/account/shards", `{"cc":"","phone_number":"6315551234","shards":2}`, []reqOpt{admin}, 400, 1008, "cc"},
		{"shards, no shards", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234"}`, []reqOpt{admin}, 400, 1008, "shards"},
		{"shards, null shards", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":null}`, []reqOpt{admin}, 400, 1008, "shards"},
		{"shards, 3", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":3}`, []reqOpt{admin}, 400, 1009, "1, 2, 4, 8, 16 or 32"},
		{"shards, 0", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":0}`, []reqOpt{admin}, 400, 1009, "shards"},
		{"shards, 64", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":64}`, []reqOpt{admin}, 400, 1009, "shards"},
		{"shards, -2", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":-2}`, []reqOpt{admin}, 400, 1009, "shards"},
		{"shards, 2.5", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":2.5}`, []reqOpt{admin}, 400, 1009, "shards"},
		{"shards as a string", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":"2"}`, []reqOpt{admin}, 400, 1009, "shards must be a number"},
		{"shards, cc as a number", "POST", "/v1/account/shards", `{"cc":1,"phone_number":"6315551234","shards":2}`, []reqOpt{admin}, 400, 1009, "cc must be a string"},
		{"shards, bad cc", "POST", "/v1/account/shards", `{"cc":"+1","phone_number":"6315551234","shards":2}`, []reqOpt{admin}, 400, 1009, "cc"},
		{"shards, bad number", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"631 555","shards":2}`, []reqOpt{admin}, 400, 1009, "phone_number"},
		{"shards, bad pin", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":2,"pin":"12a456"}`, []reqOpt{admin}, 400, 1009, "pin"},
		{"shards, cert not a string", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":2,"cert":1}`, []reqOpt{admin}, 400, 1009, "cert must be a string"},
		{"shards with a cert reach coreapp", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":2,"cert":"Q2VydA=="}`, []reqOpt{admin}, 503, 1014, ""},
		{"shards, unknown field", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":2,"method":"sms"}`, []reqOpt{admin}, 400, 1010, "method"},
		{"shards, malformed", "POST", "/v1/account/shards", `{"cc":`, []reqOpt{admin}, 400, 1009, "JSON"},
		{"shards reach coreapp", "POST", "/v1/account/shards", `{"cc":"1","phone_number":"6315551234","shards":32,"pin":"123456"}`, []reqOpt{admin}, 503, 1014, ""},
		{"get shards reaches coreapp", "GET", "/v1/account/shards", "", []reqOpt{admin}, 503, 1014, ""},
		{"delete shards", "DELETE", "/v1/account/shards", "", []reqOpt{admin}, 405, 1006, ""},
		{"verify, bad code", "POST", "/v1/account/verify", `{"code":"12345"}`, []reqOpt{admin}, 400, 1009, "6 digits"},
		{"verify, extra field", "POST", "/v1/account/verify", `{"code":"123456","pin":"1"}`, []reqOpt{admin}, 400, 1010, "pin"},

		// API keys.
		{"API key, bad wa_id", "POST", "/v1/account/api_keys", `{"wa_id":"abc"}`, []reqOpt{admin}, 400, 1009, "wa_id"},
		{"API key, extra field", "POST", "/v1/account/api_keys", `{"name":"x"}`, []reqOpt{admin}, 400, 1010, "name"},
		{"API key creation asks coreapp", "POST", "/v1/account/api_keys", ``, []reqOpt{admin}, 503, 1014, ""},
		{"delete unknown API key", "DELETE", "/v1/account/api_keys/NOSUCHKY", "", []reqOpt{admin}, 404, 1006, ""},

		// Settings.
		{"patch settings, array", "PATCH", "/v1/settings/application", `[1]`, []reqOpt{admin}, 400, 1009, "JSON object"},
		{"patch settings, string", "PATCH", "/v1/settings/application", `"x"`, []reqOpt{admin}, 400, 1009, "JSON object"},
		{"patch settings, null", "PATCH", "/v1/settings/application", `null`, []reqOpt{admin}, 400, 1009, "JSON object"},
		{"patch settings, empty", "PATCH", "/v1/settings/application", ``, []reqOpt{admin}, 400, 1009, "JSON object"},
		{"patch settings, malformed", "PATCH", "/v1/settings/application", `{"sent_status":`, []reqOpt{admin}, 400, 1009, "JSON object"},
		{"patch settings reaches coreapp", "PATCH", "/v1/settings/application", `{"sent_status":true}`, []reqOpt{key}, 503, 1014, ""},
		{"get settings reaches coreapp", "GET", "/v1/settings/application", "", []reqOpt{admin}, 503, 1014, ""},

		// Webhook configuration.
		{"webhook without url", "POST", "/v1/configs/webhook", `{"headers":{}}`, []reqOpt{admin}, 400, 1008, "url"},
		{"webhook, ftp url", "POST", "/v1/configs/webhook", `{"url":"ftp://example.test"}`, []reqOpt{admin}, 400, 1009, "url"},
		{"webhook, relative url", "POST", "/v1/configs/webhook", `{"url":"/hook"}`, []reqOpt{admin}, 400, 1009, "url"},
		{"webhook, bad header name", "POST", "/v1/configs/webhook", `{"url":"https://example.test","headers":{"Bad Name":"v"}}`, []reqOpt{admin}, 400, 1009, "header name"},
		{"webhook, header value with newline", "POST", "/v1/configs/webhook", `{"url":"https://example.test","headers":{"X-A":"a\nb"}}`, []reqOpt{admin}, 400, 1009, "X-A"},
		{"webhook, header value too long", "POST", "/v1/configs/webhook", `{"url":"https://example.test","headers":{"X-A":"` + strings.Repeat("v", 1025) + `"}}`, []reqOpt{admin}, 400, 1009, "1024"},
		{"webhook, headers not strings", "POST", "/v1/configs/webhook", `{"url":"https://example.test","headers":{"X-A":1}}`, []reqOpt{admin}, 400, 1009, "headers"},
		{"webhook, too many headers", "POST", "/v1/configs/webhook", manyHeaders(21), []reqOpt{admin}, 400, 1009, "21"},
		{"webhook, 20 headers reach coreapp", "POST", "/v1/configs/webhook", manyHeaders(20), []reqOpt{key}, 503, 1014, ""},

		// Health and phone number.
		{"health with the monitoring key", "GET", "/v1/health", "", []reqOpt{apikey}, 503, 1014, ""},
		{"health with a user token", "GET", "/v1/health", "", []reqOpt{alice}, 503, 1014, ""},
		{"health with an API key", "GET", "/v1/health", "", []reqOpt{key}, 503, 1014, ""},
		{"health without credentials", "GET", "/v1/health", "", nil, 401, 1005, ""},
		{"phone number with an API key", "GET", "/v1/configs/phone_number", "", []reqOpt{key}, 503, 1014, ""},
		{"phone number with the monitoring key", "GET", "/v1/configs/phone_number", "", []reqOpt{apikey}, 401, 1005, ""},

		// Request ids.
		{"request id too long", "GET", "/v1/health", "", []reqOpt{admin, header("X-Request-Id", strings.Repeat("r", 65))}, 400, 1009, "X-Request-Id"},
		{"request id with a space", "GET", "/v1/health", "", []reqOpt{admin, header("X-Request-Id", "a b")}, 400, 1009, "X-Request-Id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.doJSON(t, tt.method, tt.path, tt.body, tt.opts...)
			wantError(t, r, tt.status, tt.code, tt.details)
			if r.header.Get("X-Request-Id") == "" {
				t.Errorf("no X-Request-Id in the response")
			}
		})
	}
}

func TestOversizeBody(t *testing.T) {
	f := newFixture(t)
	big := `{"to":"4915112345678","text":{"body":"` + strings.Repeat("a", 2<<20) + `"}}`
	// With Content-Length, refused before reading.
	r := f.do(t, "POST", "/v1/messages", strings.NewReader(big), bearer(f.admin))
	wantError(t, r, 413, 1025, "larger than 1048576 bytes")
	// Chunked, refused while reading.
	r = f.do(t, "POST", "/v1/messages", io.MultiReader(strings.NewReader(big)), bearer(f.admin))
	wantError(t, r, 413, 1025, "larger than 1048576 bytes")
	r = f.do(t, "PATCH", "/v1/settings/application", io.MultiReader(strings.NewReader(`{"x":"`+strings.Repeat("a", 2<<20)+`"}`)), bearer(f.admin))
	wantError(t, r, 413, 1025, "")
}

func TestTokenLifecycle(t *testing.T) {
	f := newFixture(t)

	// Logout revokes only the presented token.
	other, err := f.store.Login(t.Context(), "", "alice", alicePassword, "")
	if err != nil {
		t.Fatal(err)
	}
	r := f.doJSON(t, "POST", "/v1/users/logout", "", bearer(f.alice))
	if r.status != 200 || string(bytes.TrimSpace(r.body)) != `{"meta":{"api_status":"stable","version":"v2.53.0-openwaba"}}` {
		t.Fatalf("logout: status %d, body %s", r.status, r.body)
	}
	r = f.doJSON(t, "GET", "/v1/users/alice", "", bearer(f.alice))
	wantError(t, r, 401, 1005, "invalid token")
	r = f.doJSON(t, "GET", "/v1/users/alice", "", bearer(other.Value))
	if r.status != 200 || !bytes.Contains(r.body, []byte(`{"ROLES":"ROLE_USER","username":"alice"}`)) {
		t.Errorf("other token after logout: status %d, body %s", r.status, r.body)
	}

	// The own password change keeps the token that made it; deleting the user revokes it.
	r = f.doJSON(t, "PUT", "/v1/users/alice", `{"password":"N3w-al1ce-pass"}`, bearer(other.Value))
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"users":[{"username":"alice"}]`)) {
		t.Errorf("PUT own password: status %d, body %s", r.status, r.body)
	}
	r = f.doJSON(t, "DELETE", "/v1/users/alice", "", bearer(f.admin))
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"users":[{"username":"alice"}]`)) {
		t.Errorf("DELETE alice: status %d, body %s", r.status, r.body)
	}
	r = f.doJSON(t, "GET", "/v1/users/alice", "", bearer(other.Value))
	wantError(t, r, 401, 1005, "invalid token")

	// Tokens expire after 7 days.
	f.clk.Advance(7 * 24 * time.Hour)
	r = f.doJSON(t, "GET", "/v1/health", "", bearer(f.admin))
	wantError(t, r, 401, 1005, "expired")
}

func TestUserManagement(t *testing.T) {
	f := newFixture(t)
	r := f.doJSON(t, "POST", "/v1/users", `{"username":"bobby","password":"B0bby-pass"}`, bearer(f.admin))
	if r.status != 201 || !bytes.Contains(r.body, []byte(`"users":[{"username":"bobby"}]`)) {
		t.Fatalf("create: status %d, body %s", r.status, r.body)
	}
	r = f.doJSON(t, "POST", "/v1/users/login", "", basic("bobby", "B0bby-pass"))
	if r.status != 200 {
		t.Fatalf("login as bobby: status %d, body %s", r.status, r.body)
	}
	r = f.doJSON(t, "GET", "/v1/users/bobby", "", bearer(f.admin))
	if r.status != 200 || !bytes.Contains(r.body, []byte(`{"ROLES":"ROLE_USER","username":"bobby"}`)) {
		t.Errorf("get: status %d, body %s", r.status, r.body)
	}
}

func TestAPIKeyManagement(t *testing.T) {
	f := newFixture(t)

	// A working key reaches coreapp (unreachable here: 503).
	r := f.doJSON(t, "POST", "/v1/contacts", `{"contacts":["+1 631 555 1001"]}`, d360(f.key.Key))
	wantError(t, r, 503, 1014, "")

	r = f.doJSON(t, "GET", "/v1/account/api_keys", "", bearer(f.admin))
	want := `{"api_keys":[{"prefix":"` + f.key.Prefix + `","wa_id":"` + keyNumber + `","created_by":"admin","created_at":"2026-11-21 15:29:26+00:00"}],` +
		`"meta":{"api_status":"stable","version":"v2.53.0-openwaba"}}`
	if diff := cmp.Diff(want, string(bytes.TrimSpace(r.body))); r.status != 200 || diff != "" {
		t.Errorf("list: status %d, body mismatch (-want +got):\n%s", r.status, diff)
	}

	r = f.doJSON(t, "DELETE", "/v1/account/api_keys/"+f.key.Prefix, "", bearer(f.admin))
	if r.status != 200 {
		t.Fatalf("delete: status %d, body %s", r.status, r.body)
	}
	r = f.doJSON(t, "POST", "/v1/contacts", `{"contacts":["+1 631 555 1001"]}`, d360(f.key.Key))
	wantError(t, r, 401, 1005, "Invalid api_key")
	r = f.doJSON(t, "GET", "/v1/account/api_keys", "", bearer(f.admin))
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"api_keys":[]`)) {
		t.Errorf("list after delete: status %d, body %s", r.status, r.body)
	}
}

func TestRequestIDIsEchoed(t *testing.T) {
	f := newFixture(t)
	r := f.doJSON(t, "GET", "/v1/nothing", "", header("X-Request-Id", "client-id-1"))
	if got := r.header.Get("X-Request-Id"); got != "client-id-1" {
		t.Errorf("X-Request-Id = %q, want client-id-1", got)
	}
	r1 := f.doJSON(t, "GET", "/v1/nothing", "")
	r2 := f.doJSON(t, "GET", "/v1/nothing", "")
	if a, b := r1.header.Get("X-Request-Id"), r2.header.Get("X-Request-Id"); a == "" || a == b {
		t.Errorf("generated ids %q and %q: want distinct, non-empty", a, b)
	}
}
