package message

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/body"
	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/media"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Limits on interactive messages. Counts and lengths are the on-prem and
// Cloud references' (on-prem reference §2.1: at most 3 buttons, at most 10
// rows, errors 2015/2016; Cloud "interactive object": body 1024, footer 60,
// header text 60, button title 20 and id 256, list button 20, section title
// 24, row title 24, description 72, row id 200, at most 10 sections). Only
// the header of a button message may be a media.
const (
	MaxInteractiveBody   = 1024
	MaxInteractiveFooter = 60
	MaxHeaderText        = 60
	MaxButtons           = 3
	MaxButtonTitle       = 20
	MaxButtonID          = 256
	MaxListButton        = 20
	MaxSections          = 10
	MaxRows              = 10 // in all sections together
	MaxSectionTitle      = 24
	MaxRowTitle          = 24
	MaxRowDescription    = 72
	MaxRowID             = 200
)

// The API's interactive object (what a business sends, what a phone shows).
type (
	interactiveObject struct {
		Type   string             `json:"type"`
		Header *interactiveHeader `json:"header,omitempty"`
		Body   *textOnly          `json:"body,omitempty"`
		Footer *textOnly          `json:"footer,omitempty"`
		Action interactiveAction  `json:"action"`
	}
	interactiveHeader struct {
		Type     string       `json:"type"`
		Text     string       `json:"text,omitempty"`
		Image    *MediaObject `json:"image,omitempty"`
		Video    *MediaObject `json:"video,omitempty"`
		Document *MediaObject `json:"document,omitempty"`
	}
	textOnly struct {
		Text string `json:"text"`
	}
	interactiveAction struct {
		Buttons  []replyButton `json:"buttons,omitempty"`
		Button   string        `json:"button,omitempty"`
		Sections []listSection `json:"sections,omitempty"`
	}
	replyButton struct {
		Type  string   `json:"type"`
		Reply buttonID `json:"reply"`
	}
	buttonID struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	listSection struct {
		Title string    `json:"title,omitempty"`
		Rows  []listRow `json:"rows"`
	}
	listRow struct {
		ID          string `json:"id"`
		Title       string `json:"title"`
		Description string `json:"description,omitempty"`
	}
)

// headerMediaTypes are the media an interactive header may carry.
var headerMediaTypes = []string{"image", "video", "document"}

var interactiveType = Type{
	Name: "interactive",
	Kind: "interactive",
	Of:   func(c *messagev1.Content) bool { return c.GetInteractive() != nil },
	Parse: func(top body.Object) (*messagev1.Content, error) {
		return parseInteractive(top)
	},
	Check: func(c *messagev1.Content) error { return checkInteractive(c.GetInteractive()) },
	Show:  func(c *messagev1.Content) any { return showInteractive(c.GetInteractive()) },
	Terminal: func(c *messagev1.Content) string {
		in := c.GetInteractive()
		var b strings.Builder
		if h := in.GetHeader(); h != nil {
			if h.Text != "" {
				fmt.Fprintf(&b, "*%s*\n", h.Text)
			} else if h.Media != nil {
				fmt.Fprintf(&b, "[%s header]\n", h.Media.Type)
			}
		}
		b.WriteString(in.Body)
		if in.Footer != "" {
			fmt.Fprintf(&b, "\n_%s_", in.Footer)
		}
		for i, ch := range Choices(in) {
			fmt.Fprintf(&b, "\n  %d) %s", i+1, ch.Title)
			if ch.Description != "" {
				b.WriteString(" - " + ch.Description)
			}
		}
		return b.String()
	},
}

