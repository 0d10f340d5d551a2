package message

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/body"
	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/media"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Template messages: the business sends a template's namespace, name,
// language and parameters (type "template", or the legacy "hsm"); coreapp
// hydrates them from the approved template (package api/template) and the
// phone shows the hydrated message. The on-prem send shape is the reference's
// (§2.1; developers.facebook.com/docs/whatsapp/api/messages/message-templates):
//
//	{"type":"template","template":{"namespace","name","language":{"policy":"deterministic","code"},
//	 "components":[{"type":"header","parameters":[…]},{"type":"body","parameters":[…]},
//	  {"type":"button","sub_type":"quick_reply","index":"0","parameters":[{"type":"payload","payload"}]}]}}
//
// and the legacy one (praekelt wabclient, nyaruka courier):
//
//	{"type":"hsm","hsm":{"namespace","element_name","language":{"policy":"fallback"|"deterministic","code"},
//	 "localizable_params":[{"default":"…"},{"default":"…","currency":{"currency_code","amount_1000"}},{"default":"…","date_time":{…}}]}}

// Limits on the send side of a template message.
const (
	MaxTemplateName       = 512
	MaxTemplateParameters = 100
	MaxButtonParameters   = 10
)

// templateShown is what a phone shows of a template message: the hydrated
// template (the customer never sees the parameters).
type templateShown struct {
	Name     string          `json:"name"`
	Language string          `json:"language"`
	Header   *templateHeader `json:"header,omitempty"`
	Body     string          `json:"body"`
	Footer   string          `json:"footer,omitempty"`
	Buttons  []templateBtn   `json:"buttons,omitempty"`
}

type templateHeader struct {
	Type     string          `json:"type"`
	Text     string          `json:"text,omitempty"`
	Media    *MediaObject    `json:"media,omitempty"`
	Location *locationObject `json:"location,omitempty"`
}

type templateBtn struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	URL         string `json:"url,omitempty"`
	PhoneNumber string `json:"phone_number,omitempty"`
	Payload     string `json:"payload,omitempty"`
	Code        string `json:"code,omitempty"`
}

var templateType = Type{
	Name:  "template",
	Kind:  "template",
	Of:    func(c *messagev1.Content) bool { return c.GetTemplate() != nil && !c.GetTemplate().Hsm },
	Parse: func(top body.Object) (*messagev1.Content, error) { return parseTemplate(top) },
	Check: func(c *messagev1.Content) error { return checkTemplate(c.GetTemplate()) },
	Show:  func(c *messagev1.Content) any { return showTemplate(c.GetTemplate()) },
	Terminal: func(c *messagev1.Content) string {
		return terminalTemplate(c.GetTemplate())
	},
}

var hsmType = Type{
	Name:     "hsm",
	Kind:     "template",
	Of:       func(c *messagev1.Content) bool { return c.GetTemplate() != nil && c.GetTemplate().Hsm },
	Parse:    func(top body.Object) (*messagev1.Content, error) { return parseHSM(top) },
	Check:    func(c *messagev1.Content) error { return checkTemplate(c.GetTemplate()) },
	Show:     func(c *messagev1.Content) any { return showTemplate(c.GetTemplate()) },
	Terminal: func(c *messagev1.Content) string { return terminalTemplate(c.GetTemplate()) },
}

