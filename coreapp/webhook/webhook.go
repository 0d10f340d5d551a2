// Package webhook is the webhook outbox, in three levels: the event
// (webhook_events, inserted in the same transaction as the state change it
// reports: Enqueue; immutable), its delivery to each of the number's
// endpoints (webhook_deliveries: state and next attempt) and the log of a
// delivery's last attempts (webhook_attempts). docs/webhooks.md is the
// user's reference.
//
// A Dispatcher on every node fans new events out to the endpoints whose
// events filter takes them (the deliveries it creates are claimed by it
// already), claims due deliveries (SELECT … FOR UPDATE SKIP LOCKED), POSTs
// them in the endpoint's envelope (on-prem: events of one kind batched into
// one POST, at most MaxBatch; Cloud: one event per POST), and records the
// outcome in shared transactions. A failed POST is retried with on-prem's
// linear backoff (callback_backoff_delay_ms per failed attempt, capped at
// max_callback_backoff_delay_ms), kept per endpoint, so a broken receiver
// never holds back another; a delivery failing for longer than DeadAfter is
// dead: kept, listed and replayable. Delivery is at least once: every POST
// carries a webhook-id stable across retries, and every event a stable id
// of its own (message id, or message id and status).
package webhook

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/message"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/media"
)

// Kinds of events.
const (
	KindMessage = "message"
	KindStatus  = "status"
	// KindService is a service report (media or message garbage
	// collection), posted as {"services":[…]}.
	KindService = "service"
	// KindTemplateStatus is a template's change of status
	// (TemplateStatusEvent).
	KindTemplateStatus = "template_status"
)

// Contact is the on-prem contacts[] entry.
type Contact struct {
	Profile struct {
		Name string `json:"name"`
	} `json:"profile"`
	WaID string `json:"wa_id"`
}

// InboundMessage is the on-prem messages[] entry: from, id, timestamp,
// type, the type's object under the type's name (rendered by the message
// registry, or a System), context and errors.
type InboundMessage struct {
	From      string
	ID        string
	Timestamp string
	Type      string
	// Object is the type's object (nil for unknown messages).
	Object  json.RawMessage
	Context *MessageContext
	Errors  []Error
}

// inboundJSON is InboundMessage's fixed fields.
type inboundJSON struct {
	From      string          `json:"from"`
	ID        string          `json:"id"`
	Timestamp string          `json:"timestamp"`
	Type      string          `json:"type"`
	Context   *MessageContext `json:"context,omitempty"`
	Errors    []Error         `json:"errors,omitempty"`
}

// MarshalJSON puts the object under the type's name.
func (m InboundMessage) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(inboundJSON{m.From, m.ID, m.Timestamp, m.Type, m.Context, m.Errors})
	if err != nil || len(m.Object) == 0 || m.Type == "" {
		return b, err
	}
	key, err := json.Marshal(m.Type)
	if err != nil {
		return nil, err
	}
	out := append(b[:len(b)-1:len(b)-1], ',')
	out = append(out, key...)
	out = append(out, ':')
	out = append(out, m.Object...)
	return append(out, '}'), nil
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (m *InboundMessage) UnmarshalJSON(b []byte) error {
	var f inboundJSON
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	*m = InboundMessage{From: f.From, ID: f.ID, Timestamp: f.Timestamp, Type: f.Type, Context: f.Context, Errors: f.Errors, Object: all[f.Type]}
	return nil
}

// SetObject sets the message's type and object.
func (m *InboundMessage) SetObject(msgType string, obj any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	m.Type, m.Object = msgType, b
	return nil
}

// System is the body of a "system" message.
type System struct {
	Body     string `json:"body"`
	Customer string `json:"customer,omitempty"`
	Identity string `json:"identity,omitempty"`
	Type     string `json:"type"`
}

// MessageEventJSON is the stored form of a message event, for an event
// enqueued later (an inbound media message waits for its download).
func MessageEventJSON(c Contact, m InboundMessage) ([]byte, error) {
	return json.Marshal(messageEvent{c, m})
}

// FailMedia rewrites a stored message event whose file could not be
// downloaded: the media object loses its id and the message carries e.
func FailMedia(event []byte, e Error) ([]byte, error) {
	var ev messageEvent
	if err := json.Unmarshal(event, &ev); err != nil {
		return nil, err
	}
	if _, ok := media.KindOf(ev.Message.Type); ok && len(ev.Message.Object) > 0 {
		var md message.MediaObject
		if err := json.Unmarshal(ev.Message.Object, &md); err != nil {
			return nil, err
		}
		md.ID = ""
		if err := ev.Message.SetObject(ev.Message.Type, md); err != nil {
			return nil, err
		}
	}
	ev.Message.Errors = append(ev.Message.Errors, e)
	return json.Marshal(ev)
}

