package template

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/errcode"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
	"google.golang.org/protobuf/proto"
)

// Limits on the parameters of a template message (the on-prem errors 2004
// "parameter length too long" and 2005 "hydrated text too long"; Cloud's
// limits: a body parameter and the hydrated body 1024 characters, the
// header 60, a URL suffix 2000).
const (
	MaxBodyParameter   = 1024
	MaxHeaderParameter = 60
	MaxURLSuffix       = 2000
	MaxPayload         = 1024
)

// Find returns the template of pack that a message names: name and
// language, approved. Its errors are the on-prem ones: 2003 Template Pack
// Missing (the number has no template at all in that language and locale),
// 2001 Template Missing (no such name, not in that language, not approved
// yet), 2060 rejected, 2061 paused, 2062 disabled. tyntec's on-prem FAQ
// (tyntec.com/docs/faq-whatsapp-business-use-cases-message-types-what-are-
// reasons-my-templated-messages-fail-and) tells 2003 (a wrong language and
// locale combination) from 2001 (the template is not in that language) the
// same way.
func Find(pack []Template, name, language string) (*Template, error) {
	named, langPack := false, false
	for i := range pack {
		t := &pack[i]
		if t.Language == language {
			langPack = true
		}
		if t.Name != name {
			continue
		}
		named = true
		if t.Language != language {
			continue
		}
		switch t.Status {
		case StatusApproved:
			return t, nil
		case StatusRejected:
			return nil, errcode.New(errcode.TemplateRejected, "template %s (%s) was rejected", name, language)
		case StatusPaused:
			return nil, errcode.New(errcode.TemplatePaused, "template %s (%s) is paused", name, language)
		case StatusDisabled:
			return nil, errcode.New(errcode.TemplateDisabled, "template %s (%s) is disabled", name, language)
		default:
			return nil, errcode.New(errcode.TemplateMissing, "template %s (%s) is %s, not approved", name, language, t.Status)
		}
	}
	switch {
	case !langPack:
		return nil, errcode.New(errcode.TemplatePackMissing, "this number has no template in language %s", language)
	case named:
		return nil, errcode.New(errcode.TemplateMissing, "template %s does not exist in language %s", name, language)
	}
	return nil, errcode.New(errcode.TemplateMissing, "no template named %s", name)
}

// Hydrate checks the parameters of a template message against t and
// returns the message the customer sees. Its errors are the on-prem ones:
// 2000 parameter count mismatch (also a dynamic URL without its suffix),
// 2004 a parameter too long, 2005 hydrated text too long, 2006 white space
// policy (a body parameter with a new line, a tab or more than four spaces
// in a row), 2010 an invalid hydrated URL, 2012 a parameter of the wrong
// format, 2013 a button parameter for a button the template does not have.
func Hydrate(t *Template, m *messagev1.Template) (*messagev1.HydratedTemplate, error) {
	h := &messagev1.HydratedTemplate{}
	if err := hydrateHeader(t, m, h); err != nil {
		return nil, err
	}
	body, _ := t.Component("BODY")
	n, err := Count(body.Text)
	if err != nil {
		return nil, errcode.New(errcode.TemplateParamFormat, "the template's body: %v", err)
	}
	if len(m.Body) != n {
		return nil, errcode.New(errcode.TemplateParamCount, "the body of template %s has %d parameters, the message gives %d", t.Name, n, len(m.Body))
	}
	values := make([]string, n)
	for i, p := range m.Body {
		v, err := textValue(p, fmt.Sprintf("body parameter %d", i+1))
		if err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(v) > MaxBodyParameter {
			return nil, errcode.New(errcode.TemplateParamTooLong, "body parameter %d is longer than %d characters", i+1, MaxBodyParameter)
		}
		if strings.ContainsAny(v, "\n\t") || strings.Contains(v, "     ") {
			return nil, errcode.New(errcode.TemplateWhitespacePolicy, "body parameter %d has a new line, a tab or more than four spaces in a row", i+1)
		}
		values[i] = v
	}
	h.Body = fill(body.Text, values)
	if utf8.RuneCountInString(h.Body) > MaxBody {
		return nil, errcode.New(errcode.TemplateHydratedTooLong, "the hydrated body has %d characters, more than %d", utf8.RuneCountInString(h.Body), MaxBody)
	}
	if f, ok := t.Component("FOOTER"); ok {
		h.Footer = f.Text
	}
	if err := hydrateButtons(t, m, h); err != nil {
		return nil, err
	}
	return h, nil
}

