package auth_test

import (
	"crypto/sha256"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/crypto/bcrypt"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/webapp/auth"
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

func newStore(t *testing.T) (*auth.Store, *clock, *sql.DB) {
	t.Helper()
	d := dbtest.New(t, db.Core)
	clk := &clock{t: time.Date(2026, 11, 21, 15, 29, 26, 0, time.UTC)}
	s := auth.New(d, auth.Options{BcryptCost: bcrypt.MinCost, Now: clk.Now})
	if err := s.SeedAdmin(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, clk, d
}

const goodPassword = "Adm1n-Passw0rd!"

// adminToken completes the first login and returns a token.
func adminToken(t *testing.T, s *auth.Store) auth.Token {
	t.Helper()
	tok, err := s.Login(t.Context(), "", auth.AdminUsername, auth.AdminInitialPassword, goodPassword)
	if err != nil {
		t.Fatalf("first login: %v", err)
	}
	return tok
}

func TestSeedAdminIsIdempotentAcrossWebapps(t *testing.T) {
	s, clk, d := newStore(t)
	// A second webapp on the same database, seeding concurrently with a third.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			other := auth.New(d, auth.Options{BcryptCost: bcrypt.MinCost, Now: clk.Now})
			if err := other.SeedAdmin(t.Context()); err != nil {
				t.Errorf("SeedAdmin: %v", err)
			}
		})
	}
	wg.Wait()
	u, err := s.GetUser(t.Context(), auth.AdminUsername)
	if err != nil {
		t.Fatal(err)
	}
	want := auth.User{Username: "admin", Role: auth.RoleAdmin, PasswordChangeRequired: true}
	if diff := cmp.Diff(want, u, cmpopts.IgnoreFields(auth.User{}, "CreatedAt", "UpdatedAt")); diff != "" {
		t.Errorf("admin mismatch (-want +got):\n%s", diff)
	}
	// Seeding again must not reset a changed password.
	adminToken(t, s)
	if err := s.SeedAdmin(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(t.Context(), "", "admin", goodPassword, ""); err != nil {
		t.Errorf("login with the changed password after a second seed: %v", err)
	}
}

func TestFirstLoginFlow(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := t.Context()

	if _, err := s.Login(ctx, "", "admin", "wrong", ""); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("wrong password: err = %v, want ErrInvalidCredentials", err)
	}
	if _, err := s.Login(ctx, "", "nobody", "secret", ""); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("unknown user: err = %v, want ErrInvalidCredentials", err)
	}
	if _, err := s.Login(ctx, "", "admin", "wrong", goodPassword); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("wrong password with new_password: err = %v, want ErrInvalidCredentials", err)
	}
	if _, err := s.Login(ctx, "", "admin", "secret", ""); !errors.Is(err, auth.ErrPasswordChangeRequired) {
		t.Errorf("first login without new password: err = %v, want ErrPasswordChangeRequired", err)
	}
	var ie *auth.InvalidError
	if _, err := s.Login(ctx, "", "admin", "secret", "weakpass"); !errors.As(err, &ie) {
		t.Errorf("first login with a weak new password: err = %v, want *InvalidError", err)
	}

	tok := adminToken(t, s)
	if got, want := tok.ExpiresAt, time.Date(2026, 11, 28, 15, 29, 26, 0, time.UTC); !got.Equal(want) {
		t.Errorf("ExpiresAt = %v, want %v (7 days)", got, want)
	}
	sess, err := s.ValidateToken(ctx, tok.Value)
	if err != nil {
		t.Fatal(err)
	}
	if sess.Username != "admin" || sess.Role != auth.RoleAdmin {
		t.Errorf("session = %+v, want admin/ADMIN", sess)
	}
	if _, err := s.Login(ctx, "", "admin", "secret", ""); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("old password after change: err = %v, want ErrInvalidCredentials", err)
	}
	if _, err := s.Login(ctx, "", "admin", goodPassword, ""); err != nil {
		t.Errorf("login with the new password, no change required any more: %v", err)
	}
	u, err := s.GetUser(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if u.PasswordChangeRequired {
		t.Errorf("password_change_required still set after the change")
	}
}

