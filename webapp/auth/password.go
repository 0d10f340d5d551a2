package auth

import (
	"fmt"

	"strings"
	"unicode/utf8"

	"github.com/openwaba/openwaba/webapp/auth/commonpw"
)

// Specials are the characters that satisfy the "one special character" rule.
const Specials = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// InvalidError says why a username or password was refused. Its message is
// meant for the API client.
type InvalidError struct {
	Field  string // "username" or "password"
	Reason string
}

func (e *InvalidError) Error() string { return e.Field + " " + e.Reason }

// CheckPassword applies the on-prem password policy: 8 to 64 printable ASCII
// characters with at least one digit, one upper-case letter, one lower-case
// letter and one special character; and refuses the common passwords that
// satisfy it (package commonpw).
func CheckPassword(pw string) error {
	bad := func(reason string) error { return &InvalidError{Field: "password", Reason: reason} }
	if n := utf8.RuneCountInString(pw); n < 8 || n > 64 {
		return bad(fmt.Sprintf("must be 8 to 64 characters long (got %d)", n))
	}
	var digit, upper, lower, special bool
	for _, r := range pw {
		switch {
		case r < 0x20 || r > 0x7e:
			return bad("must contain printable ASCII characters only")
		case r >= '0' && r <= '9':
			digit = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= 'a' && r <= 'z':
			lower = true
		case strings.ContainsRune(Specials, r):
			special = true
		}
	}
	switch {
	case !digit:
		return bad("must contain at least one digit")
	case !upper:
		return bad("must contain at least one upper-case letter")
	case !lower:
		return bad("must contain at least one lower-case letter")
	case !special:
		return bad("must contain at least one special character of " + Specials)
	case commonpw.Is(pw):
		return bad("is one of the most common passwords (the first ones anyone guessing tries): choose another")
	}
	return nil
}

// checkNewPassword is CheckPassword for the password of username, which it
// must not contain.
func checkNewPassword(username, pw string) error {
	if err := CheckPassword(pw); err != nil {
		return err
	}
	if len(username) >= 4 && strings.Contains(strings.ToLower(pw), strings.ToLower(username)) {
		return &InvalidError{Field: "password", Reason: "must not contain the username"}
	}
	return nil
}

// CheckUsername accepts 4 to 32 characters of A-Z, a-z, 0-9, '_', '.' and '-'.
func CheckUsername(u string) error {
	if n := len(u); n < 4 || n > 32 {
		return &InvalidError{Field: "username", Reason: fmt.Sprintf("must be 4 to 32 characters long (got %d)", utf8.RuneCountInString(u))}
	}
	for _, r := range u {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-'
		if !ok {
			return &InvalidError{Field: "username", Reason: "may contain only letters, digits, '_', '.' and '-'"}
		}
	}
	return nil
}