func hydrateHeader(t *Template, m *messagev1.Template, h *messagev1.HydratedTemplate) error {
	c, ok := t.Component("HEADER")
	if !ok {
		if len(m.Header) > 0 {
			return errcode.New(errcode.TemplateParamCount, "template %s has no header, the message gives %d header parameters", t.Name, len(m.Header))
		}
		return nil
	}
	h.HeaderType = strings.ToLower(c.Format)
	switch c.Format {
	case "TEXT":
		n, _ := Count(c.Text)
		if len(m.Header) != n {
			return errcode.New(errcode.TemplateParamCount, "the header of template %s has %d parameters, the message gives %d", t.Name, n, len(m.Header))
		}
		var values []string
		if n == 1 {
			v, err := textValue(m.Header[0], "the header parameter")
			if err != nil {
				return err
			}
			if utf8.RuneCountInString(v) > MaxHeaderParameter {
				return errcode.New(errcode.TemplateParamTooLong, "the header parameter is longer than %d characters", MaxHeaderParameter)
			}
			values = []string{v}
		}
		h.HeaderText = fill(c.Text, values)
		if utf8.RuneCountInString(h.HeaderText) > MaxHeaderText {
			return errcode.New(errcode.TemplateHydratedTooLong, "the hydrated header is longer than %d characters", MaxHeaderText)
		}
	case "IMAGE", "VIDEO", "DOCUMENT":
		want := strings.ToLower(c.Format)
		if len(m.Header) != 1 {
			return errcode.New(errcode.TemplateParamCount, "the %s header of template %s needs one %s parameter, the message gives %d", want, t.Name, want, len(m.Header))
		}
		p := m.Header[0]
		if p.Type != want || p.Media == nil {
			return errcode.New(errcode.TemplateParamFormat, "the header parameter must be of type %s, not %s", want, p.Type)
		}
		md := proto.Clone(p.Media).(*messagev1.Media)
		md.Type = want
		h.HeaderMedia = md
	case "LOCATION":
		if len(m.Header) != 1 {
			return errcode.New(errcode.TemplateParamCount, "the location header of template %s needs one location parameter, the message gives %d", t.Name, len(m.Header))
		}
		p := m.Header[0]
		if p.Type != "location" || p.Location == nil {
			return errcode.New(errcode.TemplateParamFormat, "the header parameter must be of type location, not %s", p.Type)
		}
		h.HeaderLocation = p.Location
	}
	return nil
}

// textValue is what a text, currency or date_time parameter shows.
func textValue(p *messagev1.TemplateParameter, what string) (string, error) {
	switch p.Type {
	case "text":
		if p.Text == "" {
			return "", errcode.New(errcode.TemplateParamFormat, "%s of type text has no text", what)
		}
		return p.Text, nil
	case "currency", "date_time":
		// Localisation was dropped by Meta: fallback_value is what shows.
		if p.FallbackValue == "" {
			return "", errcode.New(errcode.TemplateParamFormat, "%s of type %s needs a fallback_value", what, p.Type)
		}
		return p.FallbackValue, nil
	}
	return "", errcode.New(errcode.TemplateParamFormat, "%s must be of type text, currency or date_time, not %s", what, p.Type)
}

// fill replaces {{i}} in text by values[i-1].
func fill(text string, values []string) string {
	return variableRE.ReplaceAllStringFunc(text, func(m string) string {
		vs, _ := Variables(m)
		if len(vs) == 1 && vs[0] <= len(values) {
			return values[vs[0]-1]
		}
		return m
	})
}

func hydrateButtons(t *Template, m *messagev1.Template, h *messagev1.HydratedTemplate) error {
	c, _ := t.Component("BUTTONS")
	params := map[int]*messagev1.TemplateButtonParameter{}
	for _, p := range m.Buttons {
		if p.Index < 0 || int(p.Index) >= len(c.Buttons) {
			return errcode.New(errcode.TemplateButtonsUnsupported, "template %s has no button %d", t.Name, p.Index)
		}
		if params[int(p.Index)] != nil {
			return errcode.New(errcode.TemplateParamCount, "button %d has more than one parameter", p.Index)
		}
		params[int(p.Index)] = p
	}
	for i, b := range c.Buttons {
		p := params[i]
		hb := &messagev1.HydratedButton{Type: strings.ToLower(b.Type), Text: b.Text}
		if p != nil && p.SubType != hb.Type {
			return errcode.New(errcode.TemplateButtonsUnsupported, "button %d of template %s is a %s button, the message gives a %s parameter", i, t.Name, hb.Type, p.SubType)
		}
		switch b.Type {
		case "QUICK_REPLY":
			hb.Payload = b.Text
			if p != nil {
				if p.Payload == "" {
					return errcode.New(errcode.TemplateParamFormat, "the parameter of quick reply %d must be of type payload", i)
				}
				if utf8.RuneCountInString(p.Payload) > MaxPayload {
					return errcode.New(errcode.TemplateParamTooLong, "the payload of quick reply %d is longer than %d characters", i, MaxPayload)
				}
				hb.Payload = p.Payload
			}
		case "URL":
			vs, _ := Variables(b.URL)
			hb.Url = b.URL
			switch {
			case len(vs) == 1 && (p == nil || p.Text == ""):
				return errcode.New(errcode.TemplateParamCount, "URL button %d needs its dynamic suffix: a text parameter", i)
			case len(vs) == 0 && p != nil:
				return errcode.New(errcode.TemplateParamCount, "URL button %d has no dynamic suffix", i)
			case len(vs) == 1:
				if utf8.RuneCountInString(p.Text) > MaxURLSuffix {
					return errcode.New(errcode.TemplateParamTooLong, "the suffix of URL button %d is longer than %d characters", i, MaxURLSuffix)
				}
				hb.Url = fill(b.URL, []string{p.Text})
			}
			if u, err := url.Parse(hb.Url); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
				return errcode.New(errcode.TemplateInvalidURL, "URL button %d hydrates to an invalid URL", i)
			}
		case "PHONE_NUMBER":
			hb.PhoneNumber = b.PhoneNumber
			if p != nil {
				return errcode.New(errcode.TemplateButtonsUnsupported, "phone number button %d takes no parameter", i)
			}
		case "COPY_CODE":
			if p == nil || p.CouponCode == "" {
				return errcode.New(errcode.TemplateParamCount, "copy-code button %d needs its code: a coupon_code parameter", i)
			}
			if utf8.RuneCountInString(p.CouponCode) > MaxCopyCode {
				return errcode.New(errcode.TemplateParamTooLong, "the code of copy-code button %d is longer than %d characters", i, MaxCopyCode)
			}
			hb.Code = p.CouponCode
		}
		h.Buttons = append(h.Buttons, hb)
	}
	return nil
}