func parseInteractive(top body.Object) (*messagev1.Content, error) {
	o, _, err := body.Nested(top, "interactive", "type", "header", "body", "footer", "action")
	if err != nil {
		return nil, err
	}
	in := &messagev1.Interactive{}
	if in.Type, err = body.RequiredString(o, "type"); err != nil {
		return nil, err
	}
	switch in.Type {
	case "button", "list":
	case "product", "product_list":
		return nil, errcode.New(errcode.Invalid, "interactive type %s needs a product catalog, and openwaba has no catalogs: send button or list", in.Type)
	default:
		return nil, errcode.New(errcode.Invalid, `interactive.type must be "button" or "list"`)
	}
	if h, present, err := body.Nested(o, "header", "type", "text", "image", "video", "document"); err != nil {
		return nil, err
	} else if present {
		if in.Header, err = parseHeader(h); err != nil {
			return nil, err
		}
	}
	bo, present, err := body.Nested(o, "body", "text")
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, errcode.New(errcode.Missing, "interactive.body is required")
	}
	if in.Body, err = body.RequiredString(bo, "text"); err != nil {
		return nil, err
	}
	if f, present, err := body.Nested(o, "footer", "text"); err != nil {
		return nil, err
	} else if present {
		if in.Footer, err = body.RequiredString(f, "text"); err != nil {
			return nil, err
		}
	}
	a, present, err := body.Nested(o, "action", "buttons", "button", "sections")
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, errcode.New(errcode.Missing, "interactive.action is required")
	}
	if in.Type == "button" {
		err = parseButtons(a, in)
	} else {
		err = parseList(a, in)
	}
	if err != nil {
		return nil, err
	}
	return &messagev1.Content{Body: &messagev1.Content_Interactive{Interactive: in}}, nil
}

func parseHeader(h body.Object) (*messagev1.InteractiveHeader, error) {
	t, err := body.RequiredString(h, "type")
	if err != nil {
		return nil, err
	}
	out := &messagev1.InteractiveHeader{Type: t}
	switch {
	case t == "text":
		if out.Text, err = body.RequiredString(h, "text"); err != nil {
			return nil, err
		}
	case slices.Contains(headerMediaTypes, t):
		k, _ := media.KindOf(t)
		if out.Media, err = parseMediaObject(h, t, k); err != nil {
			return nil, err
		}
	default:
		return nil, errcode.New(errcode.Invalid, `interactive.header.type must be "text", "image", "video" or "document"`)
	}
	for _, other := range append([]string{"text"}, headerMediaTypes...) {
		if other != t && h.Has(other) {
			return nil, errcode.New(errcode.NotRequired, "parameter interactive.header.%s is not expected for a %s header", other, t)
		}
	}
	return out, nil
}

func parseButtons(a body.Object, in *messagev1.Interactive) error {
	for _, k := range []string{"button", "sections"} {
		if a.Has(k) {
			return errcode.New(errcode.NotRequired, "parameter interactive.action.%s is not expected for type button", k)
		}
	}
	items, present, err := body.Array(a, "buttons")
	if err != nil {
		return err
	}
	if !present {
		return errcode.New(errcode.Missing, "interactive.action.buttons is required")
	}
	for i, it := range items {
		b, err := body.Parse(body.Elem(a, "buttons", i), it, "type", "reply")
		if err != nil {
			return err
		}
		t, err := body.RequiredString(b, "type")
		if err != nil {
			return err
		}
		if t != "reply" {
			return errcode.New(errcode.Invalid, `%stype must be "reply"`, b.Path)
		}
		r, present, err := body.Nested(b, "reply", "id", "title")
		if err != nil {
			return err
		}
		if !present {
			return errcode.New(errcode.Missing, "%sreply is required", b.Path)
		}
		rb := &messagev1.ReplyButton{}
		if rb.Id, err = body.RequiredString(r, "id"); err != nil {
			return err
		}
		if rb.Title, err = body.RequiredString(r, "title"); err != nil {
			return err
		}
		in.Buttons = append(in.Buttons, rb)
	}
	return nil
}