func parseTemplate(top body.Object) (*messagev1.Content, error) {
	o, _, err := body.Nested(top, "template", "namespace", "name", "language", "components")
	if err != nil {
		return nil, err
	}
	t := &messagev1.Template{}
	if t.Namespace, err = body.String(o, "namespace"); err != nil {
		return nil, err
	}
	if t.Name, err = body.RequiredString(o, "name"); err != nil {
		return nil, err
	}
	if err := parseLanguage(o, t); err != nil {
		return nil, err
	}
	comps, _, err := body.Array(o, "components")
	if err != nil {
		return nil, err
	}
	for i, raw := range comps {
		co, err := body.Parse(body.Elem(o, "components", i), raw, "type", "sub_type", "index", "parameters")
		if err != nil {
			return nil, err
		}
		typ, err := body.RequiredString(co, "type")
		if err != nil {
			return nil, err
		}
		params, _, err := body.Array(co, "parameters")
		if err != nil {
			return nil, err
		}
		switch strings.ToLower(typ) {
		case "header", "body":
			for _, k := range []string{"sub_type", "index"} {
				if co.Has(k) {
					return nil, errcode.New(errcode.NotRequired, "parameter %s%s is only expected for buttons", co.Path, k)
				}
			}
			for j, pr := range params {
				p, err := parseParameter(body.Elem(co, "parameters", j), pr)
				if err != nil {
					return nil, err
				}
				if strings.ToLower(typ) == "header" {
					t.Header = append(t.Header, p)
				} else {
					t.Body = append(t.Body, p)
				}
			}
		case "button":
			b, err := parseButtonComponent(co, params)
			if err != nil {
				return nil, err
			}
			t.Buttons = append(t.Buttons, b)
		default:
			return nil, errcode.New(errcode.Invalid, `%stype must be "header", "body" or "button"`, co.Path)
		}
	}
	return &messagev1.Content{Body: &messagev1.Content_Template{Template: t}}, nil
}

func parseLanguage(o body.Object, t *messagev1.Template) error {
	lang, present, err := body.Nested(o, "language", "policy", "code")
	if err != nil {
		return err
	}
	if !present {
		return errcode.New(errcode.Missing, "%slanguage is required", o.Path)
	}
	if t.Language, err = body.RequiredString(lang, "code"); err != nil {
		return err
	}
	if t.Policy, err = body.String(lang, "policy"); err != nil {
		return err
	}
	if t.Policy == "" {
		t.Policy = "deterministic"
	}
	return nil
}

func parseButtonComponent(co body.Object, params []json.RawMessage) (*messagev1.TemplateButtonParameter, error) {
	st, err := body.RequiredString(co, "sub_type")
	if err != nil {
		return nil, err
	}
	b := &messagev1.TemplateButtonParameter{SubType: strings.ToLower(st)}
	if b.SubType != "quick_reply" && b.SubType != "url" && b.SubType != "copy_code" {
		return nil, errcode.New(errcode.Invalid, `%ssub_type must be "quick_reply", "url" or "copy_code"`, co.Path)
	}
	if !co.Has("index") {
		return nil, errcode.New(errcode.Missing, "%sindex is required", co.Path)
	}
	// "0" as on-prem writes it, or 0.
	var idx json.Number
	if err := json.Unmarshal(co.Raw("index"), &idx); err != nil {
		var s string
		if json.Unmarshal(co.Raw("index"), &s) != nil {
			return nil, errcode.New(errcode.Invalid, "%sindex must be a button position, 0 to 9", co.Path)
		}
		idx = json.Number(s)
	}
	n, err := strconv.Atoi(idx.String())
	if err != nil || n < 0 || n > 9 {
		return nil, errcode.New(errcode.Invalid, "%sindex must be a button position, 0 to 9", co.Path)
	}
	b.Index = int32(n)
	if len(params) != 1 {
		return nil, errcode.New(errcode.Invalid, "%sparameters must have one parameter", co.Path)
	}
	po, err := body.Parse(body.Elem(co, "parameters", 0), params[0], "type", "payload", "text", "coupon_code")
	if err != nil {
		return nil, err
	}
	pt, err := body.RequiredString(po, "type")
	if err != nil {
		return nil, err
	}
	want := map[string]string{"quick_reply": "payload", "url": "text", "copy_code": "coupon_code"}[b.SubType]
	if pt != want {
		return nil, errcode.New(errcode.TemplateParamFormat, "%stype must be %q for a %s button", po.Path, want, b.SubType)
	}
	v, err := body.RequiredString(po, want)
	if err != nil {
		return nil, err
	}
	switch want {
	case "payload":
		b.Payload = v
	case "text":
		b.Text = v
	default:
		b.CouponCode = v
	}
	return b, nil
}