// ServiceEvent is a service report: payload is one services[] entry, such
// as {"media":{"gc":{…}}}.
func ServiceEvent(accountID int64, payload any) Event {
	return Event{accountID, KindService, payload}
}

// MessageContext points at the message replied to.
type MessageContext struct {
	From string `json:"from,omitempty"`
	ID   string `json:"id"`
}

// Error is an on-prem error object.
type Error struct {
	Code    errcode.Code `json:"code"`
	Title   string       `json:"title"`
	Details string       `json:"details,omitempty"`
}

// Err is the error object of a catalog code, with its title as statuses
// carry it.
func Err(code errcode.Code, details string) Error {
	return Error{Code: code, Title: code.StatusTitle(), Details: details}
}

// Status is the on-prem statuses[] entry.
type Status struct {
	ID          string `json:"id"`
	RecipientID string `json:"recipient_id"`
	Status      string `json:"status"` // sent, delivered, read, failed
	Timestamp   string `json:"timestamp"`
	// Conversation and Pricing: the conversation the message opened or
	// joined (sent, delivered and read statuses).
	Conversation *Conversation `json:"conversation,omitempty"`
	Pricing      *Pricing      `json:"pricing,omitempty"`
	// CallbackData is the biz_opaque_callback_data a Cloud send gave.
	CallbackData string  `json:"biz_opaque_callback_data,omitempty"`
	Errors       []Error `json:"errors,omitempty"`
}

// Conversation is a status's conversation object (on-prem since February
// 2022): origin.type is the conversation's category in Meta's June 2023
// model (service, marketing, utility, authentication);
// expiration_timestamp is on the statuses of the message that opened it.
type Conversation struct {
	ID                  string `json:"id"`
	ExpirationTimestamp int64  `json:"expiration_timestamp,omitempty"`
	Origin              struct {
		Type string `json:"type"`
	} `json:"origin"`
}

// Pricing is a status's pricing object: conversation-based pricing.
type Pricing struct {
	Billable     bool   `json:"billable"`
	PricingModel string `json:"pricing_model"`
	Category     string `json:"category"`
}

// ConversationOf is the conversation and pricing objects of a conversation
// (id, category) the network reported; expires is set when the message
// opened it.
func ConversationOf(id, category string, expires int64) (*Conversation, *Pricing) {
	c := &Conversation{ID: id, ExpirationTimestamp: expires}
	c.Origin.Type = category
	return c, &Pricing{Billable: true, PricingModel: "CBP", Category: category}
}

// TemplateStatus is the value of a message_template_status_update change.
type TemplateStatus struct {
	Event    string `json:"event"`
	ID       int64  `json:"message_template_id"`
	Name     string `json:"message_template_name"`
	Language string `json:"message_template_language"`
	Reason   string `json:"reason"`
}

// templateStatusEvent is what a KindTemplateStatus row stores.
type templateStatusEvent struct {
	Account string         `json:"account"` // the number (entry id)
	Time    int64          `json:"time"`
	Value   TemplateStatus `json:"value"`
}

// TemplateStatusEvent is a template's change of status, posted in the
// Graph business-account envelope that carries it on WhatsApp:
// {"object":"whatsapp_business_account","entry":[{"id","time","changes":
// [{"field":"message_template_status_update","value":{…}}]}]}. entry.id is
// the number (wa_id).
func TemplateStatusEvent(accountID int64, waID string, t int64, v TemplateStatus) Event {
	return Event{accountID, KindTemplateStatus, templateStatusEvent{waID, t, v}}
}

// messageEvent is what a KindMessage row stores.
type messageEvent struct {
	Contact Contact        `json:"contact"`
	Message InboundMessage `json:"message"`
}

// storedMessageEvent reads a stored messageEvent without decoding the
// message: its bytes are what InboundMessage.MarshalJSON wrote, so they go
// into a POST as they are.
type storedMessageEvent struct {
	Contact Contact         `json:"contact"`
	Message json.RawMessage `json:"message"`
}

// Event is one outbox row to insert.
type Event struct {
	AccountID int64
	Kind      string
	Payload   any
}

// MessageEvent is an inbound-message event.
func MessageEvent(accountID int64, c Contact, m InboundMessage) Event {
	return Event{accountID, KindMessage, messageEvent{c, m}}
}