func parseList(a body.Object, in *messagev1.Interactive) error {
	if a.Has("buttons") {
		return errcode.New(errcode.NotRequired, "parameter interactive.action.buttons is not expected for type list")
	}
	var err error
	if in.ListButton, err = body.RequiredString(a, "button"); err != nil {
		return err
	}
	items, present, err := body.Array(a, "sections")
	if err != nil {
		return err
	}
	if !present {
		return errcode.New(errcode.Missing, "interactive.action.sections is required")
	}
	for i, it := range items {
		so, err := body.Parse(body.Elem(a, "sections", i), it, "title", "rows")
		if err != nil {
			return err
		}
		sec := &messagev1.ListSection{}
		if sec.Title, err = body.String(so, "title"); err != nil {
			return err
		}
		rows, present, err := body.Array(so, "rows")
		if err != nil {
			return err
		}
		if !present {
			return errcode.New(errcode.Missing, "%srows is required", so.Path)
		}
		for j, rr := range rows {
			ro, err := body.Parse(body.Elem(so, "rows", j), rr, "id", "title", "description")
			if err != nil {
				return err
			}
			row := &messagev1.ListRow{}
			if row.Id, err = body.RequiredString(ro, "id"); err != nil {
				return err
			}
			if row.Title, err = body.RequiredString(ro, "title"); err != nil {
				return err
			}
			if row.Description, err = body.String(ro, "description"); err != nil {
				return err
			}
			sec.Rows = append(sec.Rows, row)
		}
		in.Sections = append(in.Sections, sec)
	}
	return nil
}

// tooLong checks a field's length in characters.
func tooLong(path, v string, max int) error {
	if n := utf8.RuneCountInString(v); n > max {
		return errcode.New(errcode.Invalid, "%s has %d characters, more than %d", path, n, max)
	}
	return nil
}

func checkInteractive(in *messagev1.Interactive) error {
	if in.Type != "button" && in.Type != "list" {
		return errcode.New(errcode.Invalid, `interactive.type must be "button" or "list"`)
	}
	if strings.TrimSpace(in.Body) == "" {
		return errcode.New(errcode.Missing, "interactive.body.text is required")
	}
	if err := tooLong("interactive.body.text", in.Body, MaxInteractiveBody); err != nil {
		return err
	}
	if err := tooLong("interactive.footer.text", in.Footer, MaxInteractiveFooter); err != nil {
		return err
	}
	if h := in.Header; h != nil {
		switch {
		case h.Type == "text":
			if strings.TrimSpace(h.Text) == "" {
				return errcode.New(errcode.Missing, "interactive.header.text is required")
			}
			if err := tooLong("interactive.header.text", h.Text, MaxHeaderText); err != nil {
				return err
			}
		case slices.Contains(headerMediaTypes, h.Type) && h.Media != nil && h.Media.Type == h.Type:
			if in.Type == "list" {
				return errcode.New(errcode.Invalid, "a list message's header must be text")
			}
			if err := CheckMedia(h.Media, "interactive.header."+h.Type+"."); err != nil {
				return err
			}
		default:
			return errcode.New(errcode.Invalid, `interactive.header.type must be "text", "image", "video" or "document", with its object`)
		}
	}
	if in.Type == "button" {
		return checkButtons(in)
	}
	return checkList(in)
}

func checkButtons(in *messagev1.Interactive) error {
	if in.ListButton != "" || len(in.Sections) > 0 {
		return errcode.New(errcode.NotRequired, "a button message has no action.button or action.sections")
	}
	if n := len(in.Buttons); n < 1 || n > MaxButtons {
		return errcode.New(errcode.Invalid, "interactive.action.buttons has %d buttons: send 1 to %d", n, MaxButtons)
	}
	seen := map[string]bool{}
	for i, b := range in.Buttons {
		p := fmt.Sprintf("interactive.action.buttons[%d].reply.", i)
		switch {
		case strings.TrimSpace(b.Id) == "":
			return errcode.New(errcode.Missing, "%sid is required", p)
		case strings.TrimSpace(b.Id) != b.Id:
			return errcode.New(errcode.Invalid, "%sid must not start or end with spaces", p)
		case strings.TrimSpace(b.Title) == "":
			return errcode.New(errcode.Missing, "%stitle is required", p)
		case seen[b.Id]:
			return errcode.New(errcode.Invalid, "%sid %q is used by another button: ids must be unique", p, b.Id)
		}
		seen[b.Id] = true
		if err := tooLong(p+"id", b.Id, MaxButtonID); err != nil {
			return err
		}
		if err := tooLong(p+"title", b.Title, MaxButtonTitle); err != nil {
			return err
		}
	}
	return nil
}

