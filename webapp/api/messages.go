package api

import (
	"net/http"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/openwaba/openwaba/api/message"
	"github.com/openwaba/openwaba/api/phone"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

type messagesResponse struct {
	Messages []idItem `json:"messages"`
	Meta     meta     `json:"meta"`
}

type idItem struct {
	ID string `json:"id"`
}

// parseMessage validates a POST /v1/messages body with the message
// registry into a SendMessageRequest (without account and request id).
func parseMessage(b []byte) (*corev1.SendMessageRequest, error) {
	m, err := message.Default.ParseSend(b)
	if err != nil {
		return nil, err
	}
	return &corev1.SendMessageRequest{To: m.To.String(), RecipientType: m.RecipientType, Content: m.Content}, nil
}

// sendMessage: POST /v1/messages (any principal).
func (s *Server) sendMessage(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	req, err := parseMessage(b)
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

// collectMessages: PUT /v1/services/message/gc (admin or API key) removes
// the number's finished messages older than coreapp's WA_MESSAGE_RETENTION;
// completion is reported by webhook (coreapp/messagegc).
func (s *Server) collectMessages(c echo.Context) error {
	if _, err := readObject(c); err != nil { // no parameters
		return err
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.CollectMessages, &corev1.CollectMessagesRequest{Account: principalOf(c).account()})
	if err != nil {
		return err
	}
	return s.gcResponse(c, resp.GetStatus(), func(r *servicesResponse, g *serviceGC) { r.Services.Message = g })
}

// MaxBlockReason is the longest block reason (360dialog: under 60
// characters).
const MaxBlockReason = 60

// blockContact: POST /v1/contacts/{wa_id}/block (any principal), 360dialog's
// block: {"reason"} is optional free text, checked and not kept (360dialog
// passes it on when another business is blocked, which the network does not
// allow). 2048 when the contact did not write in the last 24 hours.
func (s *Server) blockContact(c echo.Context) error {
	o, err := readObject(c, "reason")
	if err != nil {
		return err
	}
	reason, _, err := field[string](o, "reason")
	if err != nil {
		return err
	}
	if utf8.RuneCountInString(reason) >= MaxBlockReason {
		return invalid("reason must be shorter than %d characters", MaxBlockReason)
	}
	return s.setBlocked(c, true)
}

// unblockContact: POST /v1/contacts/{wa_id}/unblock (any principal).
func (s *Server) unblockContact(c echo.Context) error {
	if _, err := readObject(c); err != nil {
		return err
	}
	return s.setBlocked(c, false)
}

func (s *Server) setBlocked(c echo.Context, blocked bool) error {
	n, err := phone.Parse(c.Param("wa_id"))
	if err != nil {
		return invalid("the contact must be a phone number of 5 to 20 digits")
	}
	req := &corev1.SetBlockedRequest{Account: principalOf(c).account(), WaId: string(n), Blocked: blocked}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.SetBlocked, req); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}
