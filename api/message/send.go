package message

import (
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
}

// Reserved are on-prem types that openwaba does not send yet: they are
// refused with a clear 1009 rather than as unknown (none left).
var Reserved []string

// commonFields are the top-level fields of every send body besides the
// types' objects: messaging_product is what Cloud API clients send (accepted
// and ignored), ttl the legacy field (refused with 1010, see ParseSend).
var commonFields = []string{"to", "recipient_type", "type", "preview_url", "context", "messaging_product", "ttl"}

// ParseSend parses and checks a send body with the on-prem rules: "to" (any
// phone number format), recipient_type "individual", type (default text),
// the type's object (and no other type's), an optional reply context; the
// type's Parse and Check.
func (r *Registry) ParseSend(b []byte) (*Send, error) {
	allowed := slices.Clone(commonFields)
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
	case !ok || t.Parse == nil:
		return nil, errcode.New(errcode.Invalid, "type %q is unknown", s.Type)
	}
	for _, k := range top.Keys() {
		if k != s.Type && !slices.Contains(commonFields, k) && top.Has(k) {
			return nil, errcode.New(errcode.NotRequired, "parameter %s is not expected for type %s", k, s.Type)
		}
	}
	if top.Has("ttl") {
		return nil, errcode.New(errcode.NotRequired, "parameter ttl is not supported")
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
