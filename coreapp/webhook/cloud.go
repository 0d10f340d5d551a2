package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/openwaba/openwaba/api/graph"
	"github.com/openwaba/openwaba/coreapp/egress"
)

// The Cloud format. A number whose webhooks are set with format "cloud"
// gets every event in the Cloud API's whatsapp_business_account envelope,
// one message or status per POST, serialized as ASCII-only JSON and signed
// with the app secret (X-Hub-Signature-256): package graph has the bytes.
// The outbox rows are the same for both formats; the envelope is chosen
// when the event is posted, so changing the format applies to events
// still queued.

// AppSecretContext binds a sealed app secret to its use (keystore.Seal).
const AppSecretContext = "webhook_app_secret"

// Number is the business number events are for, as Cloud names it.
type Number struct {
	WaID          string
	PhoneNumberID int64
	WABAID        int64
}

// cloudMessage is a Cloud messages[] entry: the on-prem object with Cloud's
// error objects.
type cloudMessage struct {
	InboundMessage
	errs []graph.StatusError
}

func (m cloudMessage) MarshalJSON() ([]byte, error) {
	in := m.InboundMessage
	in.Errors = nil
	b, err := in.MarshalJSON()
	if err != nil || len(m.errs) == 0 {
		return b, err
	}
	errs, err := json.Marshal(m.errs)
	if err != nil {
		return nil, err
	}
	out := append(b[:len(b)-1:len(b)-1], []byte(`,"errors":`)...)
	out = append(out, errs...)
	return append(out, '}'), nil
}

// cloudStatus is a Cloud statuses[] entry.
type cloudStatus struct {
	ID           string              `json:"id"`
	Status       string              `json:"status"`
	Timestamp    string              `json:"timestamp"`
	RecipientID  string              `json:"recipient_id"`
	Conversation *cloudConversation  `json:"conversation,omitempty"`
	Pricing      *cloudPricing       `json:"pricing,omitempty"`
	CallbackData string              `json:"biz_opaque_callback_data,omitempty"`
	Errors       []graph.StatusError `json:"errors,omitempty"`
}

type cloudConversation struct {
	ID                  string `json:"id"`
	ExpirationTimestamp string `json:"expiration_timestamp,omitempty"`
	Origin              struct {
		Type string `json:"type"`
	} `json:"origin"`
}

// cloudPricing is per-message pricing (PMP, Cloud's model since 1 July
// 2025): service messages inside the customer-service window are free.
type cloudPricing struct {
	Billable     bool   `json:"billable"`
	PricingModel string `json:"pricing_model"`
	Category     string `json:"category"`
	Type         string `json:"type"`
}

func errorsOf(es []Error) []graph.StatusError {
	out := make([]graph.StatusError, 0, len(es))
	for _, e := range es {
		out = append(out, graph.StatusErrorOf(e.Code, e.Details))
	}
	return out
}

func cloudStatusOf(s Status) cloudStatus {
	out := cloudStatus{ID: s.ID, Status: s.Status, Timestamp: s.Timestamp, RecipientID: s.RecipientID, CallbackData: s.CallbackData}
	if len(s.Errors) > 0 {
		out.Errors = errorsOf(s.Errors)
	}
	if c := s.Conversation; c != nil {
		out.Conversation = &cloudConversation{ID: c.ID}
		out.Conversation.Origin.Type = c.Origin.Type
		if c.ExpirationTimestamp != 0 {
			out.Conversation.ExpirationTimestamp = strconv.FormatInt(c.ExpirationTimestamp, 10)
		}
		p := &cloudPricing{Billable: true, PricingModel: "PMP", Category: c.Origin.Type, Type: "regular"}
		if c.Origin.Type == "service" {
			p.Billable, p.Type = false, "free_customer_service"
		}
		out.Pricing = p
	}
	return out
}

