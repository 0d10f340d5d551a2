package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// The webhook endpoints and the delivery log (docs/webhooks.md): routes of
// our own beside the on-prem API, in its envelope (lists of objects, meta,
// errors). Times are RFC 3339 in UTC with milliseconds; ids are strings.

// webhookEndpoint is an endpoint as the API shows it.
type webhookEndpoint struct {
	ID string `json:"id"`
	// Default marks endpoint "0": webhooks.url (or /v1/configs/webhook),
	// whose url, headers and format are changed there.
	Default bool              `json:"default"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Format  string            `json:"format"`
	Events  []string          `json:"events"`
	Signed  bool              `json:"signed"`
	// Secret is shown once, in the answer of the call that set it.
	Secret                  string `json:"secret,omitempty"`
	PreviousSecretExpiresAt string `json:"previous_secret_expires_at,omitempty"`
	CreatedAt               string `json:"created_at,omitempty"`
	UpdatedAt               string `json:"updated_at,omitempty"`
}

type webhookEndpointsResponse struct {
	Endpoints []webhookEndpoint `json:"endpoints"`
	Meta      meta              `json:"meta"`
}

// apiTime renders Unix milliseconds (0: "").
func apiTime(ms int64) string {
	if ms <= 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func toWebhookEndpoint(e *corev1.WebhookEndpoint) webhookEndpoint {
	out := webhookEndpoint{
		ID: strconv.FormatInt(e.GetId(), 10), Default: e.GetId() == 0, URL: e.GetUrl(), Headers: e.GetHeaders(),
		Format: e.GetFormat(), Events: e.GetEvents(), Signed: e.GetSigned(), Secret: e.GetSecret(),
		PreviousSecretExpiresAt: apiTime(e.GetPreviousSecretExpiresAt()), CreatedAt: apiTime(e.GetCreatedAt()), UpdatedAt: apiTime(e.GetUpdatedAt()),
	}
	if out.Headers == nil {
		out.Headers = map[string]string{}
	}
	if out.Events == nil {
		out.Events = []string{}
	}
	return out
}

func (s *Server) endpointsReply(c echo.Context, code int, eps ...*corev1.WebhookEndpoint) error {
	out := webhookEndpointsResponse{Endpoints: make([]webhookEndpoint, 0, len(eps)), Meta: s.meta}
	for _, e := range eps {
		out.Endpoints = append(out.Endpoints, toWebhookEndpoint(e))
	}
	return c.JSON(code, out)
}

// MaxWebhookEvents bounds an events filter.
const MaxWebhookEvents = 16

// webhookEvents reads an events filter (coreapp checks its values).
func webhookEvents(o object) ([]string, bool, error) {
	ev, present, err := field[[]string](o, "events")
	if err != nil {
		return nil, false, err
	}
	if len(ev) > MaxWebhookEvents {
		return nil, false, invalid("events has %d entries, more than %d", len(ev), MaxWebhookEvents)
	}
	return ev, present, nil
}

// endpointID reads the :id of an endpoint route ("0" is the first one).
func endpointID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 0 {
		return 0, notFound("unknown webhook endpoint id")
	}
	return id, nil
}

// listWebhookEndpoints: GET /v1/webhooks/endpoints.
func (s *Server) listWebhookEndpoints(c echo.Context) error {
	resp, err := call(s, c, s.opts.CallTimeout, s.core.ListWebhookEndpoints, &corev1.ListWebhookEndpointsRequest{Account: principalOf(c).account()})
	if err != nil {
		return err
	}
	return s.endpointsReply(c, http.StatusOK, resp.GetEndpoints()...)
}

// createWebhookEndpoint: POST /v1/webhooks/endpoints {"url", "headers",
// "format", "events", "secret" | "signed": true}.
func (s *Server) createWebhookEndpoint(c echo.Context) error {
	o, err := readObject(c, "url", "headers", "format", "events", "secret", "signed")
	if err != nil {
		return err
	}
	req := &corev1.CreateWebhookEndpointRequest{Account: principalOf(c).account()}
	if req.Url, err = requiredString(o, "url"); err != nil {
		return err
	}
	if err := webhookURL(req.Url); err != nil {
		return err
	}
	if req.Headers, _, err = webhookHeaders(o); err != nil {
		return err
	}
	if req.Events, _, err = webhookEvents(o); err != nil {
		return err
	}
	if req.Format, _, err = field[string](o, "format"); err != nil {
		return err
	}
	if req.Secret, _, err = field[string](o, "secret"); err != nil {
		return err
	}
	signed, signedGiven, err := field[bool](o, "signed")
	if err != nil {
		return err
	}
	if signedGiven && !signed && req.Secret != "" {
		return invalid(`"signed": false contradicts "secret"`)
	}
	req.GenerateSecret = signed && req.Secret == ""
	if len(req.Secret) > MaxWebhookSecret {
		return invalid("secret is at most %d characters", MaxWebhookSecret)
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.CreateWebhookEndpoint, req)
	if err != nil {
		return err
	}
	return s.endpointsReply(c, http.StatusCreated, resp)
}

// getWebhookEndpoint: GET /v1/webhooks/endpoints/{id}.
func (s *Server) getWebhookEndpoint(c echo.Context) error {
	id, err := endpointID(c)
	if err != nil {
		return err
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.GetWebhookEndpoint, &corev1.WebhookEndpointRequest{Account: principalOf(c).account(), Id: id})
	if err != nil {
		return err
	}
	return s.endpointsReply(c, http.StatusOK, resp)
}

// patchWebhookEndpoint: PATCH /v1/webhooks/endpoints/{id}: the fields
// given replace theirs (endpoint 0 takes only events).
func (s *Server) patchWebhookEndpoint(c echo.Context) error {
	id, err := endpointID(c)
	if err != nil {
		return err
	}
	o, err := readObject(c, "url", "headers", "format", "events")
	if err != nil {
		return err
	}
	req := &corev1.UpdateWebhookEndpointRequest{Account: principalOf(c).account(), Id: id}
	if v, ok, err := field[string](o, "url"); err != nil {
		return err
	} else if ok {
		if err := webhookURL(v); err != nil {
			return err
		}
		req.Url = &v
	}
	if v, ok, err := field[string](o, "format"); err != nil {
		return err
	} else if ok {
		req.Format = &v
	}
	if req.Headers, req.SetHeaders, err = webhookHeaders(o); err != nil {
		return err
	}
	if req.Events, req.SetEvents, err = webhookEvents(o); err != nil {
		return err
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.UpdateWebhookEndpoint, req)
	if err != nil {
		return err
	}
	return s.endpointsReply(c, http.StatusOK, resp)
}

// deleteWebhookEndpoint: DELETE /v1/webhooks/endpoints/{id}, with its
// deliveries and their log.
func (s *Server) deleteWebhookEndpoint(c echo.Context) error {
	id, err := endpointID(c)
	if err != nil {
		return err
	}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.DeleteWebhookEndpoint, &corev1.WebhookEndpointRequest{Account: principalOf(c).account(), Id: id}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}

// DefaultSecretGrace is how long a rotated-out signing secret stays valid
// when the rotation does not say.
const DefaultSecretGrace = 24 * time.Hour

// rotateWebhookSecret: POST /v1/webhooks/endpoints/{id}/secret {"secret"
// (default: a fresh one), "grace_seconds" (default 86400, at most 604800)}.
func (s *Server) rotateWebhookSecret(c echo.Context) error {
	id, err := endpointID(c)
	if err != nil {
		return err
	}
	o, err := readObject(c, "secret", "grace_seconds")
	if err != nil {
		return err
	}
	req := &corev1.RotateWebhookSecretRequest{Account: principalOf(c).account(), Id: id, GraceSeconds: int64(DefaultSecretGrace / time.Second)}
	if req.Secret, _, err = field[string](o, "secret"); err != nil {
		return err
	}
	if len(req.Secret) > MaxWebhookSecret {
		return invalid("secret is at most %d characters", MaxWebhookSecret)
	}
	if g, ok, err := field[int64](o, "grace_seconds"); err != nil {
		return err
	} else if ok {
		req.GraceSeconds = g
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.RotateWebhookSecret, req)
	if err != nil {
		return err
	}
	return s.endpointsReply(c, http.StatusOK, resp)
}

// removeWebhookSecret: DELETE /v1/webhooks/endpoints/{id}/secret.
func (s *Server) removeWebhookSecret(c echo.Context) error {
	id, err := endpointID(c)
	if err != nil {
		return err
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.RemoveWebhookSecret, &corev1.WebhookEndpointRequest{Account: principalOf(c).account(), Id: id})
	if err != nil {
		return err
	}
	return s.endpointsReply(c, http.StatusOK, resp)
}

// webhookDelivery is a delivery as the log shows it.
type webhookDelivery struct {
	ID            string           `json:"id"`
	EventID       string           `json:"event_id"`
	EndpointID    string           `json:"endpoint_id"`
	Event         string           `json:"event"` // its topic
	MessageID     string           `json:"message_id,omitempty"`
	Status        string           `json:"status"`
	AttemptsCount int32            `json:"attempts_count"`
	CreatedAt     string           `json:"created_at"`
	UpdatedAt     string           `json:"updated_at"`
	NextAttemptAt string           `json:"next_attempt_at,omitempty"`
	Payload       json.RawMessage  `json:"payload,omitempty"`
	Attempts      []webhookAttempt `json:"attempts"`
}

type webhookAttempt struct {
	N          int32  `json:"n"`
	At         string `json:"at"`
	URL        string `json:"url"`
	HTTPStatus int32  `json:"http_status,omitempty"`
	LatencyMs  int64  `json:"latency_ms"`
	Response   string `json:"response,omitempty"`
	Error      string `json:"error,omitempty"`
}

type webhookDeliveriesResponse struct {
	Deliveries []webhookDelivery `json:"deliveries"`
	Paging     *paging           `json:"paging,omitempty"` // Graph's, with the after cursor only
	Meta       meta              `json:"meta"`
}

// deliveryFilterParams are the filters of the log and of a bulk replay.
var deliveryFilterParams = []string{"status", "event", "since", "until", "message_id", "endpoint_id"}

// parseDeliveryFilter reads the filters from get (a query parameter or a
// body field as a string).
func parseDeliveryFilter(get func(string) (string, error)) (*corev1.WebhookDeliveryFilter, bool, error) {
	f := &corev1.WebhookDeliveryFilter{}
	given := false
	for _, name := range deliveryFilterParams {
		v, err := get(name)
		if err != nil {
			return nil, false, err
		}
		if v == "" {
			continue
		}
		given = true
		switch name {
		case "status":
			for _, st := range strings.Split(v, ",") {
				if !slices.Contains(f.States, st) {
					f.States = append(f.States, st)
				}
				if len(f.States) > 4 {
					return nil, false, invalid("status must be pending, delivered, failing or dead (or several, comma-separated)")
				}
			}
		case "event":
			f.Topic = v
		case "since", "until":
			t, err := parseAPITime(v)
			if err != nil {
				return nil, false, invalid("%s must be Unix seconds or an RFC 3339 time, after 1970", name)
			}
			if name == "since" {
				f.Since = t.UnixMilli()
			} else {
				f.Until = t.UnixMilli()
			}
		case "message_id":
			f.MessageId = v
		case "endpoint_id":
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id < 0 {
				return nil, false, invalid("endpoint_id must be an endpoint id")
			}
			f.HasEndpoint, f.EndpointId = true, id
		}
	}
	return f, given, nil
}

// parseAPITime reads Unix seconds or RFC 3339, between 1970 and 9999.
func parseAPITime(v string) (time.Time, error) {
	const maxSeconds = 253402300799 // 9999-12-31T23:59:59Z
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > maxSeconds {
			return time.Time{}, fmt.Errorf("out of range")
		}
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Unix() <= 0 || t.Unix() > maxSeconds {
		return time.Time{}, fmt.Errorf("not an RFC 3339 time between 1970 and 9999")
	}
	return t, nil
}

// listWebhookDeliveries: GET /v1/webhooks/deliveries?status=&event=&since=
// &until=&message_id=&endpoint_id=&limit=&after=, newest first.
func (s *Server) listWebhookDeliveries(c echo.Context) error {
	q := c.QueryParams()
	f, _, err := parseDeliveryFilter(func(name string) (string, error) { return q.Get(name), nil })
	if err != nil {
		return err
	}
	req := &corev1.ListWebhookDeliveriesRequest{Account: principalOf(c).account(), Filter: f}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 || n > 100 {
			return invalid("limit must be between 1 and 100")
		}
		req.Limit = uint32(n)
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return invalid("after must be the cursor of a previous page")
		}
		req.Before = n
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.ListWebhookDeliveries, req)
	if err != nil {
		return err
	}
	out := webhookDeliveriesResponse{Deliveries: make([]webhookDelivery, 0, len(resp.GetDeliveries())), Meta: s.meta}
	for _, d := range resp.GetDeliveries() {
		wd := webhookDelivery{
			ID: strconv.FormatInt(d.GetId(), 10), EventID: strconv.FormatInt(d.GetEventId(), 10), EndpointID: strconv.FormatInt(d.GetEndpointId(), 10),
			Event: d.GetTopic(), MessageID: d.GetMessageId(), Status: d.GetState(), AttemptsCount: d.GetAttempts(),
			CreatedAt: apiTime(d.GetCreatedAt()), UpdatedAt: apiTime(d.GetUpdatedAt()), NextAttemptAt: apiTime(d.GetNextAttemptAt()),
			Attempts: make([]webhookAttempt, 0, len(d.GetLog())),
		}
		if json.Valid(d.GetEventJson()) {
			wd.Payload = d.GetEventJson()
		}
		for _, a := range d.GetLog() {
			wd.Attempts = append(wd.Attempts, webhookAttempt{N: a.GetN(), At: apiTime(a.GetAt()), URL: a.GetUrl(), HTTPStatus: a.GetHttpStatus(),
				LatencyMs: a.GetLatencyMs(), Response: a.GetResponse(), Error: a.GetError()})
		}
		out.Deliveries = append(out.Deliveries, wd)
	}
	if nb := resp.GetNextBefore(); nb > 0 {
		p := &paging{Cursors: cursors{After: strconv.FormatInt(nb, 10)}}
		next := c.Request().URL.Query()
		next.Set("after", p.Cursors.After)
		p.Next = c.Request().URL.Path + "?" + next.Encode()
		out.Paging = p
	}
	return c.JSON(http.StatusOK, out)
}

type replayResponse struct {
	Replayed int64 `json:"replayed"`
	Meta     meta  `json:"meta"`
}

// replayWebhookDelivery: POST /v1/webhooks/deliveries/{id}/replay.
func (s *Server) replayWebhookDelivery(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return notFound("unknown webhook delivery id")
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.ReplayWebhookDeliveries, &corev1.ReplayWebhookDeliveriesRequest{Account: principalOf(c).account(), Id: id})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, replayResponse{Replayed: resp.GetReplayed(), Meta: s.meta})
}

// replayWebhookDeliveries: POST /v1/webhooks/deliveries/replay with the
// log's filters as a JSON object (at least one: replaying everything is
// asked for with "status": "delivered,failing,dead,pending").
func (s *Server) replayWebhookDeliveries(c echo.Context) error {
	o, err := readObject(c, deliveryFilterParams...)
	if err != nil {
		return err
	}
	f, given, err := parseDeliveryFilter(func(name string) (string, error) {
		switch name {
		case "endpoint_id", "since", "until": // a number or a string
			if n, ok, err := field[json.Number](o, name); err == nil && ok {
				return n.String(), nil
			}
		case "status": // a list or a comma-separated string
			if l, ok, err := field[[]string](o, name); err == nil && ok {
				return strings.Join(l, ","), nil
			}
		}
		v, _, err := field[string](o, name)
		return v, err
	})
	if err != nil {
		return err
	}
	if !given {
		return missing("give at least one filter of %s", strings.Join(deliveryFilterParams, ", "))
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.ReplayWebhookDeliveries, &corev1.ReplayWebhookDeliveriesRequest{Account: principalOf(c).account(), Filter: f})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, replayResponse{Replayed: resp.GetReplayed(), Meta: s.meta})
}