func parseParameter(path string, raw json.RawMessage) (*messagev1.TemplateParameter, error) {
	po, err := body.Parse(path, raw, "type", "text", "currency", "date_time", "image", "video", "document", "location")
	if err != nil {
		return nil, err
	}
	p := &messagev1.TemplateParameter{}
	if p.Type, err = body.RequiredString(po, "type"); err != nil {
		return nil, err
	}
	for _, k := range []string{"text", "currency", "date_time", "image", "video", "document", "location"} {
		if k != p.Type && po.Has(k) {
			return nil, errcode.New(errcode.NotRequired, "parameter %s%s is not expected for a %s parameter", po.Path, k, p.Type)
		}
	}
	switch p.Type {
	case "text":
		if p.Text, err = body.RequiredString(po, "text"); err != nil {
			return nil, err
		}
	case "currency":
		c, present, err := body.Nested(po, "currency", "fallback_value", "code", "amount_1000")
		if err != nil {
			return nil, err
		}
		if !present {
			return nil, errcode.New(errcode.Missing, "%scurrency is required", po.Path)
		}
		if p.FallbackValue, err = body.RequiredString(c, "fallback_value"); err != nil {
			return nil, err
		}
		if p.CurrencyCode, err = body.String(c, "code"); err != nil {
			return nil, err
		}
		amount, _, err := body.Field[float64](c, "amount_1000")
		if err != nil {
			return nil, err
		}
		p.Amount_1000 = int64(amount)
	case "date_time":
		d, present, err := body.Nested(po, "date_time", "fallback_value", "component", "unix_epoch", "day_of_week", "year", "month", "day_of_month", "hour", "minute", "calendar", "timestamp")
		if err != nil {
			return nil, err
		}
		if !present {
			return nil, errcode.New(errcode.Missing, "%sdate_time is required", po.Path)
		}
		if p.FallbackValue, err = body.RequiredString(d, "fallback_value"); err != nil {
			return nil, err
		}
	case "image", "video", "document":
		k, _ := media.KindOf(p.Type)
		if p.Media, err = parseMediaObject(po, p.Type, k); err != nil {
			return nil, err
		}
	case "location":
		l, present, err := body.Nested(po, "location", locationFields...)
		if err != nil {
			return nil, err
		}
		if !present {
			return nil, errcode.New(errcode.Missing, "%slocation is required", po.Path)
		}
		c, err := parseLocation(l)
		if err != nil {
			return nil, err
		}
		p.Location = c.GetLocation()
	default:
		return nil, errcode.New(errcode.TemplateParamFormat, "%stype must be text, currency, date_time, image, video, document or location", po.Path)
	}
	return p, nil
}

func parseHSM(top body.Object) (*messagev1.Content, error) {
	o, _, err := body.Nested(top, "hsm", "namespace", "element_name", "language", "localizable_params")
	if err != nil {
		return nil, err
	}
	t := &messagev1.Template{Hsm: true}
	if t.Namespace, err = body.String(o, "namespace"); err != nil {
		return nil, err
	}
	if t.Name, err = body.RequiredString(o, "element_name"); err != nil {
		return nil, err
	}
	if err := parseLanguage(o, t); err != nil {
		return nil, err
	}
	params, _, err := body.Array(o, "localizable_params")
	if err != nil {
		return nil, err
	}
	for i, raw := range params {
		po, err := body.Parse(body.Elem(o, "localizable_params", i), raw, "default", "currency", "date_time")
		if err != nil {
			return nil, err
		}
		def, err := body.RequiredString(po, "default")
		if err != nil {
			return nil, err
		}
		p := &messagev1.TemplateParameter{Type: "text", Text: def}
		switch {
		case po.Has("currency"):
			c, _, err := body.Nested(po, "currency", "currency_code", "amount_1000")
			if err != nil {
				return nil, err
			}
			p.Type, p.Text, p.FallbackValue = "currency", "", def
			if p.CurrencyCode, err = body.String(c, "currency_code"); err != nil {
				return nil, err
			}
			amount, _, err := body.Field[float64](c, "amount_1000")
			if err != nil {
				return nil, err
			}
			p.Amount_1000 = int64(amount)
		case po.Has("date_time"):
			p.Type, p.Text, p.FallbackValue = "date_time", "", def
		}
		t.Body = append(t.Body, p)
	}
	return &messagev1.Content{Body: &messagev1.Content_Template{Template: t}}, nil
}

