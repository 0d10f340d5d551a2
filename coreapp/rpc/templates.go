package rpc

import (
	"context"
	"encoding/json"
	"errors"

	"google.golang.org/grpc/codes"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/template"
	"github.com/openwaba/openwaba/coreapp/slot"
	"github.com/openwaba/openwaba/coreapp/templates"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// templateIQ returns the way to the network for a template request of the
// account: one of its connected slots on this node (1018 when another node
// holds them, the webapp tries it).
func (s *Server) templateIQ(ctx context.Context, ref *corev1.AccountRef, op string) (int64, templates.IQ, *templates.Cache, error) {
	a, err := s.verified(ctx, ref)
	if err != nil {
		return 0, nil, nil, s.translateOrPass(ctx, op, err)
	}
	iq, cache, err := s.accountTemplateIQ(ctx, a.ID, op)
	return a.ID, iq, cache, err
}

// accountTemplateIQ is templateIQ for an account already resolved.
func (s *Server) accountTemplateIQ(ctx context.Context, accountID int64, op string) (templates.IQ, *templates.Cache, error) {
	iq, cache, err := s.slots.TemplateIQ(accountID)
	if errors.Is(err, slot.ErrNotConnected) {
		if s.slots.OwnerElsewhere(ctx, accountID) {
			return nil, nil, s.translate(ctx, op, slot.ErrNotOwner)
		}
		return nil, nil, apiError(codes.Unavailable, errcode.Internal, "the number is not connected to the chat network now; try again")
	}
	return iq, cache, err
}

// networkError renders the network's answer to a request it refused with an
// on-prem code (templates, blocks).
func (s *Server) networkError(ctx context.Context, op string, err error) error {
	var ce *errcode.Error
	if !errors.As(err, &ce) {
		s.log.WarnContext(ctx, op+": the chat network did not answer", "err", err)
		return apiError(codes.Unavailable, errcode.Internal, "the chat network did not answer; try again")
	}
	switch ce.Code {
	case errcode.NotFound:
		return apiError(codes.NotFound, ce.Code, ce.Details)
	case errcode.Exists:
		return apiErrorHTTP(codes.AlreadyExists, 409, ce.Code, ce.Details)
	case errcode.AccessDenied:
		return apiError(codes.PermissionDenied, ce.Code, ce.Details)
	}
	return apiError(codes.InvalidArgument, ce.Code, ce.Details)
}

func templateRecords(ts []template.Template, ns, after string, total int) (*corev1.TemplateRecords, error) {
	out := &corev1.TemplateRecords{Namespace: ns, After: after, Total: uint32(total)}
	for _, t := range ts {
		b, err := json.Marshal(t)
		if err != nil {
			return nil, err
		}
		out.TemplateJson = append(out.TemplateJson, b)
	}
	return out, nil
}

// CreateTemplate implements core.v1.Core.
func (s *Server) CreateTemplate(ctx context.Context, req *corev1.CreateTemplateRequest) (*corev1.TemplateRecords, error) {
	id, iq, cache, err := s.templateIQ(ctx, req.Account, "create template")
	if err != nil {
		return nil, err
	}
	t, err := templates.Create(ctx, iq, req.TemplateJson)
	if err != nil {
		return nil, s.networkError(ctx, "create template", err)
	}
	cache.Invalidate(id)
	return templateRecords([]template.Template{t}, "", "", 1)
}

// ListTemplates implements core.v1.Core.
func (s *Server) ListTemplates(ctx context.Context, req *corev1.ListTemplatesRequest) (*corev1.TemplateRecords, error) {
	_, iq, _, err := s.templateIQ(ctx, req.Account, "list templates")
	if err != nil {
		return nil, err
	}
	recs, err := templates.List(ctx, iq, &chatdv1.TemplateQuery{Name: req.Name, Status: req.Status, Category: req.Category,
		Language: req.Language, Limit: req.Limit, Offset: req.Offset, After: req.After, Id: req.Id})
	if err != nil {
		return nil, s.networkError(ctx, "list templates", err)
	}
	return templateRecords(recs.Templates, recs.Namespace, recs.After, recs.Total)
}

// DeleteTemplate implements core.v1.Core.
func (s *Server) DeleteTemplate(ctx context.Context, req *corev1.DeleteTemplateRequest) (*corev1.TemplateRecords, error) {
	id, iq, cache, err := s.templateIQ(ctx, req.Account, "delete template")
	if err != nil {
		return nil, err
	}
	ts, err := templates.Delete(ctx, iq, req.Name, req.Language)
	if err != nil {
		return nil, s.networkError(ctx, "delete template", err)
	}
	cache.Invalidate(id)
	return templateRecords(ts, "", "", len(ts))
}

// EditTemplate implements core.v1.Core.
func (s *Server) EditTemplate(ctx context.Context, req *corev1.EditTemplateRequest) (*corev1.TemplateRecords, error) {
	id, iq, cache, err := s.templateIQ(ctx, req.Account, "edit template")
	if err != nil {
		return nil, err
	}
	t, err := templates.Edit(ctx, iq, req.Id, req.TemplateJson)
	if err != nil {
		return nil, s.networkError(ctx, "edit template", err)
	}
	cache.Invalidate(id)
	return templateRecords([]template.Template{t}, "", "", 1)
}
