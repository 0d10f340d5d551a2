package auth_test

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/openwaba/openwaba/webapp/auth"
)

// TestLoginThrottle: after five failures a user is blocked, exponentially
// longer with each failure, on every webapp of the database (two Stores),
// even with the right password; a success clears it. An address that fails
// for many users is blocked too.
func TestLoginThrottle(t *testing.T) {
	a, clk, d := newStore(t)
	b := auth.New(d, auth.Options{BcryptCost: bcrypt.MinCost, Now: clk.Now}) // a second webapp
	ctx := t.Context()
	if _, err := a.Login(ctx, "10.0.0.1", "admin", "secret", goodPassword); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		s := a
		if i%2 == 1 {
			s = b
		}
		if _, err := s.Login(ctx, "10.0.0.2", "admin", "wrong", ""); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("failure %d = %v, want ErrInvalidCredentials", i+1, err)
		}
	}
	// The sixth failure blocks the user for 1 s (and the address).
	if _, err := b.Login(ctx, "10.0.0.2", "admin", "wrong", ""); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("sixth failure = %v", err)
	}
	var te *auth.ThrottledError
	_, err := a.Login(ctx, "10.0.0.3", "admin", goodPassword, "")
	if !errors.As(err, &te) || te.RetryAfter <= 0 || te.RetryAfter > time.Second {
		t.Fatalf("login while blocked = %v, want a ThrottledError of at most 1 s", err)
	}
	clk.Advance(time.Second)
	// The seventh failure blocks for 2 s, the eighth for 4 s.
	b.Login(ctx, "10.0.0.2", "admin", "wrong", "")
	if _, err := b.Login(ctx, "10.0.0.4", "admin", goodPassword, ""); !errors.As(err, &te) || te.RetryAfter != 2*time.Second {
		t.Fatalf("after the seventh failure = %v, want blocked for 2 s", err)
	}
	clk.Advance(2 * time.Second)
	a.Login(ctx, "10.0.0.2", "admin", "wrong", "")
	if _, err := a.Login(ctx, "10.0.0.4", "admin", goodPassword, ""); !errors.As(err, &te) || te.RetryAfter != 4*time.Second {
		t.Fatalf("after the eighth failure = %v, want blocked for 4 s", err)
	}
	clk.Advance(4 * time.Second)
	// The right password then works and clears the count.
	if _, err := b.Login(ctx, "10.0.0.4", "admin", goodPassword, ""); err != nil {
		t.Fatalf("login after the block = %v", err)
	}
	for range 5 {
		a.Login(ctx, "10.0.0.4", "admin", "wrong", "")
	}
	if _, err := a.Login(ctx, "10.0.0.4", "admin", goodPassword, ""); err != nil {
		t.Fatalf("five failures after a success must not block: %v", err)
	}

	// Spraying: one address, many users.
	for i, u := range []string{"u1", "u2", "u3", "u4", "u5", "u6"} {
		if _, err := a.Login(ctx, "10.0.0.9", u, "x", ""); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("spray %d = %v", i, err)
		}
	}
	if _, err := b.Login(ctx, "10.0.0.9", "admin", goodPassword, ""); !errors.As(err, &te) {
		t.Fatalf("login from a spraying address = %v, want blocked", err)
	}
	// Failures older than the window are forgotten.
	clk.Advance(2 * time.Hour)
	for range 5 {
		a.Login(ctx, "10.0.0.9", "u7", "x", "")
	}
	if _, err := b.Login(ctx, "10.0.0.9", "admin", goodPassword, ""); err != nil {
		t.Fatalf("an old block still counts: %v", err)
	}
}

func TestCommonPasswordsRefused(t *testing.T) {
	s, _, _ := newStore(t)
	for _, pw := range []string{"Password1!", "P@ssw0rd123!", "Welcome@2026", "Secret-123", "Qwerty123!", "Summer2026!"} {
		var ie *auth.InvalidError
		if err := auth.CheckPassword(pw); !errors.As(err, &ie) {
			t.Errorf("CheckPassword(%q) = %v, want refused as common", pw, err)
		}
		if err := s.CreateUser(t.Context(), "bobby", pw); !errors.As(err, &ie) {
			t.Errorf("CreateUser with %q = %v, want refused", pw, err)
		}
		if _, err := s.Login(t.Context(), "", "admin", "secret", pw); !errors.As(err, &ie) {
			t.Errorf("first login with new_password %q = %v, want refused", pw, err)
		}
	}
}
