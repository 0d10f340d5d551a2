// Package message is the one home of the message types. Each type is one
// file here: its JSON shape in the on-prem API (what a business sends in
// POST /v1/messages and what its webhook receives), its protobuf mapping
// (message.v1.Content, what travels end to end), its limits and checks, the
// stanza kind chatd sees (metadata only, never content), and how a phone
// shows it and sends it. The webapp parses and checks requests with
// ParseSend; coreapp checks them again with Check (it is authoritative, and
// adds only what needs state: media ids, the message a reaction points at),
// renders inbound webhooks with Inbound and derives stanza kinds with Kind;
// waphone shows messages with Show and composes its own with Compose.
//
// A new type is a field of Content, one file here that builds its Type and
// adds it to builtin, and tests. Registry, Default and every function are
// safe for concurrent use.
package message

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/openwaba/openwaba/api/body"
	"github.com/openwaba/openwaba/api/errcode"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Type describes one message type.
type Type struct {
	// Name is the type in the API ("location"). The media family has one
	// Type per media type ("image", "document", …).
	Name string
	// Kind is the stanza kind chatd sees for it ("text", "media",
	// "location", …): metadata, never content.
	Kind string
	// Of reports whether c is a message of this type.
	Of func(c *messagev1.Content) bool

	// The business's side; Parse is nil for a type a business cannot send.
	//
	// Parse decodes the type's object of a send body (top is the whole
	// body: a type may read a top-level field, as text reads preview_url)
	// into content; Check is then run on it.
	Parse func(top body.Object) (*messagev1.Content, error)
	// Check validates content a business sends: the limits of the type.
	// Coreapp runs it again on what the webapp sent.
	Check func(c *messagev1.Content) error
	// Show is what a phone shows of a received message of this type: the
	// object in the API's send shape (waphone --json prints it under the
	// type's name).
	Show func(c *messagev1.Content) any
	// Terminal, if set, is how the phone's terminal mode prints it (one or
	// more lines); otherwise Show's JSON.
	Terminal func(c *messagev1.Content) string

	// The customer's side; Webhook is nil for a type a customer cannot send.
	//
	// Webhook renders the inbound webhook's message object: its type name
	// in the payload and the object under that name.
	Webhook func(c *messagev1.Content) (string, any)
	// Compose builds the content of a phone's command object (the type's
	// object in the API's shape, as Show prints it); nil for types a phone
	// sends otherwise (a file: it must be encrypted and uploaded first).
	Compose func(raw json.RawMessage) (*messagev1.Content, error)
}

// Registry is a set of types by name.
type Registry struct {
	types []Type
}

// NewRegistry returns a registry of types; it panics on a type without a
// name, kind or Of, or a name given twice (a programming error).
func NewRegistry(types ...Type) *Registry {
	r := &Registry{}
	for _, t := range types {
		if t.Name == "" || t.Kind == "" || t.Of == nil {
			panic(fmt.Sprintf("message type %q: name, kind and Of are required", t.Name))
		}
		if _, dup := r.Lookup(t.Name); dup {
			panic(fmt.Sprintf("message type %q registered twice", t.Name))
		}
		r.types = append(r.types, t)
	}
	return r
}

// Builtin are the types openwaba knows.
func Builtin() []Type {
	return slices.Concat([]Type{textType}, mediaTypes(), []Type{locationType, contactsType, interactiveType, reactionType,
		templateType, hsmType, interactiveReplyType, buttonType})
}

// Default is the registry of the built-in types.
var Default = NewRegistry(Builtin()...)

// Types are the registered types, in registration order.
func (r *Registry) Types() []Type { return slices.Clone(r.types) }

// Lookup returns the type called name.
func (r *Registry) Lookup(name string) (Type, bool) {
	for _, t := range r.types {
		if t.Name == name {
			return t, true
		}
	}
	return Type{}, false
}

// Of returns the type of c (false for content of no registered type).
func (r *Registry) Of(c *messagev1.Content) (Type, bool) {
	if c == nil {
		return Type{}, false
	}
	for _, t := range r.types {
		if t.Of(c) {
			return t, true
		}
	}
	return Type{}, false
}

