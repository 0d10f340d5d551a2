package graph

import (
	"strconv"
	"strings"
)

// The Cloud API names numbers, business accounts (WABAs) and templates by
// numeric ids. openwaba derives them from its own ids, so nothing extra is
// stored and every node computes the same: a number's phone_number_id is
// PhoneNumberIDBase plus its account id, its business account's waba_id
// WABAIDBase plus the same id (each number is its own business account,
// as 360dialog provisions them), a template's id TemplateIDBase plus the
// sandbox network's template id. The bases keep the three apart (and
// apart from media ids, which are UUIDs) on the one route GET /{v}/{id},
// and look like Meta's 15- and 16-digit ids.
const (
	PhoneNumberIDBase int64 = 106_540_000_000_000
	WABAIDBase        int64 = 102_290_000_000_000
	TemplateIDBase    int64 = 1_770_000_000_000_000
	// span is how many ids each base leaves room for.
	span int64 = 1_000_000_000_000
)

// PhoneNumberID is the phone_number_id of account id.
func PhoneNumberID(accountID int64) int64 { return PhoneNumberIDBase + accountID }

// WABAID is the waba_id of account id's business account.
func WABAID(accountID int64) int64 { return WABAIDBase + accountID }

// TemplateID is the Graph id of the network's template id ("" stays "").
func TemplateID(networkID string) string {
	n, err := strconv.ParseInt(networkID, 10, 64)
	if err != nil || n < 0 || n >= span {
		return networkID
	}
	return strconv.FormatInt(TemplateIDBase+n, 10)
}

// Kind is what a Graph id names.
type Kind int

// The kinds of ids.
const (
	Other       Kind = iota // not one of openwaba's numeric ids (a media id, or unknown)
	PhoneNumber             // a phone_number_id
	WABA                    // a waba_id
	Template                // a template id
)

// Parse says what id names and returns the id it was derived from: the
// account id of a phone_number_id or waba_id, the network's template id of
// a template id.
func Parse(id string) (Kind, int64) {
	if id == "" || len(id) > 19 || strings.TrimLeft(id, "0123456789") != "" || id[0] == '0' {
		return Other, 0
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return Other, 0
	}
	for _, b := range []struct {
		base int64
		kind Kind
	}{{PhoneNumberIDBase, PhoneNumber}, {WABAIDBase, WABA}, {TemplateIDBase, Template}} {
		if n > b.base && n < b.base+span {
			return b.kind, n - b.base
		}
	}
	return Other, 0
}

// MinVersion is the oldest Graph version the routes accept ("v17.0").
const MinVersion = 17

// ValidVersion reports whether v is a Graph version path segment from
// v17.0 up ("v17.0", "v23.0", "v24.0").
func ValidVersion(v string) bool {
	rest, ok := strings.CutPrefix(v, "v")
	if !ok {
		return false
	}
	major, minor, ok := strings.Cut(rest, ".")
	if !ok || minor == "" || len(major) > 3 || len(minor) > 2 {
		return false
	}
	m, err := strconv.Atoi(major)
	if err != nil || strings.TrimLeft(minor, "0123456789") != "" {
		return false
	}
	return m >= MinVersion
}
