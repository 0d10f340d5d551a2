package rpc

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/webhooksign"
	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/coreapp/webhook"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// The webhook endpoint and delivery log calls (/v1/webhooks/…) over the
// dispatcher's store calls (coreapp/webhook: endpoint.go, log.go).

// webhookAccount resolves the number a webhook call is about: these calls
// need a registered number.
func (s *Server) webhookAccount(ctx context.Context, op string, ref *corev1.AccountRef) (int64, error) {
	if s.webhooks == nil {
		return 0, apiError(codes.FailedPrecondition, errcode.NotReady, "this node has no webhook dispatcher")
	}
	a, err := s.resolve(ctx, ref, false)
	if err != nil {
		return 0, s.translate(ctx, op, err)
	}
	return a.ID, nil
}

// webhookError renders the dispatcher's refusals.
func (s *Server) webhookError(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(err, webhook.ErrNoEndpoint):
		return apiError(codes.NotFound, errcode.NotFound, "unknown webhook endpoint id")
	case errors.Is(err, webhook.ErrNoDelivery):
		return apiError(codes.NotFound, errcode.NotFound, "unknown webhook delivery id")
	case errors.Is(err, webhook.ErrDefaultEndpoint):
		return apiError(codes.InvalidArgument, errcode.Invalid, err.Error())
	case errors.Is(err, webhook.ErrBadSecret):
		return apiError(codes.InvalidArgument, errcode.Invalid, "secret must be whsec_ followed by the base64 of 24 to 64 random bytes")
	case errors.Is(err, webhook.ErrTooMany):
		return apiError(codes.InvalidArgument, errcode.Invalid, err.Error())
	}
	return s.translate(ctx, op, err)
}

// validEndpoint checks what a tenant or admin may give an endpoint.
func validEndpoint(url, format *string, events []string) error {
	if url != nil {
		if *url == "" {
			return apiError(codes.InvalidArgument, errcode.Missing, "url is required")
		}
		if err := settings.ValidateWebhookURL(*url); err != nil {
			var se *settings.Error
			if errors.As(err, &se) {
				return apiError(codes.InvalidArgument, se.Code, se.Details)
			}
			return err
		}
	}
	if format != nil && *format != settings.FormatOnPrem && *format != settings.FormatCloud {
		return apiError(codes.InvalidArgument, errcode.Invalid, `format must be "onprem" or "cloud"`)
	}
	if err := webhook.ValidTopics(events); err != nil {
		return apiError(codes.InvalidArgument, errcode.Invalid, err.Error())
	}
	return nil
}

func endpointProto(e webhook.Endpoint, secret string) *corev1.WebhookEndpoint {
	out := &corev1.WebhookEndpoint{
		Id: e.ID, Url: e.URL, Headers: e.Headers, Format: e.Format, Events: e.Events, Signed: e.Signed, Secret: secret,
		CreatedAt: e.CreatedAt.UnixMilli(), UpdatedAt: e.UpdatedAt.UnixMilli(),
	}
	if !e.PreviousUntil.IsZero() {
		out.PreviousSecretExpiresAt = e.PreviousUntil.UnixMilli()
	}
	if e.CreatedAt.UnixMilli() <= 0 {
		out.CreatedAt, out.UpdatedAt = 0, 0 // the first endpoint before its row exists
	}
	return out
}

// ListWebhookEndpoints implements core.v1.Core.
func (s *Server) ListWebhookEndpoints(ctx context.Context, req *corev1.ListWebhookEndpointsRequest) (*corev1.WebhookEndpoints, error) {
	id, err := s.webhookAccount(ctx, "list webhook endpoints", req.Account)
	if err != nil {
		return nil, err
	}
	eps, err := s.webhooks.Endpoints(ctx, id)
	if err != nil {
		return nil, s.webhookError(ctx, "list webhook endpoints", err)
	}
	out := &corev1.WebhookEndpoints{}
	for _, e := range eps {
		out.Endpoints = append(out.Endpoints, endpointProto(e, ""))
	}
	return out, nil
}

// CreateWebhookEndpoint implements core.v1.Core. A Cloud-format endpoint is
// always signed (X-Hub-Signature-256, as Meta signs): without a secret it
// gets a fresh one.
func (s *Server) CreateWebhookEndpoint(ctx context.Context, req *corev1.CreateWebhookEndpointRequest) (*corev1.WebhookEndpoint, error) {
	id, err := s.webhookAccount(ctx, "create webhook endpoint", req.Account)
	if err != nil {
		return nil, err
	}
	format := req.GetFormat()
	if format == "" {
		format = settings.FormatOnPrem
	}
	url := req.GetUrl()
	if err := validEndpoint(&url, &format, req.GetEvents()); err != nil {
		return nil, err
	}
	secret := req.GetSecret()
	if secret != "" && req.GetGenerateSecret() {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, "give a secret or ask for one to be generated, not both")
	}
	if secret == "" && (req.GetGenerateSecret() || format == settings.FormatCloud) {
		secret = webhooksign.NewSecret()
	}
	e, err := s.webhooks.CreateEndpoint(ctx, id, webhook.NewEndpoint{
		URL: url, Headers: req.GetHeaders(), Format: format, Events: req.GetEvents(),
		ByTenant: actor(req.Account) != settings.ActorAdmin, Secret: secret,
	})
	if err != nil {
		return nil, s.webhookError(ctx, "create webhook endpoint", err)
	}
	return endpointProto(e, secret), nil
}

