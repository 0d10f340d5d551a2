package phone

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]Number{
		"+1 (631) 555-1001":    "16315551001",
		"1-631-555-1001":       "16315551001",
		"16315551001":          "16315551001",
		"+49 151.1234.5678":    "4915112345678",
		"12345":                "12345",
		"12345678901234567890": "12345678901234567890",
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1234", "123456789012345678901", "+1 631 555 10O1", "abc", "+", "1631555100１", "16315551001;"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %q, want an error", in, got)
		}
	}
	if Valid("+16315551001") || !Valid("16315551001") || Valid("1234") {
		t.Error("Valid accepts only the bare digits")
	}
}

func TestFromParts(t *testing.T) {
	if n, err := FromParts("1", "6315551234"); err != nil || n != "16315551234" {
		t.Errorf("FromParts = %q, %v", n, err)
	}
	for _, c := range [][2]string{{"", "6315551234"}, {"1234", "6315551234"}, {"1", "123"}, {"1", "1234567890123456"}, {"+1", "6315551234"}, {"1", "631-555"}} {
		if _, err := FromParts(c[0], c[1]); err == nil {
			t.Errorf("FromParts(%q, %q) succeeded", c[0], c[1])
		}
	}
}
