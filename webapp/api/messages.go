package api

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Limits on messages.
const (
	MaxTextBody = 4096 // text.body, in characters
	MaxCaption  = 1024 // a media caption, in characters
	MaxFilename = 240  // a document's filename, in characters
	MaxLink     = 2048 // a media link, in bytes
	maxMediaRef = 256  // a media id, in bytes
)

// mediaTypes are the message types that carry a file.
var mediaTypes = []string{"image", "audio", "video", "document", "sticker"}

// laterTypes are on-prem message types this webapp does not send yet.
var laterTypes = []string{"location", "contacts", "template", "interactive", "reaction", "hsm"}

// messageFields are the accepted top-level fields of POST /v1/messages:
// the common ones, one object per type, the legacy ttl, and
// messaging_product (sent by Cloud API clients, ignored).
var messageFields = slices.Concat([]string{"to", "recipient_type", "type", "text", "preview_url", "context", "messaging_product", "ttl"}, mediaTypes, laterTypes)

// mediaFields are the fields of a media object, by message type.
var mediaFields = map[string][]string{
	"image":    {"id", "link", "provider", "caption"},
	"video":    {"id", "link", "provider", "caption"},
	"document": {"id", "link", "provider", "caption", "filename"},
	"audio":    {"id", "link", "provider"},
	"sticker":  {"id", "link", "provider"},
}

// normalizeNumber strips '+', spaces, '-', '(' and ')' and wants 5 to 20
// digits.
func normalizeNumber(s string) (string, bool) {
	n := strings.Map(func(r rune) rune {
		switch r {
		case '+', ' ', '-', '(', ')':
			return -1
		}
		return r
	}, s)
	return n, allDigits(n) && len(n) >= 5 && len(n) <= 20
}

type messagesResponse struct {
	Messages []idItem `json:"messages"`
	Meta     meta     `json:"meta"`
}

type idItem struct {
	ID string `json:"id"`
}

// parseMessage validates a POST /v1/messages body into a SendMessageRequest
// (without account and request id).
func parseMessage(o object) (*corev1.SendMessageRequest, error) {
	req := &corev1.SendMessageRequest{RecipientType: "individual"}
	rt, _, err := field[string](o, "recipient_type")
	if err != nil {
		return nil, err
	}
	if rt != "" && rt != "individual" {
		return nil, apiErr(http.StatusBadRequest, codeRecipientType, `recipient_type must be "individual"`)
	}
	to, err := requiredString(o, "to")
	if err != nil {
		return nil, err
	}
	var ok bool
	if req.To, ok = normalizeNumber(to); !ok {
		return nil, invalid("to must be a phone number of 5 to 20 digits")
	}
	typ, _, err := field[string](o, "type")
	if err != nil {
		return nil, err
	}
	switch {
	case typ == "" || typ == "text", slices.Contains(mediaTypes, typ):
		if typ == "" {
			typ = "text"
		}
	case slices.Contains(laterTypes, typ):
		return nil, invalid("type %s is not supported yet", typ)
	default:
		return nil, invalid("type %q is unknown", typ)
	}
	for _, other := range slices.Concat([]string{"text"}, mediaTypes, laterTypes) {
		if other != typ && o.has(other) {
			return nil, notRequired("parameter %s is not expected for type %s", other, typ)
		}
	}
	if o.has("ttl") {
		return nil, notRequired("parameter ttl is not supported")
	}
	preview, _, err := field[bool](o, "preview_url") // validated for every type, used for text
	if err != nil {
		return nil, err
	}

	var content *messagev1.Content
	if typ == "text" {
		content, err = parseText(o, preview)
	} else {
		content, err = parseMedia(o, typ)
	}
	if err != nil {
		return nil, err
	}

	ctx, present, err := nested(o, "context", "message_id")
	if err != nil {
		return nil, err
	}
	if present {
		id, err := requiredString(ctx, "message_id")
		if err != nil {
			return nil, err
		}
		content.Context = &messagev1.ContextInfo{MessageId: id}
	}
	req.Content = content
	return req, nil
}

// parseText validates the text object of a text message.
func parseText(o object, preview bool) (*messagev1.Content, error) {
	text, present, err := nested(o, "text", "body", "preview_url")
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, missing("text is required for type text")
	}
	body, err := requiredString(text, "body")
	if err != nil {
		return nil, err
	}
	if n := utf8.RuneCountInString(body); n > MaxTextBody {
		return nil, apiErr(http.StatusBadRequest, codeTooLong, "text.body has %d characters, more than %d", n, MaxTextBody)
	}
	textPreview, _, err := field[bool](text, "preview_url")
	if err != nil {
		return nil, err
	}
	return &messagev1.Content{Body: &messagev1.Content_Text{Text: &messagev1.Text{Body: body, PreviewUrl: preview || textPreview}}}, nil
}