func TestTokenExpiry(t *testing.T) {
	s, clk, _ := newStore(t)
	ctx := t.Context()
	tok := adminToken(t, s)

	clk.Advance(7*24*time.Hour - time.Millisecond)
	if _, err := s.ValidateToken(ctx, tok.Value); err != nil {
		t.Fatalf("token 1 ms before expiry: %v", err)
	}
	clk.Advance(time.Millisecond) // cached, but the cache never outlives the token
	if _, err := s.ValidateToken(ctx, tok.Value); !errors.Is(err, auth.ErrTokenExpired) {
		t.Errorf("token at expiry: err = %v, want ErrTokenExpired", err)
	}
}

func TestTokenRevocation(t *testing.T) {
	s, clk, d := newStore(t)
	ctx := t.Context()
	tok := adminToken(t, s)
	if _, err := s.ValidateToken(ctx, tok.Value); err != nil { // now cached
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, tok.Value); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ValidateToken(ctx, tok.Value); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("revoked token: err = %v, want ErrInvalidToken at once", err)
	}

	// A token revoked by another webapp (row deleted) keeps working here for
	// at most the cache TTL.
	tok2, err := s.Login(ctx, "", "admin", goodPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ValidateToken(ctx, tok2.Value); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(tok2.Value))
	if _, err := d.Exec("DELETE FROM tokens WHERE hash = ?", h[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ValidateToken(ctx, tok2.Value); err != nil {
		t.Errorf("within the cache TTL: err = %v, want the cached session", err)
	}
	clk.Advance(10 * time.Second)
	if _, err := s.ValidateToken(ctx, tok2.Value); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("after the cache TTL: err = %v, want ErrInvalidToken", err)
	}

	for _, garbage := range []string{"", "x", tok.Value + "x", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		if _, err := s.ValidateToken(ctx, garbage); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("ValidateToken(%q) = %v, want ErrInvalidToken", garbage, err)
		}
	}
}

func TestUsers(t *testing.T) {
	s, _, d := newStore(t)
	ctx := t.Context()
	if err := s.CreateUser(ctx, "alice", "Al1ce-pass"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, "alice", "Al1ce-pass"); !errors.Is(err, auth.ErrUserExists) {
		t.Errorf("duplicate: err = %v, want ErrUserExists", err)
	}
	if err := s.CreateUser(ctx, "admin", "Al1ce-pass"); !errors.Is(err, auth.ErrUserExists) {
		t.Errorf("admin again: err = %v, want ErrUserExists", err)
	}
	var ie *auth.InvalidError
	if err := s.CreateUser(ctx, "bob", "Al1ce-pass"); !errors.As(err, &ie) || ie.Field != "username" {
		t.Errorf("short username: err = %v, want *InvalidError for username", err)
	}
	if err := s.CreateUser(ctx, "bobby", "short"); !errors.As(err, &ie) || ie.Field != "password" {
		t.Errorf("weak password: err = %v, want *InvalidError for password", err)
	}
	u, err := s.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if u.Role != auth.RoleUser || u.PasswordChangeRequired {
		t.Errorf("alice = %+v, want role USER without a pending change", u)
	}
	if _, err := s.GetUser(ctx, "nobody"); !errors.Is(err, auth.ErrUserNotFound) {
		t.Errorf("GetUser(nobody) = %v, want ErrUserNotFound", err)
	}

	// Changing the password revokes the user's other tokens and keeps the
	// one that made the change.
	tok, err := s.Login(ctx, "", "alice", "Al1ce-pass", "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Login(ctx, "", "alice", "Al1ce-pass", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ValidateToken(ctx, other.Value); err != nil { // cached now
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, "alice", "N3w-al1ce-pass", tok.Value); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ValidateToken(ctx, tok.Value); err != nil {
		t.Errorf("the token that changed the password: %v", err)
	}
	if _, err := s.ValidateToken(ctx, other.Value); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("another token after the password change: %v, want ErrInvalidToken", err)
	}
	if err := s.SetPassword(ctx, "alice", "Alice-pass-2!", ""); err == nil || !strings.Contains(err.Error(), "username") {
		t.Errorf("a password containing the username = %v, want refused", err)
	}
	if err := s.SetPassword(ctx, "nobody", "N3w-al1ce-pass", ""); !errors.Is(err, auth.ErrUserNotFound) {
		t.Errorf("SetPassword(nobody) = %v, want ErrUserNotFound", err)
	}

	// Deleting a user revokes its tokens, here and in the database.
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ValidateToken(ctx, tok.Value); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("token of a deleted user: err = %v, want ErrInvalidToken", err)
	}
	var n int
	if err := d.QueryRow("SELECT COUNT(*) FROM tokens WHERE username = 'alice'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d tokens of the deleted user left", n)
	}
	if err := s.DeleteUser(ctx, "alice"); !errors.Is(err, auth.ErrUserNotFound) {
		t.Errorf("second delete: err = %v, want ErrUserNotFound", err)
	}
	if err := s.DeleteUser(ctx, "admin"); !errors.Is(err, auth.ErrAdminUndeletable) {
		t.Errorf("delete admin: err = %v, want ErrAdminUndeletable", err)
	}
}

