package stack

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Webhook is a business's webhook receiver (the one outside party the tests
// fake): it records every POST and can be told to fail.
type Webhook struct {
	*httptest.Server
	t       testing.TB
	failing atomic.Bool

	mu       sync.Mutex // guards the fields below
	payloads []Payload
	headers  []http.Header
	posts    []Post
	signal   chan struct{}
	attempts int
}

// Post is one POST the receiver got, accepted or failed on purpose.
type Post struct {
	At       time.Time
	Header   http.Header
	Body     []byte
	Accepted bool
}

// Payload is one webhook body, decoded.
type Payload struct {
	Contacts []struct {
		Profile struct {
			Name string `json:"name"`
		} `json:"profile"`
		WaID string `json:"wa_id"`
	} `json:"contacts"`
	Messages []struct {
		From      string `json:"from"`
		ID        string `json:"id"`
		Timestamp string `json:"timestamp"`
		Type      string `json:"type"`
		Text      *struct {
			Body string `json:"body"`
		} `json:"text"`
		Context *struct {
			From string `json:"from"`
			ID   string `json:"id"`
		} `json:"context"`
		System *struct {
			Body     string `json:"body"`
			Customer string `json:"customer"`
			Identity string `json:"identity"`
			Type     string `json:"type"`
		} `json:"system"`
		Image    *Media  `json:"image"`
		Audio    *Media  `json:"audio"`
		Video    *Media  `json:"video"`
		Document *Media  `json:"document"`
		Sticker  *Media  `json:"sticker"`
		Errors   []Error `json:"errors"`
		// The other types' objects, as sent (tests compare them as JSON).
		Location    json.RawMessage `json:"location"`
		Contacts    json.RawMessage `json:"contacts"`
		Interactive json.RawMessage `json:"interactive"`
		Reaction    json.RawMessage `json:"reaction"`
		Button      json.RawMessage `json:"button"`
	} `json:"messages"`
	Statuses []Status `json:"statuses"`
	Services []struct {
		Media *struct {
			GC struct {
				ItemsDeleted int     `json:"items_deleted"`
				Status       string  `json:"status"`
				Errors       []Error `json:"errors"`
			} `json:"gc"`
		} `json:"media"`
		Message *struct {
			GC struct {
				MessagesDeleted int     `json:"messages_deleted"`
				Status          string  `json:"status"`
				Errors          []Error `json:"errors"`
			} `json:"gc"`
		} `json:"message"`
	} `json:"services"`
	// The Graph business-account envelope (template status changes).
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Time    int64  `json:"time"`
		Changes []struct {
			Field string          `json:"field"`
			Value json.RawMessage `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

// Media is the media object of an inbound message.
type Media struct {
	ID       string `json:"id"`
	MimeType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	Caption  string `json:"caption"`
	Filename string `json:"filename"`
}

// Error is an error object of a webhook.
type Error struct {
	Code    int    `json:"code"`
	Title   string `json:"title"`
	Details string `json:"details"`
}

// Status is a statuses[] entry.
type Status struct {
	ID           string  `json:"id"`
	RecipientID  string  `json:"recipient_id"`
	Status       string  `json:"status"`
	Timestamp    string  `json:"timestamp"`
	Errors       []Error `json:"errors"`
	Conversation *struct {
		ID                  string `json:"id"`
		ExpirationTimestamp int64  `json:"expiration_timestamp"`
		Origin              struct {
			Type string `json:"type"`
		} `json:"origin"`
	} `json:"conversation"`
	Pricing *struct {
		Billable     bool   `json:"billable"`
		PricingModel string `json:"pricing_model"`
		Category     string `json:"category"`
	} `json:"pricing"`
}

// StatusOf returns the first status of id with state ("" any), and
// whether there is one.
func StatusOf(ps []Payload, id, state string) (Status, bool) {
	for _, p := range ps {
		for _, s := range p.Statuses {
			if s.ID == id && (state == "" || s.Status == state) {
				return s, true
			}
		}
	}
	return Status{}, false
}

// TemplateStatus is the value of a message_template_status_update change.
type TemplateStatus struct {
	Event    string `json:"event"`
	ID       int64  `json:"message_template_id"`
	Name     string `json:"message_template_name"`
	Language string `json:"message_template_language"`
	Reason   string `json:"reason"`
}

// TemplateStatuses returns every template status change received, in
// order, with the entry id (the number) it came under.
func TemplateStatuses(ps []Payload) (out []TemplateStatus, entries []string) {
	for _, p := range ps {
		if p.Object != "whatsapp_business_account" {
			continue
		}
		for _, e := range p.Entry {
			for _, c := range e.Changes {
				var v TemplateStatus
				if c.Field == "message_template_status_update" && json.Unmarshal(c.Value, &v) == nil {
					out, entries = append(out, v), append(entries, e.ID)
				}
			}
		}
	}
	return out, entries
}

// NewWebhook starts a receiver on loopback (plain http, which openwaba
// accepts for loopback addresses).
func NewWebhook(t testing.TB) *Webhook {
	w := &Webhook{t: t, signal: make(chan struct{}, 1)}
	w.Server = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.Close)
	return w
}

func (w *Webhook) serve(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	failing := err != nil || w.failing.Load()
	w.mu.Lock()
	w.attempts++
	w.posts = append(w.posts, Post{At: time.Now(), Header: r.Header.Clone(), Body: body, Accepted: !failing})
	w.mu.Unlock()
	if failing {
		http.Error(rw, "failing on purpose", http.StatusServiceUnavailable)
		return
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		w.t.Errorf("webhook body is not the expected JSON: %v: %s", err, body)
		http.Error(rw, "bad json", http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	w.payloads = append(w.payloads, p)
	w.headers = append(w.headers, r.Header.Clone())
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
	rw.WriteHeader(http.StatusOK)
}

// SetFailing makes the receiver answer 503 (true) or 200 (false).
func (w *Webhook) SetFailing(f bool) { w.failing.Store(f) }

// Attempts counts POSTs received, failed ones included.
func (w *Webhook) Attempts() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.attempts
}

// Posts returns every POST so far, failed ones included, in arrival order.
func (w *Webhook) Posts() []Post {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Post(nil), w.posts...)
}

// Payloads returns the accepted payloads so far.
func (w *Webhook) Payloads() []Payload {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Payload(nil), w.payloads...)
}

// Headers returns the headers of the accepted POSTs.
func (w *Webhook) Headers() []http.Header {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]http.Header(nil), w.headers...)
}

// Wait waits until cond holds for the accepted payloads.
func (w *Webhook) Wait(within time.Duration, what string, cond func([]Payload) bool) []Payload {
	w.t.Helper()
	deadline := time.After(within)
	for {
		ps := w.Payloads()
		if cond(ps) {
			return ps
		}
		select {
		case <-w.signal:
		case <-deadline:
			w.t.Fatalf("webhook: no %s within %s; got %d payloads: %+v", what, within, len(ps), ps)
		}
	}
}

// StatusesOf returns the statuses received for a message id, in order.
func StatusesOf(ps []Payload, id string) []string {
	var out []string
	for _, p := range ps {
		for _, s := range p.Statuses {
			if s.ID == id {
				out = append(out, s.Status)
			}
		}
	}
	return out
}

// InboundIDs counts inbound message ids over all payloads.
func InboundIDs(ps []Payload) map[string]int {
	out := map[string]int{}
	for _, p := range ps {
		for _, m := range p.Messages {
			out[m.ID]++
		}
	}
	return out
}