// parseMedia validates the object of a media message (typ is one of
// mediaTypes): exactly one of id (from POST /v1/media) and link (with an
// optional provider), and the caption and filename where the type has them.
func parseMedia(o object, typ string) (*messagev1.Content, error) {
	mo, present, err := nested(o, typ, mediaFields[typ]...)
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, missing("%s is required for type %s", typ, typ)
	}
	p := mo.path
	m := &messagev1.Media{Type: typ}
	if m.MediaId, _, err = field[string](mo, "id"); err != nil {
		return nil, err
	}
	if m.Link, _, err = field[string](mo, "link"); err != nil {
		return nil, err
	}
	switch {
	case m.MediaId == "" && m.Link == "":
		return nil, missing("%sid or %slink is required", p, p)
	case m.MediaId != "" && m.Link != "":
		return nil, invalid("%s: send either id or link, not both", typ)
	case m.MediaId != "" && (len(m.MediaId) > maxMediaRef || !printableASCII(m.MediaId)):
		return nil, invalid("%sid must be a media id from POST /v1/media", p)
	case m.Link != "":
		u, err := url.Parse(m.Link)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(m.Link) > MaxLink {
			return nil, invalid("%slink must be an absolute http or https URL of at most %d characters", p, MaxLink)
		}
	}
	prov, present, err := nested(mo, "provider", "name")
	if err != nil {
		return nil, err
	}
	if present {
		if m.Link == "" {
			return nil, notRequired("parameter %sprovider is only expected with %slink", p, p)
		}
		if m.Provider, err = requiredString(prov, "name"); err != nil {
			return nil, err
		}
		if !validProviderName(m.Provider) {
			return nil, invalidProviderName(prov.path)
		}
	}
	if m.Caption, _, err = field[string](mo, "caption"); err != nil {
		return nil, err
	}
	if n := utf8.RuneCountInString(m.Caption); n > MaxCaption {
		return nil, invalid("%scaption has %d characters, more than %d", p, n, MaxCaption)
	}
	if m.Filename, _, err = field[string](mo, "filename"); err != nil {
		return nil, err
	}
	if n := utf8.RuneCountInString(m.Filename); n > MaxFilename || strings.ContainsAny(m.Filename, `/\`) || hasControl(m.Filename) {
		return nil, invalid("%sfilename must be at most %d characters, without path separators or control characters", p, MaxFilename)
	}
	return &messagev1.Content{Body: &messagev1.Content_Media{Media: m}}, nil
}

// sendMessage: POST /v1/messages (any principal).
func (s *Server) sendMessage(c echo.Context) error {
	o, err := readObject(c, messageFields...)
	if err != nil {
		return err
	}
	req, err := parseMessage(o)
	if err != nil {
		return err
	}
	req.Account = principalOf(c).account()
	req.RequestId = requestID(c)
	resp, err := call(s, c, s.opts.SendTimeout, s.core.SendMessage, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, messagesResponse{Messages: []idItem{{ID: resp.GetId()}}, Meta: s.meta})
}

// markRead: PUT /v1/messages/{id} {"status": "read"} (any principal).
func (s *Server) markRead(c echo.Context) error {
	o, err := readObject(c, "status")
	if err != nil {
		return err
	}
	st, err := requiredString(o, "status")
	if err != nil {
		return err
	}
	if st != "read" {
		return invalid(`status must be "read"`)
	}
	id := c.Param("id")
	if id == "" || len(id) > 256 {
		return notFound("message not found")
	}
	req := &corev1.MarkReadRequest{Account: principalOf(c).account(), MessageId: id}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.MarkRead, req); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}

// MaxContacts is the most numbers one POST /v1/contacts may check.
const MaxContacts = 1000

type contactsResponse struct {
	Contacts []contactItem `json:"contacts"`
	Meta     meta          `json:"meta"`
}

type contactItem struct {
	Input  string `json:"input"`
	Status string `json:"status"`
	WaID   string `json:"wa_id,omitempty"`
}

// checkContacts: POST /v1/contacts (any principal).
func (s *Server) checkContacts(c echo.Context) error {
	o, err := readObject(c, "blocking", "contacts", "force_check")
	if err != nil {
		return err
	}
	req := &corev1.CheckContactsRequest{Account: principalOf(c).account(), Blocking: "no_wait"}
	blocking, _, err := field[string](o, "blocking")
	if err != nil {
		return err
	}
	switch blocking {
	case "":
	case "wait", "no_wait":
		req.Blocking = blocking
	default:
		return invalid(`blocking must be "wait" or "no_wait"`)
	}
	contacts, present, err := field[[]string](o, "contacts")
	if err != nil {
		return err
	}
	switch {
	case !present:
		return missing("contacts is required")
	case len(contacts) == 0:
		return invalid("contacts must not be empty")
	case len(contacts) > MaxContacts:
		return invalid("contacts has %d entries, more than %d", len(contacts), MaxContacts)
	}
	req.Contacts = contacts
	if req.ForceCheck, _, err = field[bool](o, "force_check"); err != nil {
		return err
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.CheckContacts, req)
	if err != nil {
		return err
	}
	items := make([]contactItem, 0, len(resp.GetContacts()))
	for _, r := range resp.GetContacts() {
		items = append(items, contactItem{Input: r.GetInput(), Status: r.GetStatus(), WaID: r.GetWaId()})
	}
	return c.JSON(http.StatusOK, contactsResponse{Contacts: items, Meta: s.meta})
}
