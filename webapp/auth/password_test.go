package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/openwaba/openwaba/webapp/auth"
)

func TestCheckPassword(t *testing.T) {
	tests := []struct {
		name, pw   string
		wantReason string // "" means accepted
	}{
		{"good", "Passw0rd!", ""},
		{"every special", "Aa1" + auth.Specials, ""},
		{"exactly 8", "Aa1!aaaa", ""},
		{"exactly 64", "Aa1!" + strings.Repeat("x", 60), ""},
		{"space allowed", "Aa1! long pass", ""},
		{"too short", "Aa1!aaa", "must be 8 to 64 characters long (got 7)"},
		{"too long", "Aa1!" + strings.Repeat("x", 61), "must be 8 to 64 characters long (got 65)"},
		{"empty", "", "must be 8 to 64 characters long (got 0)"},
		{"no digit", "Password!", "must contain at least one digit"},
		{"no upper", "passw0rd!", "must contain at least one upper-case letter"},
		{"no lower", "PASSW0RD!", "must contain at least one lower-case letter"},
		{"no special", "Passw0rdx", "must contain at least one special character of " + auth.Specials},
		{"the initial secret", "secret", "must be 8 to 64 characters long (got 6)"},
		{"non-ASCII", "Passw0rd!é", "must contain printable ASCII characters only"},
		{"control character", "Passw0rd!\t", "must contain printable ASCII characters only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := auth.CheckPassword(tt.pw)
			var got string
			if ie := (*auth.InvalidError)(nil); errors.As(err, &ie) {
				got = ie.Reason
				if ie.Field != "password" {
					t.Errorf("Field = %q, want password", ie.Field)
				}
			} else if err != nil {
				t.Fatalf("CheckPassword(%q) = %v, want nil or *InvalidError", tt.pw, err)
			}
			if diff := cmp.Diff(tt.wantReason, got); diff != "" {
				t.Errorf("CheckPassword(%q) reason mismatch (-want +got):\n%s", tt.pw, diff)
			}
		})
	}
}

func TestCheckUsername(t *testing.T) {
	tests := []struct {
		name, username string
		wantOK         bool
	}{
		{"letters", "alice", true},
		{"all classes", "a.b_c-D9", true},
		{"4 chars", "abcd", true},
		{"32 chars", strings.Repeat("a", 32), true},
		{"3 chars", "abc", false},
		{"33 chars", strings.Repeat("a", 33), false},
		{"space", "al ice", false},
		{"at sign", "al@ice", false},
		{"non-ASCII", "alicé", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := auth.CheckUsername(tt.username)
			if got := err == nil; got != tt.wantOK {
				t.Errorf("CheckUsername(%q) = %v, want ok=%v", tt.username, err, tt.wantOK)
			}
		})
	}
}