func checkList(in *messagev1.Interactive) error {
	if len(in.Buttons) > 0 {
		return errcode.New(errcode.NotRequired, "a list message has no action.buttons")
	}
	if strings.TrimSpace(in.ListButton) == "" {
		return errcode.New(errcode.Missing, "interactive.action.button is required")
	}
	if err := tooLong("interactive.action.button", in.ListButton, MaxListButton); err != nil {
		return err
	}
	if n := len(in.Sections); n < 1 || n > MaxSections {
		return errcode.New(errcode.InvalidSections, "interactive.action.sections has %d sections: send 1 to %d", n, MaxSections)
	}
	rows := 0
	seen := map[string]bool{}
	for i, s := range in.Sections {
		p := fmt.Sprintf("interactive.action.sections[%d].", i)
		if len(in.Sections) > 1 && strings.TrimSpace(s.Title) == "" {
			return errcode.New(errcode.Missing, "%stitle is required when there is more than one section", p)
		}
		if err := tooLong(p+"title", s.Title, MaxSectionTitle); err != nil {
			return err
		}
		if len(s.Rows) == 0 {
			return errcode.New(errcode.InvalidRows, "%srows is empty: every section needs at least one row", p)
		}
		for j, r := range s.Rows {
			rows++
			rp := fmt.Sprintf("%srows[%d].", p, j)
			switch {
			case strings.TrimSpace(r.Id) == "":
				return errcode.New(errcode.Missing, "%sid is required", rp)
			case strings.TrimSpace(r.Title) == "":
				return errcode.New(errcode.Missing, "%stitle is required", rp)
			case seen[r.Id]:
				return errcode.New(errcode.Invalid, "%sid %q is used by another row: row ids must be unique", rp, r.Id)
			}
			seen[r.Id] = true
			for _, c := range []struct {
				name, v string
				max     int
			}{{"id", r.Id, MaxRowID}, {"title", r.Title, MaxRowTitle}, {"description", r.Description, MaxRowDescription}} {
				if err := tooLong(rp+c.name, c.v, c.max); err != nil {
					return err
				}
			}
		}
	}
	if rows > MaxRows {
		return errcode.New(errcode.InvalidRows, "the list has %d rows in all, more than %d", rows, MaxRows)
	}
	return nil
}

func showInteractive(in *messagev1.Interactive) interactiveObject {
	out := interactiveObject{Type: in.Type, Body: &textOnly{in.Body}}
	if in.Footer != "" {
		out.Footer = &textOnly{in.Footer}
	}
	if h := in.Header; h != nil {
		hh := &interactiveHeader{Type: h.Type, Text: h.Text}
		if md := h.Media; md != nil {
			obj := &MediaObject{MimeType: md.MimeType, Caption: md.Caption, Filename: md.Filename}
			if len(md.FileSha256) > 0 {
				obj.SHA256 = fmt.Sprintf("%x", md.FileSha256)
			}
			switch h.Type {
			case "image":
				hh.Image = obj
			case "video":
				hh.Video = obj
			case "document":
				hh.Document = obj
			}
		}
		out.Header = hh
	}
	for _, b := range in.Buttons {
		out.Action.Buttons = append(out.Action.Buttons, replyButton{Type: "reply", Reply: buttonID{b.Id, b.Title}})
	}
	out.Action.Button = in.ListButton
	for _, s := range in.Sections {
		sec := listSection{Title: s.Title}
		for _, r := range s.Rows {
			sec.Rows = append(sec.Rows, listRow{r.Id, r.Title, r.Description})
		}
		out.Action.Sections = append(out.Action.Sections, sec)
	}
	return out
}

