package api_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
)

// TestWebappsSideBySide: two webapps on one database (each with its own
// in-memory cache), a client switching between them on every call. What one
// does the other sees at once (logins, users, passwords), except the
// revocation of a credential the other has cached: that takes at most the
// cache TTL (10 s).
func TestWebappsSideBySide(t *testing.T) {
	d := dbtest.New(t, db.Core)
	clk := &clock{t: time.Date(2026, 11, 21, 15, 29, 26, 0, time.UTC)}
	core := unreachableCore(t)
	a, b := newEnvOn(t, d, clk, core), newEnvOn(t, d, clk, core)
	const ttl = 10 * time.Second

	login := func(t *testing.T, e *env, opts ...reqOpt) string {
		t.Helper()
		r := e.doJSON(t, "POST", "/v1/users/login", "", opts...)
		return tokenOf(t, r)
	}
	// authenticated reports whether GET /v1/health passed authentication
	// (coreapp is unreachable: 503 means it got that far).
	authenticated := func(t *testing.T, e *env, opt reqOpt) bool {
		t.Helper()
		r := e.doJSON(t, "GET", "/v1/health", "", opt)
		if r.status != 503 && r.status != 401 {
			t.Fatalf("health: status %d, body %s", r.status, r.body)
		}
		return r.status == 503
	}

	// The first login changes the password on A; the token works on B.
	r := a.doJSON(t, "POST", "/v1/users/login", `{"new_password":"`+adminPassword+`"}`, basic("admin", "secret"))
	admin := tokenOf(t, r)
	if !authenticated(t, b, bearer(admin)) {
		t.Fatal("a token issued by webapp A is refused by webapp B")
	}
	if r := b.doJSON(t, "POST", "/v1/users/login", "", basic("admin", "secret")); r.status != 401 {
		t.Errorf("the initial password still works on B after A changed it: status %d", r.status)
	}

	// A user created on B logs in on A, and changes its password on A: B
	// takes the new password and refuses the old one at once.
	if r := b.doJSON(t, "POST", "/v1/users", `{"username":"alice","password":"`+alicePassword+`"}`, bearer(admin)); r.status != 201 {
		t.Fatalf("create alice on B: status %d, body %s", r.status, r.body)
	}
	alice := login(t, a, basic("alice", alicePassword))
	if !authenticated(t, b, bearer(alice)) { // now cached on B
		t.Fatal("alice's token from A is refused by B")
	}
	if r := a.doJSON(t, "PUT", "/v1/users/alice", `{"password":"N3w-al1ce-pass"}`, bearer(alice)); r.status != 200 {
		t.Fatalf("password change on A: status %d, body %s", r.status, r.body)
	}
	if r := b.doJSON(t, "POST", "/v1/users/login", "", basic("alice", alicePassword)); r.status != 401 {
		t.Errorf("the old password still works on B: status %d", r.status)
	}
	alice2 := login(t, b, basic("alice", "N3w-al1ce-pass"))

	// Logout on A: refused on A at once, on B once its cache entry is older
	// than the TTL.
	if r := a.doJSON(t, "POST", "/v1/users/logout", "", bearer(alice)); r.status != 200 {
		t.Fatalf("logout on A: status %d, body %s", r.status, r.body)
	}
	if authenticated(t, a, bearer(alice)) {
		t.Error("a logged-out token is accepted by the webapp that logged it out")
	}
	clk.Advance(ttl)
	if authenticated(t, b, bearer(alice)) {
		t.Errorf("a token logged out on A is still accepted by B after %v", ttl)
	}
	if !authenticated(t, b, bearer(alice2)) {
		t.Error("logging out one token revoked another")
	}

	// An API key deleted on B: refused on B at once, on A within the TTL.
	key, err := a.store.CreateAPIKey(t.Context(), keyNumber, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if !authenticated(t, a, d360(key.Key)) || !authenticated(t, b, d360(key.Key)) {
		t.Fatal("a new API key is refused")
	}
	if r := b.doJSON(t, "DELETE", "/v1/account/api_keys/"+key.Prefix, "", bearer(admin)); r.status != 200 {
		t.Fatalf("delete key on B: status %d, body %s", r.status, r.body)
	}
	if authenticated(t, b, d360(key.Key)) {
		t.Error("a deleted API key is accepted by the webapp that deleted it")
	}
	clk.Advance(ttl)
	if authenticated(t, a, d360(key.Key)) {
		t.Errorf("an API key deleted on B is still accepted by A after %v", ttl)
	}

	// A user deleted on B: its tokens are refused on A within the TTL.
	if !authenticated(t, a, bearer(alice2)) { // cached on A
		t.Fatal("alice's second token is refused by A")
	}
	if r := b.doJSON(t, "DELETE", "/v1/users/alice", "", bearer(admin)); r.status != 200 {
		t.Fatalf("delete alice on B: status %d, body %s", r.status, r.body)
	}
	clk.Advance(ttl)
	if authenticated(t, a, bearer(alice2)) {
		t.Errorf("the token of a user deleted on B is still accepted by A after %v", ttl)
	}
}

// tokenOf returns the token of a successful login response.
func tokenOf(t *testing.T, r response) string {
	t.Helper()
	var body struct {
		Users []struct {
			Token string `json:"token"`
		} `json:"users"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || r.status != 200 || len(body.Users) != 1 || body.Users[0].Token == "" {
		t.Fatalf("login: status %d, body %s", r.status, r.body)
	}
	return body.Users[0].Token
}