// GetWebhookEndpoint implements core.v1.Core.
func (s *Server) GetWebhookEndpoint(ctx context.Context, req *corev1.WebhookEndpointRequest) (*corev1.WebhookEndpoint, error) {
	id, err := s.webhookAccount(ctx, "get webhook endpoint", req.Account)
	if err != nil {
		return nil, err
	}
	e, err := s.webhooks.Endpoint(ctx, id, req.GetId())
	if err == nil && req.GetId() == webhook.DefaultEndpoint && e.URL == "" {
		err = webhook.ErrNoEndpoint // no webhooks.url: no first endpoint, as the list shows
	}
	if err != nil {
		return nil, s.webhookError(ctx, "get webhook endpoint", err)
	}
	return endpointProto(e, ""), nil
}

// UpdateWebhookEndpoint implements core.v1.Core.
func (s *Server) UpdateWebhookEndpoint(ctx context.Context, req *corev1.UpdateWebhookEndpointRequest) (*corev1.WebhookEndpoint, error) {
	id, err := s.webhookAccount(ctx, "update webhook endpoint", req.Account)
	if err != nil {
		return nil, err
	}
	p := webhook.EndpointPatch{URL: req.Url, Format: req.Format, ByTenant: actor(req.Account) != settings.ActorAdmin}
	if req.GetSetHeaders() {
		h := req.GetHeaders()
		p.Headers = &h
	}
	if req.GetSetEvents() {
		ev := req.GetEvents()
		p.Events = &ev
	}
	if err := validEndpoint(p.URL, p.Format, req.GetEvents()); err != nil {
		return nil, err
	}
	if p.Format != nil && *p.Format == settings.FormatCloud && req.GetId() != webhook.DefaultEndpoint {
		cur, err := s.webhooks.Endpoint(ctx, id, req.GetId())
		if err != nil {
			return nil, s.webhookError(ctx, "update webhook endpoint", err)
		}
		if !cur.Signed {
			return nil, apiError(codes.InvalidArgument, errcode.Invalid, "a cloud-format endpoint is always signed (X-Hub-Signature-256): give it a secret first (POST /v1/webhooks/endpoints/{id}/secret)")
		}
	}
	e, err := s.webhooks.UpdateEndpoint(ctx, id, req.GetId(), p)
	if err != nil {
		return nil, s.webhookError(ctx, "update webhook endpoint", err)
	}
	return endpointProto(e, ""), nil
}

// DeleteWebhookEndpoint implements core.v1.Core.
func (s *Server) DeleteWebhookEndpoint(ctx context.Context, req *corev1.WebhookEndpointRequest) (*corev1.DeleteWebhookEndpointResponse, error) {
	id, err := s.webhookAccount(ctx, "delete webhook endpoint", req.Account)
	if err != nil {
		return nil, err
	}
	if err := s.webhooks.DeleteEndpoint(ctx, id, req.GetId()); err != nil {
		return nil, s.webhookError(ctx, "delete webhook endpoint", err)
	}
	return &corev1.DeleteWebhookEndpointResponse{}, nil
}

// RotateWebhookSecret implements core.v1.Core.
func (s *Server) RotateWebhookSecret(ctx context.Context, req *corev1.RotateWebhookSecretRequest) (*corev1.WebhookEndpoint, error) {
	id, err := s.webhookAccount(ctx, "rotate webhook secret", req.Account)
	if err != nil {
		return nil, err
	}
	if g := req.GetGraceSeconds(); g < 0 || g > int64(webhook.MaxGrace/time.Second) {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, "grace_seconds must be between 0 and 604800 (7 days)")
	}
	grace := time.Duration(req.GetGraceSeconds()) * time.Second
	secret, err := s.webhooks.RotateSecret(ctx, id, req.GetId(), req.GetSecret(), grace)
	if err != nil {
		return nil, s.webhookError(ctx, "rotate webhook secret", err)
	}
	e, err := s.webhooks.Endpoint(ctx, id, req.GetId())
	if err != nil {
		return nil, s.webhookError(ctx, "rotate webhook secret", err)
	}
	return endpointProto(e, secret), nil
}

