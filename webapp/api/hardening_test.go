package api_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
)

// TestLoginThrottledAcrossWebapps: failures on one webapp block the user on
// another (the count is in the database): 429 with Retry-After and the
// on-prem envelope, even with the right password.
func TestLoginThrottledAcrossWebapps(t *testing.T) {
	d := dbtest.New(t, db.Core)
	clk := &clock{t: time.Date(2026, 11, 21, 15, 29, 26, 0, time.UTC)}
	a, b := newEnvOn(t, d, clk, unreachableCore(t)), newEnvOn(t, d, clk, unreachableCore(t))
	if r := a.doJSON(t, "POST", "/v1/users/login", `{"new_password":"`+adminPassword+`"}`, basic("admin", "secret")); r.status != 200 {
		t.Fatalf("first login: %d %s", r.status, r.body)
	}
	for i := range 6 {
		e := a
		if i%2 == 1 {
			e = b
		}
		wantError(t, e.doJSON(t, "POST", "/v1/users/login", "", basic("admin", "wrong")), 401, 1005, "invalid username or password")
	}
	r := b.doJSON(t, "POST", "/v1/users/login", "", basic("admin", adminPassword))
	wantError(t, r, 429, 1015, "too many failed logins")
	if ra := r.header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After = %q, want 1", ra)
	}
	clk.Advance(2 * time.Second)
	if r := a.doJSON(t, "POST", "/v1/users/login", "", basic("admin", adminPassword)); r.status != 200 {
		t.Fatalf("login after the block: %d %s", r.status, r.body)
	}
}

// TestPasswordChangeRevokesOtherTokens: PUT /v1/users/{u} revokes every
// other token of the user; the admin's change revokes all of them.
func TestPasswordChangeRevokesOtherTokens(t *testing.T) {
	f := newFixture(t)
	second, err := f.store.Login(t.Context(), "", "alice", alicePassword, "")
	if err != nil {
		t.Fatal(err)
	}
	if r := f.doJSON(t, "GET", "/v1/users/alice", "", bearer(second.Value)); r.status != 200 {
		t.Fatalf("second token: %d", r.status)
	}
	if r := f.doJSON(t, "PUT", "/v1/users/alice", `{"password":"An0ther-Secret"}`, bearer(f.alice)); r.status != 200 {
		t.Fatalf("password change: %d %s", r.status, r.body)
	}
	wantError(t, f.doJSON(t, "GET", "/v1/users/alice", "", bearer(second.Value)), 401, 1005, "invalid token")
	if r := f.doJSON(t, "GET", "/v1/users/alice", "", bearer(f.alice)); r.status != 200 {
		t.Errorf("the token that changed the password: %d, want it kept", r.status)
	}
	if r := f.doJSON(t, "PUT", "/v1/users/alice", `{"password":"Adm1n-Set-This"}`, bearer(f.admin)); r.status != 200 {
		t.Fatalf("admin's password change: %d %s", r.status, r.body)
	}
	wantError(t, f.doJSON(t, "GET", "/v1/users/alice", "", bearer(f.alice)), 401, 1005, "invalid token")
	// A common password is refused at every set.
	wantError(t, f.doJSON(t, "PUT", "/v1/users/admin", `{"password":"Password1!"}`, bearer(f.admin)), 400, 1009, "common")
	wantError(t, f.doJSON(t, "POST", "/v1/users", `{"username":"bobby","password":"Welcome@2026"}`, bearer(f.admin)), 400, 1009, "common")
}

// TestResponseHeaders: HSTS and no-store on every response (tokens and keys
// included); oversized headers get the envelope.
func TestResponseHeaders(t *testing.T) {
	f := newFixture(t)
	for _, r := range []response{
		f.doJSON(t, "POST", "/v1/users/login", "", basic("alice", alicePassword)),
		f.doJSON(t, "POST", "/v1/account/api_keys", "", bearer(f.admin)),
		f.doJSON(t, "GET", "/v1/nope", ""),
	} {
		if got := r.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store (%s)", got, r.body)
		}
		if got := r.header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
			t.Errorf("Strict-Transport-Security = %q", got)
		}
	}
	r := f.doJSON(t, "GET", "/v1/health", "", bearer(f.admin), header("X-Big", strings.Repeat("x", 70<<10)))
	wantError(t, r, 431, 1025, "headers are larger than")
}

// TestSlowLoginBody: an unauthenticated request that does not send the body
// it announced loses its connection after PublicReadTimeout, long before the
// server's read timeout.
func TestSlowLoginBody(t *testing.T) {
	e := newEnv(t, unreachableCore(t))
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /v1/users/login HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46c2VjcmV0\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.ReadAll(conn) // an error answer, then the close; or just the close
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a login body that never came held the connection for %v", d)
	}
}