// CloudBody renders one stored event as a Cloud webhook body (ASCII-only
// JSON). skip reports an event Cloud has no webhook for (service reports).
func CloudBody(n Number, kind string, payload []byte) (body []byte, skip bool, err error) {
	meta := graph.Metadata{DisplayPhoneNumber: n.WaID, PhoneNumberID: strconv.FormatInt(n.PhoneNumberID, 10)}
	value := graph.Value{MessagingProduct: "whatsapp", Metadata: meta}
	field := "messages"
	var v any = &value
	switch kind {
	case KindMessage:
		var e storedMessageEvent
		if err := json.Unmarshal(payload, &e); err != nil {
			return nil, false, err
		}
		if e.Contact.WaID != "" {
			if value.Contacts, err = json.Marshal([]Contact{e.Contact}); err != nil {
				return nil, false, err
			}
		}
		if !bytes.Contains(e.Message, []byte(`"errors"`)) {
			// Without errors the Cloud message is the on-prem one.
			value.Messages = append(append([]byte{'['}, e.Message...), ']')
			break
		}
		var in InboundMessage
		if err := json.Unmarshal(e.Message, &in); err != nil {
			return nil, false, err
		}
		m := cloudMessage{InboundMessage: in}
		if len(in.Errors) > 0 {
			m.errs = errorsOf(in.Errors)
		}
		if value.Messages, err = json.Marshal([]cloudMessage{m}); err != nil {
			return nil, false, err
		}
	case KindStatus:
		var s Status
		if err := json.Unmarshal(payload, &s); err != nil {
			return nil, false, err
		}
		if value.Statuses, err = json.Marshal([]cloudStatus{cloudStatusOf(s)}); err != nil {
			return nil, false, err
		}
	case KindTemplateStatus:
		var e templateStatusEvent
		if err := json.Unmarshal(payload, &e); err != nil {
			return nil, false, err
		}
		field = "message_template_status_update"
		id, _ := strconv.ParseInt(graph.TemplateID(strconv.FormatInt(e.Value.ID, 10)), 10, 64)
		tv := e.Value
		tv.ID = id
		v = tv
	case KindService:
		return nil, true, nil
	default:
		return nil, false, fmt.Errorf("unknown webhook kind %q", kind)
	}
	body, err = graph.MarshalASCII(graph.NewNotification(n.WABAID, field, v))
	return body, false, err
}

// MaxChallengeAnswer is the most of a subscription check's answer read.
const MaxChallengeAnswer = 1 << 10

// ErrChallenge is a callback URL that did not pass Meta's subscription
// check.
var ErrChallenge = errors.New("the callback URL did not answer the subscription check")

// Verify performs Meta's subscription check on a Cloud callback URL: GET
// url?hub.mode=subscribe&hub.verify_token=token&hub.challenge=<random>,
// which must answer 200 with exactly the challenge as its body. tenant
// applies the egress guard of tenant URLs.
func (d *Dispatcher) Verify(ctx context.Context, rawURL, token string, tenant bool) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrChallenge, err)
	}
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000_000))
	if err != nil {
		return err
	}
	challenge := strconv.FormatInt(n.Int64()+1_000_000_000, 10)
	q := u.Query()
	q.Set("hub.mode", "subscribe")
	q.Set("hub.verify_token", token)
	q.Set("hub.challenge", challenge)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrChallenge, err)
	}
	req.Header.Set("User-Agent", "openwaba-webhook/1")
	cs := d.clients.Load()
	c := cs.admin
	if tenant {
		c = cs.tenant
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrChallenge, egress.Describe(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxChallengeAnswer))
	if err != nil {
		return fmt.Errorf("%w: reading the answer: %v", ErrChallenge, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: it answered %s", ErrChallenge, resp.Status)
	}
	if strings.TrimSpace(string(b)) != challenge {
		return fmt.Errorf("%w: the answer is not the hub.challenge value (check the verify token)", ErrChallenge)
	}
	return nil
}