// Choice is one answer a customer may give to an interactive message: a
// button or a list row.
type Choice struct {
	ID, Title, Description string
}

// Choices are the buttons or rows of an interactive message, in order.
func Choices(in *messagev1.Interactive) []Choice {
	var out []Choice
	for _, b := range in.GetButtons() {
		out = append(out, Choice{ID: b.Id, Title: b.Title})
	}
	for _, s := range in.GetSections() {
		for _, r := range s.Rows {
			out = append(out, Choice{ID: r.Id, Title: r.Title, Description: r.Description})
		}
	}
	return out
}

// Reply is the customer's answer to the interactive message id (sent by
// from) choosing choice (a button or row id, or its 1-based number).
func Reply(in *messagev1.Interactive, id, from, choice string) (*messagev1.Content, error) {
	chs := Choices(in)
	for i, ch := range chs {
		if ch.ID == choice || fmt.Sprint(i+1) == choice {
			r := &messagev1.InteractiveReply{Type: "button_reply", Id: ch.ID, Title: ch.Title}
			if in.Type == "list" {
				r.Type, r.Description = "list_reply", ch.Description
			}
			return &messagev1.Content{Body: &messagev1.Content_InteractiveReply{InteractiveReply: r},
				Context: &messagev1.ContextInfo{MessageId: id, From: from}}, nil
		}
	}
	return nil, errcode.New(errcode.Invalid, "message %s has no button or row %q", id, choice)
}

// replyObject is the API's inbound interactive object.
type replyObject struct {
	Type        string    `json:"type"`
	ButtonReply *replyRef `json:"button_reply,omitempty"`
	ListReply   *replyRef `json:"list_reply,omitempty"`
}

type replyRef struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

var interactiveReplyType = Type{
	Name: "interactive_reply",
	Kind: "interactive",
	Of:   func(c *messagev1.Content) bool { return c.GetInteractiveReply() != nil },
	Show: func(c *messagev1.Content) any { return showReply(c.GetInteractiveReply()) },
	Webhook: func(c *messagev1.Content) (string, any) {
		return "interactive", showReply(c.GetInteractiveReply())
	},
	Terminal: func(c *messagev1.Content) string {
		return "[chose] " + c.GetInteractiveReply().GetTitle()
	},
	Compose: func(raw json.RawMessage) (*messagev1.Content, error) {
		o, err := body.Parse("interactive.", raw, "type", "button_reply", "list_reply")
		if err != nil {
			return nil, err
		}
		t, err := body.RequiredString(o, "type")
		if err != nil {
			return nil, err
		}
		if t != "button_reply" && t != "list_reply" {
			return nil, errcode.New(errcode.Invalid, `interactive.type must be "button_reply" or "list_reply"`)
		}
		ref, present, err := body.Nested(o, t, "id", "title", "description")
		if err != nil {
			return nil, err
		}
		if !present {
			return nil, errcode.New(errcode.Missing, "interactive.%s is required", t)
		}
		r := &messagev1.InteractiveReply{Type: t}
		if r.Id, err = body.RequiredString(ref, "id"); err != nil {
			return nil, err
		}
		if r.Title, err = body.String(ref, "title"); err != nil {
			return nil, err
		}
		if r.Description, err = body.String(ref, "description"); err != nil {
			return nil, err
		}
		return &messagev1.Content{Body: &messagev1.Content_InteractiveReply{InteractiveReply: r}}, nil
	},
}

func showReply(r *messagev1.InteractiveReply) replyObject {
	ref := &replyRef{ID: r.GetId(), Title: r.GetTitle(), Description: r.GetDescription()}
	if r.GetType() == "list_reply" {
		return replyObject{Type: "list_reply", ListReply: ref}
	}
	return replyObject{Type: "button_reply", ButtonReply: ref}
}
