package rpc

import (
	"context"
	"encoding/json"
	"errors"

	"google.golang.org/grpc/codes"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/profile"
	coreprofile "github.com/openwaba/openwaba/coreapp/profile"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// WithProfiles lets the server keep business profiles in ps.
func (s *Server) WithProfiles(ps *coreprofile.Store) *Server {
	s.profiles = ps
	return s
}

func profileJSON(p profile.Business) (*corev1.BusinessProfile, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return &corev1.BusinessProfile{Json: b}, nil
}

// GetBusinessProfile implements core.v1.Core.
func (s *Server) GetBusinessProfile(ctx context.Context, req *corev1.GetBusinessProfileRequest) (*corev1.BusinessProfile, error) {
	if s.profiles == nil {
		return nil, apiError(codes.FailedPrecondition, errcode.NotReady, "this node keeps no business profiles")
	}
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if err != nil {
		return nil, s.translate(ctx, "get business profile", err)
	}
	p, err := s.profiles.Get(ctx, a.ID)
	if err != nil {
		return nil, s.translate(ctx, "get business profile", err)
	}
	return profileJSON(p)
}

// UpdateBusinessProfile implements core.v1.Core.
func (s *Server) UpdateBusinessProfile(ctx context.Context, req *corev1.UpdateBusinessProfileRequest) (*corev1.BusinessProfile, error) {
	if s.profiles == nil {
		return nil, apiError(codes.FailedPrecondition, errcode.NotReady, "this node keeps no business profiles")
	}
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if err != nil {
		return nil, s.translate(ctx, "update business profile", err)
	}
	p, err := s.profiles.Update(ctx, a.ID, req.GetUpdateJson())
	var ce *errcode.Error
	if errors.As(err, &ce) {
		return nil, apiError(codes.InvalidArgument, ce.Code, ce.Details)
	}
	if err != nil {
		return nil, s.translate(ctx, "update business profile", err)
	}
	return profileJSON(p)
}