// RemoveWebhookSecret implements core.v1.Core. A Cloud-format endpoint
// besides the first cannot go unsigned.
func (s *Server) RemoveWebhookSecret(ctx context.Context, req *corev1.WebhookEndpointRequest) (*corev1.WebhookEndpoint, error) {
	id, err := s.webhookAccount(ctx, "remove webhook secret", req.Account)
	if err != nil {
		return nil, err
	}
	e, err := s.webhooks.Endpoint(ctx, id, req.GetId())
	if err != nil {
		return nil, s.webhookError(ctx, "remove webhook secret", err)
	}
	if e.ID != webhook.DefaultEndpoint && e.Format == settings.FormatCloud {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, "a cloud-format endpoint is always signed (X-Hub-Signature-256): rotate its secret instead")
	}
	if err := s.webhooks.RemoveSecret(ctx, id, req.GetId()); err != nil {
		return nil, s.webhookError(ctx, "remove webhook secret", err)
	}
	if e, err = s.webhooks.Endpoint(ctx, id, req.GetId()); err != nil {
		return nil, s.webhookError(ctx, "remove webhook secret", err)
	}
	return endpointProto(e, ""), nil
}

// deliveryFilter checks and converts a filter.
func deliveryFilter(f *corev1.WebhookDeliveryFilter) (webhook.Filter, error) {
	var out webhook.Filter
	for _, st := range f.GetStates() {
		i := slices.Index(webhook.StateNames, st)
		if i < 0 {
			return out, apiError(codes.InvalidArgument, errcode.Invalid, "status must be pending, delivered, failing or dead")
		}
		if !slices.Contains(out.States, i) {
			out.States = append(out.States, i)
		}
	}
	if f.GetSince() < 0 || f.GetUntil() < 0 || f.GetEndpointId() < 0 {
		return out, apiError(codes.InvalidArgument, errcode.Invalid, "since, until and endpoint_id must not be negative")
	}
	if t := f.GetTopic(); t != "" {
		if err := webhook.ValidTopics([]string{t}); err != nil {
			return out, apiError(codes.InvalidArgument, errcode.Invalid, err.Error())
		}
		out.Topic = t
	}
	if f.GetSince() > 0 {
		out.Since = time.UnixMilli(f.GetSince())
	}
	if f.GetUntil() > 0 {
		out.Until = time.UnixMilli(f.GetUntil())
	}
	if len(f.GetMessageId()) > 128 {
		return out, apiError(codes.InvalidArgument, errcode.Invalid, "message_id is at most 128 characters")
	}
	out.Ref = f.GetMessageId()
	if f.GetHasEndpoint() {
		ep := f.GetEndpointId()
		out.Endpoint = &ep
	}
	return out, nil
}

// ListWebhookDeliveries implements core.v1.Core.
func (s *Server) ListWebhookDeliveries(ctx context.Context, req *corev1.ListWebhookDeliveriesRequest) (*corev1.WebhookDeliveries, error) {
	id, err := s.webhookAccount(ctx, "list webhook deliveries", req.Account)
	if err != nil {
		return nil, err
	}
	f, err := deliveryFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	f.Before, f.Limit = req.GetBefore(), int(req.GetLimit())
	list, more, err := s.webhooks.Deliveries(ctx, id, f)
	if err != nil {
		return nil, s.webhookError(ctx, "list webhook deliveries", err)
	}
	out := &corev1.WebhookDeliveries{Deliveries: make([]*corev1.WebhookDelivery, 0, len(list))}
	for _, d := range list {
		pd := &corev1.WebhookDelivery{
			Id: d.ID, EventId: d.EventID, EndpointId: d.EndpointID, Kind: d.Kind, Topic: d.Topic, MessageId: d.Ref,
			State: d.State, Attempts: int32(d.Attempts), CreatedAt: d.CreatedAt.UnixMilli(), UpdatedAt: d.UpdatedAt.UnixMilli(),
			EventJson: d.Event,
		}
		if !d.NextAttemptAt.IsZero() {
			pd.NextAttemptAt = d.NextAttemptAt.UnixMilli()
		}
		for _, a := range d.Log {
			pd.Log = append(pd.Log, &corev1.WebhookAttempt{
				N: int32(a.N), At: a.At.UnixMilli(), Url: a.URL, HttpStatus: int32(a.HTTPStatus),
				LatencyMs: a.Latency.Milliseconds(), Response: a.Response, Error: a.Error,
			})
		}
		out.Deliveries = append(out.Deliveries, pd)
	}
	if more && len(list) > 0 {
		out.NextBefore = list[len(list)-1].ID
	}
	return out, nil
}

// ReplayWebhookDeliveries implements core.v1.Core.
func (s *Server) ReplayWebhookDeliveries(ctx context.Context, req *corev1.ReplayWebhookDeliveriesRequest) (*corev1.ReplayWebhookDeliveriesResponse, error) {
	id, err := s.webhookAccount(ctx, "replay webhook deliveries", req.Account)
	if err != nil {
		return nil, err
	}
	if req.GetId() > 0 {
		if err := s.webhooks.Replay(ctx, id, req.GetId()); err != nil {
			return nil, s.webhookError(ctx, "replay webhook delivery", err)
		}
		return &corev1.ReplayWebhookDeliveriesResponse{Replayed: 1}, nil
	}
	f, err := deliveryFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	n, err := s.webhooks.ReplayMatching(ctx, id, f)
	if err != nil {
		return nil, s.webhookError(ctx, "replay webhook deliveries", err)
	}
	return &corev1.ReplayWebhookDeliveriesResponse{Replayed: int64(n)}, nil
}