func checkTemplate(t *messagev1.Template) error {
	name := "template"
	if t.Hsm {
		name = "hsm"
	}
	switch {
	case t.Name == "":
		return errcode.New(errcode.Missing, "%s.name is required", name)
	case len(t.Name) > MaxTemplateName || !printable(t.Name):
		return errcode.New(errcode.Invalid, "%s.name must be a template name", name)
	case t.Language == "" || len(t.Language) > 16:
		return errcode.New(errcode.Invalid, "%s.language.code must be a language code such as en_US", name)
	case t.Policy != "deterministic" && t.Policy != "fallback":
		return errcode.New(errcode.Invalid, `%s.language.policy must be "deterministic" (or "fallback" for hsm)`, name)
	case t.Policy == "fallback" && !t.Hsm:
		return errcode.New(errcode.Invalid, `template.language.policy must be "deterministic"`)
	case len(t.Header)+len(t.Body) > MaxTemplateParameters:
		return errcode.New(errcode.Invalid, "%s has more than %d parameters", name, MaxTemplateParameters)
	case len(t.Buttons) > MaxButtonParameters:
		return errcode.New(errcode.Invalid, "%s has more than %d button parameters", name, MaxButtonParameters)
	}
	for i, p := range append(append([]*messagev1.TemplateParameter{}, t.Header...), t.Body...) {
		if p.Media != nil {
			if err := CheckMedia(p.Media, fmt.Sprintf("%s parameter %d %s.", name, i+1, p.Type)); err != nil {
				return err
			}
		}
		if utf8.RuneCountInString(p.Text)+utf8.RuneCountInString(p.FallbackValue) > 4*1024 {
			return errcode.New(errcode.TemplateParamTooLong, "%s parameter %d is too long", name, i+1)
		}
	}
	if h := t.Hydrated; h != nil && h.HeaderMedia != nil {
		if err := CheckMedia(h.HeaderMedia, "template header "+h.HeaderType+"."); err != nil {
			return err
		}
	}
	return nil
}

func showTemplate(t *messagev1.Template) templateShown {
	out := templateShown{Name: t.Name, Language: t.Language}
	h := t.GetHydrated()
	if h == nil {
		return out
	}
	out.Body, out.Footer = h.Body, h.Footer
	switch h.HeaderType {
	case "":
	case "text":
		out.Header = &templateHeader{Type: "text", Text: h.HeaderText}
	case "location":
		l := showLocation(h.HeaderLocation)
		out.Header = &templateHeader{Type: "location", Location: &l}
	default:
		md := h.GetHeaderMedia()
		obj := &MediaObject{MimeType: md.GetMimeType(), Filename: md.GetFilename()}
		if len(md.GetFileSha256()) > 0 {
			obj.SHA256 = fmt.Sprintf("%x", md.GetFileSha256())
		}
		out.Header = &templateHeader{Type: h.HeaderType, Media: obj}
	}
	for _, b := range h.Buttons {
		out.Buttons = append(out.Buttons, templateBtn{Type: b.Type, Text: b.Text, URL: b.Url, PhoneNumber: b.PhoneNumber, Payload: b.Payload, Code: b.Code})
	}
	return out
}

