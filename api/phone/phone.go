// Package phone is the one rule for phone numbers on the network and in the
// API. A number is its international digits (country code first, no "+"):
// 5 to 20 of them, which is what chatd registers and routes, what wa_id holds
// and what every message is addressed to. Parse accepts the forms people type
// ("+1 (631) 555-1001", "1-631-555-1001", "16315551001") and returns the
// digits.
package phone

import (
	"errors"
	"strings"
)

// Number is a phone number's international digits.
type Number string

// Limits on a number's digits.
const (
	MinDigits = 5
	MaxDigits = 20
)

// ErrInvalid is the error of Parse for text that is not a phone number.
var ErrInvalid = errors.New("a phone number is 5 to 20 digits, optionally with '+', spaces, '-', '.', '(' and ')'")

// Parse returns the number typed as s: separators ('+', spaces, '-', '.',
// '(', ')') are dropped, and what is left must be 5 to 20 digits.
func Parse(s string) (Number, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == '+' || c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", ErrInvalid
		}
	}
	n := Number(b.String())
	if !n.Valid() {
		return "", ErrInvalid
	}
	return n, nil
}

// Valid reports whether n is 5 to 20 digits and nothing else: a number as
// the network and wa_id write it.
func (n Number) Valid() bool { return len(n) >= MinDigits && len(n) <= MaxDigits && Digits(string(n)) }

// Valid reports whether s is a number as the network writes it.
func Valid(s string) bool { return Number(s).Valid() }

// String is the digits.
func (n Number) String() string { return string(n) }

// Digits reports whether s is one or more ASCII digits.
func Digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FromParts is the number of a registration: a country code of 1 to 3
// digits and a national number of 4 to 15 digits (on-prem POST
// /v1/account's cc and phone_number, written without separators).
func FromParts(cc, national string) (Number, error) {
	switch {
	case !Digits(cc) || len(cc) > 3:
		return "", errors.New("cc must be 1 to 3 digits")
	case !Digits(national) || len(national) < 4 || len(national) > 15:
		return "", errors.New("phone_number must be 4 to 15 digits")
	}
	n := Number(cc + national)
	if !n.Valid() {
		return "", ErrInvalid
	}
	return n, nil
}