// Kind is the stanza kind of c ("unknown" for content of no registered
// type).
func (r *Registry) Kind(c *messagev1.Content) string {
	if t, ok := r.Of(c); ok {
		return t.Kind
	}
	return "unknown"
}

// Check validates content a business sends (every type's own limits, and
// the reply context).
func (r *Registry) Check(c *messagev1.Content) error {
	t, ok := r.Of(c)
	if !ok || t.Parse == nil {
		return errcode.New(errcode.Invalid, "the message has no content of a type a business can send")
	}
	if err := checkContext(c.GetContext()); err != nil {
		return err
	}
	if t.Check != nil {
		return t.Check(c)
	}
	return nil
}

// Show returns the type name and object a phone shows for c (false for
// content of no registered type).
func (r *Registry) Show(c *messagev1.Content) (string, any, bool) {
	t, ok := r.Of(c)
	if !ok || t.Show == nil {
		return "", nil, false
	}
	return t.Name, t.Show(c), true
}

// Terminal is how a terminal shows c: the type's own rendering, or its
// object as JSON.
func (r *Registry) Terminal(c *messagev1.Content) string {
	t, ok := r.Of(c)
	switch {
	case !ok:
		return "[a message of a type this phone cannot show]"
	case t.Terminal != nil:
		return t.Terminal(c)
	}
	b, _ := json.Marshal(t.Show(c))
	return "[" + t.Name + "] " + string(b)
}

// Compose builds the content of a phone's message of type name from its
// command object, with an optional reply context.
func (r *Registry) Compose(name string, raw json.RawMessage, replyTo, replyFrom string) (*messagev1.Content, error) {
	t, ok := r.Lookup(name)
	if !ok || t.Compose == nil {
		return nil, errcode.New(errcode.Invalid, "a phone cannot send a %s message this way", name)
	}
	c, err := t.Compose(raw)
	if err != nil {
		return nil, err
	}
	if replyTo != "" {
		c.Context = &messagev1.ContextInfo{MessageId: replyTo, From: replyFrom}
	}
	return c, nil
}

// Inbound renders the message object of an inbound webhook for c: the type
// name and its object, or "unknown" and the on-prem error when c is of no
// type a customer sends (or could not be read).
func (r *Registry) Inbound(c *messagev1.Content) (string, any, *errcode.Error) {
	t, ok := r.Of(c)
	if !ok || t.Webhook == nil {
		return "unknown", nil, &errcode.Error{Code: errcode.UnsupportedType}
	}
	name, obj := t.Webhook(c)
	return name, obj, nil
}

// MediaOf returns the media of c that travel as files: a media message's
// file, an interactive message's media header. The pointers let coreapp
// replace each with what it prepared (encrypted, uploaded).
func MediaOf(c *messagev1.Content) []**messagev1.Media {
	switch b := c.GetBody().(type) {
	case *messagev1.Content_Media:
		return []**messagev1.Media{&b.Media}
	case *messagev1.Content_Interactive:
		if h := b.Interactive.GetHeader(); h != nil && h.Media != nil {
			return []**messagev1.Media{&h.Media}
		}
	case *messagev1.Content_Template:
		// Before hydration, the media parameters; after, the header's.
		if h := b.Template.GetHydrated(); h != nil {
			if h.HeaderMedia != nil {
				return []**messagev1.Media{&h.HeaderMedia}
			}
			return nil
		}
		var out []**messagev1.Media
		for _, p := range b.Template.Header {
			if p.Media != nil {
				out = append(out, &p.Media)
			}
		}
		return out
	}
	return nil
}

// Limits on the reply context.
const maxContextID = 128 // a wamid is at most 128 characters (Graph reference)

func checkContext(ctx *messagev1.ContextInfo) error {
	if ctx == nil {
		return nil
	}
	switch {
	case ctx.MessageId == "":
		return errcode.New(errcode.Missing, "context.message_id is required")
	case len(ctx.MessageId) > maxContextID || !printable(ctx.MessageId):
		return errcode.New(errcode.Invalid, "context.message_id must be a message id of at most %d printable characters", maxContextID)
	}
	return nil
}

// printable reports whether s has only the characters 0x21 to 0x7e.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}