func terminalTemplate(t *messagev1.Template) string {
	h := t.GetHydrated()
	if h == nil {
		return "[template " + t.Name + "]"
	}
	var b strings.Builder
	switch h.HeaderType {
	case "":
	case "text":
		fmt.Fprintf(&b, "*%s*\n", h.HeaderText)
	default:
		fmt.Fprintf(&b, "[%s header]\n", h.HeaderType)
	}
	b.WriteString(h.Body)
	if h.Footer != "" {
		fmt.Fprintf(&b, "\n_%s_", h.Footer)
	}
	n := 0
	for _, bt := range h.Buttons {
		switch bt.Type {
		case "quick_reply":
			n++
			fmt.Fprintf(&b, "\n  %d) %s", n, bt.Text)
		case "url":
			fmt.Fprintf(&b, "\n  [%s] %s", bt.Text, bt.Url)
		case "phone_number":
			fmt.Fprintf(&b, "\n  [%s] %s", bt.Text, bt.PhoneNumber)
		case "copy_code":
			fmt.Fprintf(&b, "\n  [%s] %s", bt.Text, bt.Code)
		}
	}
	return b.String()
}

// QuickReplies are the quick-reply buttons of a hydrated template, in
// order: what a customer may tap.
func QuickReplies(t *messagev1.Template) []*messagev1.HydratedButton {
	var out []*messagev1.HydratedButton
	for _, b := range t.GetHydrated().GetButtons() {
		if b.Type == "quick_reply" {
			out = append(out, b)
		}
	}
	return out
}

// TapButton is the customer's tap on a quick reply of the template message
// id (sent by from): choice is the button's text, payload or number (from 1,
// among the quick replies).
func TapButton(t *messagev1.Template, id, from, choice string) (*messagev1.Content, error) {
	for i, b := range QuickReplies(t) {
		if b.Text == choice || b.Payload == choice || strconv.Itoa(i+1) == choice {
			return &messagev1.Content{Body: &messagev1.Content_ButtonReply{ButtonReply: &messagev1.ButtonReply{Payload: b.Payload, Text: b.Text}},
				Context: &messagev1.ContextInfo{MessageId: id, From: from}}, nil
		}
	}
	return nil, errcode.New(errcode.Invalid, "message %s has no quick reply %q", id, choice)
}

// buttonObject is the API's inbound button object.
type buttonObject struct {
	Payload string `json:"payload"`
	Text    string `json:"text"`
}

// buttonType is the customer's tap on a template's quick reply: on-prem's
// inbound "button" message.
var buttonType = Type{
	Name: "button",
	Kind: "button",
	Of:   func(c *messagev1.Content) bool { return c.GetButtonReply() != nil },
	Show: func(c *messagev1.Content) any {
		return buttonObject{Payload: c.GetButtonReply().GetPayload(), Text: c.GetButtonReply().GetText()}
	},
	Terminal: func(c *messagev1.Content) string { return "[tapped] " + c.GetButtonReply().GetText() },
	Webhook: func(c *messagev1.Content) (string, any) {
		return "button", buttonObject{Payload: c.GetButtonReply().GetPayload(), Text: c.GetButtonReply().GetText()}
	},
	Compose: func(raw json.RawMessage) (*messagev1.Content, error) {
		o, err := body.Parse("button.", raw, "payload", "text")
		if err != nil {
			return nil, err
		}
		r := &messagev1.ButtonReply{}
		if r.Text, err = body.RequiredString(o, "text"); err != nil {
			return nil, err
		}
		if r.Payload, err = body.String(o, "payload"); err != nil {
			return nil, err
		}
		return &messagev1.Content{Body: &messagev1.Content_ButtonReply{ButtonReply: r}}, nil
	},
}
