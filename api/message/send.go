package message

import (
	"encoding/json"
	"slices"

	"github.com/openwaba/openwaba/api/body"
	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/phone"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Send is a parsed POST /v1/messages body.
type Send struct {
	To            phone.Number
	RecipientType string // "individual"
	Type          string
	Content       *messagev1.Content
	// CallbackData is the Cloud API's biz_opaque_callback_data.
	CallbackData string
}

// Surface is the API a send body comes from: the same types and checks,
// with each surface's own top-level rules.
type Surface int

const (
	// OnPrem is POST /v1/messages: messaging_product is accepted and
	// ignored, a template names its namespace (2014).
	OnPrem Surface = iota
	// Cloud is POST /{v}/{phone-number-id}/messages: messaging_product
	// "whatsapp" is required, a template has no namespace (the number's
	// own), biz_opaque_callback_data is accepted, hsm is not a type.
	Cloud
)

// MaxCallbackData is the longest biz_opaque_callback_data (Graph
// reference, messages: 512 characters).
const MaxCallbackData = 512

// Reserved are on-prem types that openwaba does not send yet: they are
// refused with a clear 1009 rather than as unknown (none left).
var Reserved []string

// commonFields are the top-level fields of every send body besides the
// types' objects: messaging_product is what Cloud API clients send (accepted
// and ignored), ttl the legacy on-prem field (checkTTL).
var commonFields = []string{"to", "recipient_type", "type", "preview_url", "context", "messaging_product", "ttl"}

// ParseSend parses and checks a send body with the on-prem rules: "to" (any
// phone number format), recipient_type "individual", type (default text),
// the type's object (and no other type's), an optional reply context; the
// type's Parse and Check.
func (r *Registry) ParseSend(b []byte) (*Send, error) { return r.ParseSendFrom(OnPrem, b) }

// ParseSendFrom is ParseSend with the rules of a surface.
func (r *Registry) ParseSendFrom(sf Surface, b []byte) (*Send, error) {
	common := commonFields
	if sf == Cloud {
		common = append(slices.Clone(commonFields), "biz_opaque_callback_data")
	}
	allowed := slices.Clone(common)
	for _, t := range r.types {
		if t.Parse != nil {
			allowed = append(allowed, t.Name)
		}
	}
	allowed = append(allowed, Reserved...)
	top, err := body.Parse("", b, allowed...)
	if err != nil {
		return nil, err
	}
	s := &Send{RecipientType: "individual"}
	if sf == Cloud {
		mp, err := body.RequiredString(top, "messaging_product")
		if err != nil {
			return nil, err
		}
		if mp != "whatsapp" {
			return nil, errcode.New(errcode.Invalid, `messaging_product must be "whatsapp"`)
		}
		if s.CallbackData, err = body.String(top, "biz_opaque_callback_data"); err != nil {
			return nil, err
		}
		if len(s.CallbackData) > MaxCallbackData {
			return nil, errcode.New(errcode.Invalid, "biz_opaque_callback_data is longer than %d characters", MaxCallbackData)
		}
	}
	rt, err := body.String(top, "recipient_type")
	if err != nil {
		return nil, err
	}
	if rt != "" && rt != "individual" {
		return nil, errcode.New(errcode.RecipientType, `recipient_type must be "individual"`)
	}
	to, err := body.RequiredString(top, "to")
	if err != nil {
		return nil, err
	}
	if s.To, err = phone.Parse(to); err != nil {
		return nil, errcode.New(errcode.Invalid, "to must be a phone number of 5 to 20 digits")
	}
	if s.Type, err = body.String(top, "type"); err != nil {
		return nil, err
	}
	if s.Type == "" {
		s.Type = "text"
	}
	t, ok := r.Lookup(s.Type)
	switch {
	case slices.Contains(Reserved, s.Type):
		return nil, errcode.New(errcode.Invalid, "type %s is not supported yet", s.Type)
	case !ok || t.Parse == nil, sf == Cloud && s.Type == "hsm":
		return nil, errcode.New(errcode.Invalid, "type %q is unknown", s.Type)
	}
	for _, k := range top.Keys() {
		if k != s.Type && !slices.Contains(common, k) && top.Has(k) {
			return nil, errcode.New(errcode.NotRequired, "parameter %s is not expected for type %s", k, s.Type)
		}
	}
	if err := checkTTL(sf, top); err != nil {
		return nil, err
	}
	if _, _, err := body.Field[bool](top, "preview_url"); err != nil {
		return nil, err // validated for every type, used by text
	}
	if !top.Has(s.Type) {
		return nil, errcode.New(errcode.Missing, "%s is required for type %s", s.Type, s.Type)
	}
	c, err := t.Parse(top)
	if err != nil {
		return nil, err
	}
	if tpl := c.GetTemplate(); tpl != nil && tpl.Namespace == "" && sf == OnPrem {
		// On-prem requires the namespace (2014 "Expected Namespace is Empty").
		return nil, errcode.New(errcode.NamespaceEmpty, "%s.namespace is required: the namespace of GET /v1/configs/templates", s.Type)
	}
	ctx, present, err := body.Nested(top, "context", "message_id")
	if err != nil {
		return nil, err
	}
	if present {
		id, err := body.RequiredString(ctx, "message_id")
		if err != nil {
			return nil, err
		}
		c.Context = &messagev1.ContextInfo{MessageId: id}
	}
	if err := r.Check(c); err != nil {
		return nil, err
	}
	s.Content = c
	return s, nil
}

// checkTTL checks the legacy on-prem ttl: on-prem accepted it and every
// message lives as long as the network keeps it undelivered (chatd's
// WA_CHATD_QUEUE_TTL, 30 days; then the send fails with 410 "Message
// expired"), so it is accepted and has no effect. It must be a
// non-negative number, a string or an object, as the on-prem clients that
// still send it do. The Cloud API has no ttl: 1010 there.
func checkTTL(sf Surface, top body.Object) error {
	if !top.Has("ttl") {
		return nil
	}
	if sf == Cloud {
		return errcode.New(errcode.NotRequired, "parameter ttl is not expected")
	}
	var v any
	if err := json.Unmarshal(top.Raw("ttl"), &v); err != nil {
		return errcode.New(errcode.Invalid, "ttl is not valid JSON")
	}
	switch v := v.(type) {
	case float64:
		if v < 0 {
			return errcode.New(errcode.Invalid, "ttl must not be negative")
		}
	case string, map[string]any:
	default:
		return errcode.New(errcode.Invalid, "ttl must be a number, a string or an object")
	}
	return nil
}