// IdentityChangedEvent is the on-prem user_identity_changed system message:
// the customer's identity key changed (a reinstall); fingerprint is a hash of
// the new key. System messages carry no contacts entry.
func IdentityChangedEvent(accountID int64, customer, id, fingerprint string, t int64) Event {
	m := InboundMessage{From: customer, ID: id, Timestamp: strconv.FormatInt(t, 10)}
	m.SetObject("system", System{Body: "User " + customer + " changed their security code", Customer: customer, Identity: fingerprint, Type: "user_identity_changed"})
	return Event{accountID, KindMessage, messageEvent{Message: m}}
}

// StatusEvent is a status event.
func StatusEvent(accountID int64, s Status) Event { return Event{accountID, KindStatus, s} }

// topic is topicOf the event, read from its typed payload where it has
// one, without decoding b (its JSON) again.
func (e Event) topic(b []byte) (topic, ref string) {
	switch p := e.Payload.(type) {
	case Status:
		if e.Kind == KindStatus {
			return TopicStatuses + "." + p.Status, p.ID
		}
	case messageEvent:
		if e.Kind == KindMessage {
			if p.Message.Type == "system" {
				return TopicSystem, p.Message.ID
			}
			return TopicMessages, p.Message.ID
		}
	}
	return topicOf(e.Kind, b)
}

// Enqueue inserts events in tx with one statement. The dispatcher fans
// each out to the number's endpoints (a delivery per endpoint whose
// filter takes it) and delivers it.
func Enqueue(tx *sql.Tx, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	now := db.NowMillis()
	args := make([]any, 0, 7*len(events))
	for _, e := range events {
		b, err := json.Marshal(e.Payload)
		if err != nil {
			return err
		}
		topic, ref := e.topic(b)
		args = append(args, e.AccountID, e.Kind, topic, ref, b, now, now)
	}
	// At most 1,000 rows a statement: SQLite caps the variables of one.
	const perInsert, perRow = 1000, 7
	for start := 0; start < len(events); start += perInsert {
		n := min(perInsert, len(events)-start)
		if _, err := tx.Exec("INSERT INTO webhook_events (account_id, kind, topic, ref, payload, created_at, next_attempt_at, attempts) VALUES "+
			db.Rows("(?,?,?,?,?,?,?,0)", n), args[start*perRow:(start+n)*perRow]...); err != nil {
			return fmt.Errorf("enqueue webhooks: %w", err)
		}
	}
	return nil
}

// renderOnPrem builds one on-prem POST body from events of one kind.
func renderOnPrem(kind string, payloads [][]byte) ([]byte, error) {
	switch kind {
	case KindStatus:
		statuses := make([]json.RawMessage, len(payloads))
		for i, p := range payloads {
			statuses[i] = p
		}
		return json.Marshal(struct {
			Statuses []json.RawMessage `json:"statuses"`
		}{statuses})
	case KindService:
		services := make([]json.RawMessage, len(payloads))
		for i, p := range payloads {
			services[i] = p
		}
		return json.Marshal(struct {
			Services []json.RawMessage `json:"services"`
		}{services})
	case KindTemplateStatus:
		type change struct {
			Field string         `json:"field"`
			Value TemplateStatus `json:"value"`
		}
		type entry struct {
			ID      string   `json:"id"`
			Time    int64    `json:"time"`
			Changes []change `json:"changes"`
		}
		out := struct {
			Object string  `json:"object"`
			Entry  []entry `json:"entry"`
		}{Object: "whatsapp_business_account"}
		for _, p := range payloads {
			var e templateStatusEvent
			if err := json.Unmarshal(p, &e); err != nil {
				return nil, err
			}
			out.Entry = append(out.Entry, entry{e.Account, e.Time, []change{{"message_template_status_update", e.Value}}})
		}
		return json.Marshal(out)
	case KindMessage:
		var out struct {
			Contacts []Contact         `json:"contacts,omitempty"`
			Messages []json.RawMessage `json:"messages"`
		}
		seen := map[string]bool{}
		for _, p := range payloads {
			var e storedMessageEvent
			if err := json.Unmarshal(p, &e); err != nil {
				return nil, err
			}
			if e.Contact.WaID != "" && !seen[e.Contact.WaID] {
				seen[e.Contact.WaID] = true
				out.Contacts = append(out.Contacts, e.Contact)
			}
			out.Messages = append(out.Messages, e.Message)
		}
		return json.Marshal(out)
	}
	return nil, fmt.Errorf("unknown webhook kind %q", kind)
}