func TestAPIKeys(t *testing.T) {
	s, clk, _ := newStore(t)
	ctx := t.Context()

	k1, err := s.CreateAPIKey(ctx, "4915112345678", "admin")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	k2, err := s.CreateAPIKey(ctx, "16315551234", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if len(k1.Key) < 40 || k1.Prefix != k1.Key[:auth.PrefixLen] {
		t.Errorf("key %q / prefix %q: want a long key starting with its prefix", k1.Key, k1.Prefix)
	}

	got, err := s.ValidateAPIKey(ctx, k1.Key)
	if err != nil {
		t.Fatal(err)
	}
	if got.WaID != "4915112345678" || got.Prefix != k1.Prefix || got.Key != "" {
		t.Errorf("ValidateAPIKey = %+v, want wa_id 4915112345678, prefix %s, no secret", got, k1.Prefix)
	}

	list, err := s.ListAPIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []auth.APIKey{
		{Prefix: k1.Prefix, WaID: "4915112345678", CreatedBy: "admin", CreatedAt: k1.CreatedAt},
		{Prefix: k2.Prefix, WaID: "16315551234", CreatedBy: "admin", CreatedAt: k2.CreatedAt},
	}
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("ListAPIKeys mismatch (-want +got):\n%s", diff)
	}

	// Right prefix, wrong secret; too short; unknown.
	wrong := k1.Prefix + k2.Key[auth.PrefixLen:]
	for _, key := range []string{wrong, k1.Prefix, "short", "", "ZZZZZZZZ" + k1.Key[auth.PrefixLen:]} {
		if _, err := s.ValidateAPIKey(ctx, key); !errors.Is(err, auth.ErrInvalidAPIKey) {
			t.Errorf("ValidateAPIKey(%q) = %v, want ErrInvalidAPIKey", key, err)
		}
	}

	// Revocation works at once although the key is cached.
	if err := s.RevokeAPIKey(ctx, k1.Prefix); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ValidateAPIKey(ctx, k1.Key); !errors.Is(err, auth.ErrInvalidAPIKey) {
		t.Errorf("revoked key: err = %v, want ErrInvalidAPIKey", err)
	}
	if err := s.RevokeAPIKey(ctx, k1.Prefix); !errors.Is(err, auth.ErrAPIKeyNotFound) {
		t.Errorf("second revoke: err = %v, want ErrAPIKeyNotFound", err)
	}
	if _, err := s.ValidateAPIKey(ctx, k2.Key); err != nil {
		t.Errorf("the other key: %v", err)
	}
}
