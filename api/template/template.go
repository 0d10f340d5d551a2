// Package template is the one home of message templates: their definition
// as the Graph API's message_templates and 360dialog's /v1/configs/templates
// describe it (name, language, category, components), the checks Meta makes
// when a template is submitted, placeholder counting, and the hydration of
// a template message: the parameters a business sends checked against the
// approved template and filled in, with every template error of the on-prem
// catalog (2000-2014, 2060-2062).
//
// chatd (the network side, which keeps templates and their status) checks
// submissions with Parse; coreapp hydrates messages with Hydrate; the
// webapp's and the Cloud surface's routes render Template records.
package template

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/body"
	"github.com/openwaba/openwaba/api/errcode"
)

// Template is one template in one language: a record of the Graph API's
// message_templates edge.
type Template struct {
	ID              string      `json:"id,omitempty"`
	Name            string      `json:"name"`
	Language        string      `json:"language"`
	Status          string      `json:"status,omitempty"`
	Category        string      `json:"category"`
	Components      []Component `json:"components"`
	RejectedReason  string      `json:"rejected_reason,omitempty"`
	ParameterFormat string      `json:"parameter_format,omitempty"`
}

// Component is a HEADER, BODY, FOOTER or BUTTONS component.
type Component struct {
	Type    string   `json:"type"`
	Format  string   `json:"format,omitempty"` // HEADER: TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION
	Text    string   `json:"text,omitempty"`
	Example *Example `json:"example,omitempty"`
	Buttons []Button `json:"buttons,omitempty"`
}

// Example holds the sample values Meta asks for with variables.
type Example struct {
	HeaderText   []string   `json:"header_text,omitempty"`
	HeaderHandle []string   `json:"header_handle,omitempty"`
	BodyText     [][]string `json:"body_text,omitempty"`
}

// Button is one button of a BUTTONS component.
type Button struct {
	Type        string   `json:"type"` // QUICK_REPLY, URL, PHONE_NUMBER or COPY_CODE
	Text        string   `json:"text,omitempty"`
	URL         string   `json:"url,omitempty"`
	PhoneNumber string   `json:"phone_number,omitempty"`
	Example     []string `json:"example,omitempty"`
}

// Statuses of a template (Graph: message_template status).
const (
	StatusPending  = "PENDING"
	StatusApproved = "APPROVED"
	StatusRejected = "REJECTED"
	StatusPaused   = "PAUSED"
	StatusDisabled = "DISABLED"
)

// Statuses is every status a template can have (the filters of a list,
// what the sandbox's admin may set).
var Statuses = []string{StatusPending, StatusApproved, StatusRejected, StatusPaused, StatusDisabled}

// Categories of templates.
var Categories = []string{"MARKETING", "UTILITY", "AUTHENTICATION"}

// Limits Meta applies to submissions (developers.facebook.com/docs/
// whatsapp/business-management-api/message-templates: name 512 characters,
// header text 60 with at most one variable, body 1024, footer 60, at most
// 10 buttons of which at most 2 URL, 1 phone number and 1 copy code, button
// text 25, URL 2000, phone number 20, copy-code example 15; quick replies
// grouped together).
const (
	MaxName        = 512
	MaxHeaderText  = 60
	MaxBody        = 1024
	MaxFooter      = 60
	MaxButtons     = 10
	MaxURLButtons  = 2
	MaxButtonText  = 25
	MaxURL         = 2000
	MaxPhoneNumber = 20
	MaxCopyCode    = 15
)

// MaxJSON bounds the JSON of one submission.
const MaxJSON = 64 << 10

// ValidName reports whether s can be a template's name.
func ValidName(s string) bool { return len(s) <= MaxName && nameRE.MatchString(s) }

