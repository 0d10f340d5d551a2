package message

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/body"
	"github.com/openwaba/openwaba/api/errcode"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// MaxTextBody is the longest text body, in characters (on-prem: "Message
// too long", 1001, above 4096).
const MaxTextBody = 4096

// textObject is the API's text object, sent and received.
type textObject struct {
	Body       string `json:"body"`
	PreviewURL bool   `json:"preview_url,omitempty"`
}

var textType = Type{
	Name: "text",
	Kind: "text",
	Of:   func(c *messagev1.Content) bool { return c.GetText() != nil },
	// {"text":{"body","preview_url"}} with preview_url also at the top
	// level, where on-prem has it.
	Parse: func(top body.Object) (*messagev1.Content, error) {
		o, _, err := body.Nested(top, "text", "body", "preview_url")
		if err != nil {
			return nil, err
		}
		t, err := parseText(o)
		if err != nil {
			return nil, err
		}
		topPreview, _, _ := body.Field[bool](top, "preview_url")
		t.PreviewUrl = t.PreviewUrl || topPreview
		return &messagev1.Content{Body: &messagev1.Content_Text{Text: t}}, nil
	},
	Check: func(c *messagev1.Content) error {
		b := c.GetText().GetBody()
		switch n := utf8.RuneCountInString(b); {
		case strings.TrimSpace(b) == "":
			return errcode.New(errcode.Missing, "text.body is required")
		case n > MaxTextBody:
			return errcode.New(errcode.TooLong, "text.body has %d characters, more than %d", n, MaxTextBody)
		}
		return nil
	},
	Show: func(c *messagev1.Content) any {
		return textObject{Body: c.GetText().GetBody(), PreviewURL: c.GetText().GetPreviewUrl()}
	},
	Terminal: func(c *messagev1.Content) string { return c.GetText().GetBody() },
	Webhook: func(c *messagev1.Content) (string, any) {
		return "text", textObject{Body: c.GetText().GetBody()}
	},
	Compose: func(raw json.RawMessage) (*messagev1.Content, error) {
		o, err := body.Parse("text.", raw, "body", "preview_url")
		if err != nil {
			return nil, err
		}
		t, err := parseText(o)
		if err != nil {
			return nil, err
		}
		return &messagev1.Content{Body: &messagev1.Content_Text{Text: t}}, nil
	},
}

func parseText(o body.Object) (*messagev1.Text, error) {
	b, err := body.RequiredString(o, "body")
	if err != nil {
		return nil, err
	}
	preview, _, err := body.Field[bool](o, "preview_url")
	if err != nil {
		return nil, err
	}
	return &messagev1.Text{Body: b, PreviewUrl: preview}, nil
}