// ValidLanguage reports whether s can be a template's language code.
func ValidLanguage(s string) bool { return languageRE.MatchString(s) }

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9_]+$`)
	languageRE = regexp.MustCompile(`^[a-z]{2,3}(_[A-Z]{2,4})?$`)
	variableRE = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)
)

// Variables returns the positional variables of text ({{1}}, {{2}}, …):
// their numbers in order of appearance, or an error when a placeholder is
// not a positive number.
func Variables(text string) ([]int, error) {
	var out []int
	for _, m := range variableRE.FindAllStringSubmatch(text, -1) {
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a variable: use {{1}}, {{2}}, …", m[0])
		}
		out = append(out, n)
	}
	return out, nil
}

// Count is the number of distinct variables of text, which must be 1…n
// without a gap.
func Count(text string) (int, error) {
	vs, err := Variables(text)
	if err != nil {
		return 0, err
	}
	seen := map[int]bool{}
	for _, v := range vs {
		seen[v] = true
	}
	for i := 1; i <= len(seen); i++ {
		if !seen[i] {
			return 0, fmt.Errorf("the variables must be numbered {{1}} to {{%d}} without a gap", len(seen))
		}
	}
	return len(seen), nil
}

// Parse reads a template submission (Graph's POST message_templates body:
// name, language, category, components, optionally parameter_format) and
// checks it as Meta does. Errors are on-prem codes: 1008 missing, 1009
// invalid, 1010 unexpected, with the field in details.
func Parse(b []byte) (*Template, error) {
	o, err := body.Parse("", b, "name", "language", "category", "components", "parameter_format", "allow_category_change")
	if err != nil {
		return nil, err
	}
	t := &Template{}
	if t.Name, err = body.RequiredString(o, "name"); err != nil {
		return nil, err
	}
	if t.Language, err = body.RequiredString(o, "language"); err != nil {
		return nil, err
	}
	if t.Category, err = body.RequiredString(o, "category"); err != nil {
		return nil, err
	}
	t.Category = strings.ToUpper(t.Category)
	if t.ParameterFormat, err = body.String(o, "parameter_format"); err != nil {
		return nil, err
	}
	if _, _, err := body.Field[bool](o, "allow_category_change"); err != nil {
		return nil, err
	}
	items, present, err := body.Array(o, "components")
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, errcode.New(errcode.Missing, "components is required")
	}
	for i, raw := range items {
		co, err := body.Parse(body.Elem(o, "components", i), raw, "type", "format", "text", "example", "buttons")
		if err != nil {
			return nil, err
		}
		var c Component
		if c.Type, err = body.RequiredString(co, "type"); err != nil {
			return nil, err
		}
		c.Type = strings.ToUpper(c.Type)
		if c.Format, err = body.String(co, "format"); err != nil {
			return nil, err
		}
		c.Format = strings.ToUpper(c.Format)
		if c.Text, err = body.String(co, "text"); err != nil {
			return nil, err
		}
		if co.Has("example") {
			c.Example = &Example{}
			if err := decodeStrict(co.Raw("example"), c.Example); err != nil {
				return nil, errcode.New(errcode.Invalid, "%sexample: %v", co.Path, err)
			}
		}
		if co.Has("buttons") {
			bs, _, err := body.Array(co, "buttons")
			if err != nil {
				return nil, err
			}
			for j, br := range bs {
				bo, err := body.Parse(body.Elem(co, "buttons", j), br, "type", "text", "url", "phone_number", "example")
				if err != nil {
					return nil, err
				}
				var bt Button
				if bt.Type, err = body.RequiredString(bo, "type"); err != nil {
					return nil, err
				}
				bt.Type = strings.ToUpper(bt.Type)
				for _, f := range []struct {
					name string
					dst  *string
				}{{"text", &bt.Text}, {"url", &bt.URL}, {"phone_number", &bt.PhoneNumber}} {
					if *f.dst, err = body.String(bo, f.name); err != nil {
						return nil, err
					}
				}
				if bo.Has("example") {
					// A string (one example) or an array of strings.
					var one string
					if json.Unmarshal(bo.Raw("example"), &one) == nil {
						bt.Example = []string{one}
					} else if bt.Example, _, err = body.Field[[]string](bo, "example"); err != nil {
						return nil, err
					}
				}
				c.Buttons = append(c.Buttons, bt)
			}
		}
		t.Components = append(t.Components, c)
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	return t, nil
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// Check applies Meta's rules for a submission to t.
func (t *Template) Check() error {
	inv := func(format string, args ...any) error { return errcode.New(errcode.Invalid, format, args...) }
	switch {
	case !ValidName(t.Name):
		return inv("name must be 1 to %d lower-case letters, digits and underscores", MaxName)
	case !ValidLanguage(t.Language):
		return inv(`language must be a language code such as "en" or "en_US"`)
	case !slices.Contains(Categories, t.Category):
		return inv("category must be MARKETING, UTILITY or AUTHENTICATION")
	case t.ParameterFormat != "" && !strings.EqualFold(t.ParameterFormat, "POSITIONAL"):
		return inv("parameter_format must be POSITIONAL: named parameters are not supported")
	}
	t.ParameterFormat = ""
	seen := map[string]int{}
	for i, c := range t.Components {
		p := fmt.Sprintf("components[%d].", i)
		seen[c.Type]++
		if seen[c.Type] > 1 {
			return inv("%stype: a template has at most one %s component", p, c.Type)
		}
		switch c.Type {
		case "HEADER":
			if err := checkHeader(p, c); err != nil {
				return err
			}
		case "BODY":
			if err := checkBody(p, c); err != nil {
				return err
			}
		case "FOOTER":
			switch {
			case strings.TrimSpace(c.Text) == "":
				return errcode.New(errcode.Missing, "%stext is required", p)
			case utf8.RuneCountInString(c.Text) > MaxFooter:
				return inv("%stext is longer than %d characters", p, MaxFooter)
			case variableRE.MatchString(c.Text):
				return inv("%stext: a footer has no variables", p)
			case c.Format != "" || c.Example != nil || len(c.Buttons) > 0:
				return errcode.New(errcode.NotRequired, "%s: a footer has only text", strings.TrimSuffix(p, "."))
			}
		case "BUTTONS":
			if err := checkButtons(p, c); err != nil {
				return err
			}
		default:
			return inv("%stype must be HEADER, BODY, FOOTER or BUTTONS", p)
		}
	}
	if seen["BODY"] == 0 {
		return errcode.New(errcode.Missing, "components: a template needs a BODY component")
	}
	// Meta's order: header, body, footer, buttons.
	order := []string{"HEADER", "BODY", "FOOTER", "BUTTONS"}
	last := -1
	for i, c := range t.Components {
		at := slices.Index(order, c.Type)
		if at < last {
			return inv("components[%d]: components go in the order HEADER, BODY, FOOTER, BUTTONS", i)
		}
		last = at
	}
	return nil
}

func checkHeader(p string, c Component) error {
	switch c.Format {
	case "TEXT":
		switch n, err := Count(c.Text); {
		case strings.TrimSpace(c.Text) == "":
			return errcode.New(errcode.Missing, "%stext is required for a TEXT header", p)
		case err != nil:
			return errcode.New(errcode.Invalid, "%stext: %v", p, err)
		case utf8.RuneCountInString(c.Text) > MaxHeaderText:
			return errcode.New(errcode.Invalid, "%stext is longer than %d characters", p, MaxHeaderText)
		case n > 1:
			return errcode.New(errcode.Invalid, "%stext: a header has at most one variable", p)
		case n == 1 && (c.Example == nil || len(c.Example.HeaderText) != 1):
			return errcode.New(errcode.Missing, "%sexample.header_text needs one sample value for the header's variable", p)
		}
	case "IMAGE", "VIDEO", "DOCUMENT", "LOCATION":
		if c.Text != "" {
			return errcode.New(errcode.NotRequired, "%stext: a %s header has no text", p, c.Format)
		}
	case "":
		return errcode.New(errcode.Missing, "%sformat is required for a HEADER", p)
	default:
		return errcode.New(errcode.Invalid, "%sformat must be TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION", p)
	}
	if len(c.Buttons) > 0 {
		return errcode.New(errcode.NotRequired, "%sbuttons: a header has no buttons", p)
	}
	return nil
}

func checkBody(p string, c Component) error {
	n, err := Count(c.Text)
	switch {
	case strings.TrimSpace(c.Text) == "":
		return errcode.New(errcode.Missing, "%stext is required", p)
	case err != nil:
		return errcode.New(errcode.Invalid, "%stext: %v", p, err)
	case utf8.RuneCountInString(c.Text) > MaxBody:
		return errcode.New(errcode.Invalid, "%stext is longer than %d characters", p, MaxBody)
	case c.Format != "" || len(c.Buttons) > 0:
		return errcode.New(errcode.NotRequired, "%s: a body has only text and example", strings.TrimSuffix(p, "."))
	}
	if n > 0 {
		if c.Example == nil || len(c.Example.BodyText) != 1 || len(c.Example.BodyText[0]) != n {
			return errcode.New(errcode.Missing, "%sexample.body_text needs one row of %d sample values, one per variable", p, n)
		}
	}
	return nil
}

func checkButtons(p string, c Component) error {
	if len(c.Buttons) == 0 {
		return errcode.New(errcode.Missing, "%sbuttons is required", p)
	}
	if len(c.Buttons) > MaxButtons {
		return errcode.New(errcode.Invalid, "%sbuttons has %d buttons, more than %d", p, len(c.Buttons), MaxButtons)
	}
	count := map[string]int{}
	lastQuick, grouped := -1, true
	for j, b := range c.Buttons {
		bp := fmt.Sprintf("%sbuttons[%d].", p, j)
		count[b.Type]++
		if b.Type == "QUICK_REPLY" {
			if lastQuick >= 0 && lastQuick != j-1 {
				grouped = false
			}
			lastQuick = j
		}
		switch {
		case strings.TrimSpace(b.Text) == "":
			return errcode.New(errcode.Missing, "%stext is required", bp)
		case utf8.RuneCountInString(b.Text) > MaxButtonText:
			return errcode.New(errcode.Invalid, "%stext is longer than %d characters", bp, MaxButtonText)
		}
		switch b.Type {
		case "QUICK_REPLY":
			if b.URL != "" || b.PhoneNumber != "" {
				return errcode.New(errcode.NotRequired, "%s: a quick reply has only text", strings.TrimSuffix(bp, "."))
			}
		case "URL":
			vs, err := Variables(b.URL)
			switch {
			case b.URL == "":
				return errcode.New(errcode.Missing, "%surl is required", bp)
			case len(b.URL) > MaxURL || !(strings.HasPrefix(b.URL, "https://") || strings.HasPrefix(b.URL, "http://")):
				return errcode.New(errcode.Invalid, "%surl must be an http or https URL of at most %d characters", bp, MaxURL)
			case err != nil || len(vs) > 1 || (len(vs) == 1 && (vs[0] != 1 || !strings.HasSuffix(b.URL, "}}"))):
				return errcode.New(errcode.Invalid, "%surl may have one variable, {{1}}, at its end (the dynamic suffix)", bp)
			case len(vs) == 1 && len(b.Example) != 1:
				return errcode.New(errcode.Missing, "%sexample needs a sample URL for the dynamic suffix", bp)
			}
		case "PHONE_NUMBER":
			if b.PhoneNumber == "" {
				return errcode.New(errcode.Missing, "%sphone_number is required", bp)
			}
			if len(b.PhoneNumber) > MaxPhoneNumber {
				return errcode.New(errcode.Invalid, "%sphone_number is longer than %d characters", bp, MaxPhoneNumber)
			}
		case "COPY_CODE":
			if len(b.Example) != 1 || b.Example[0] == "" || utf8.RuneCountInString(b.Example[0]) > MaxCopyCode {
				return errcode.New(errcode.Missing, "%sexample needs one sample code of at most %d characters", bp, MaxCopyCode)
			}
		default:
			return errcode.New(errcode.Invalid, "%stype must be QUICK_REPLY, URL, PHONE_NUMBER or COPY_CODE", bp)
		}
	}
	switch {
	case count["URL"] > MaxURLButtons:
		return errcode.New(errcode.Invalid, "%sbuttons: at most %d URL buttons", p, MaxURLButtons)
	case count["PHONE_NUMBER"] > 1:
		return errcode.New(errcode.Invalid, "%sbuttons: at most one PHONE_NUMBER button", p)
	case count["COPY_CODE"] > 1:
		return errcode.New(errcode.Invalid, "%sbuttons: at most one COPY_CODE button", p)
	case !grouped:
		return errcode.New(errcode.Invalid, "%sbuttons: quick replies must be grouped together", p)
	}
	return nil
}

// Component returns t's component of type typ (HEADER, BODY, …), if any.
func (t *Template) Component(typ string) (Component, bool) {
	for _, c := range t.Components {
		if c.Type == typ {
			return c, true
		}
	}
	return Component{}, false
}
