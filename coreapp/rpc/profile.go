package rpc

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"

	"google.golang.org/grpc/codes"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/profile"
	coreprofile "github.com/openwaba/openwaba/coreapp/profile"
	"github.com/openwaba/openwaba/coreapp/slot"
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
	if err := s.publishProfile(ctx, a.ID); err != nil {
		return nil, err
	}
	return profileJSON(p)
}

// publishProfile shows a changed profile to the network at once: over this
// node's connection of the number, or (1018) over the node that holds it,
// where the webapp sends the call again (the change is stored either way:
// storing it twice is harmless). A number connected nowhere publishes it
// when it connects.
func (s *Server) publishProfile(ctx context.Context, accountID int64) error {
	err := s.slots.PublishProfile(ctx, accountID)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, slot.ErrNotConnected):
		if s.slots.OwnerElsewhere(ctx, accountID) {
			return s.translate(ctx, "publish profile", slot.ErrNotOwner)
		}
		return nil
	}
	s.log.WarnContext(ctx, "publishing the profile failed; it is published at the next connection", "err", err)
	return nil
}

// GetProfilePhoto implements core.v1.Core.
func (s *Server) GetProfilePhoto(ctx context.Context, req *corev1.GetProfilePhotoRequest) (*corev1.ProfilePhoto, error) {
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if err != nil {
		return nil, s.translate(ctx, "get profile photo", err)
	}
	p, ok, err := s.profiles.Photo(ctx, a.ID)
	if err != nil {
		return nil, s.translate(ctx, "get profile photo", err)
	}
	if !ok {
		return nil, apiError(codes.NotFound, errcode.NotFound, "the number has no profile photo")
	}
	return &corev1.ProfilePhoto{Mime: p.Mime, Sha256: p.SHA256, Data: p.Data}, nil
}

// SetProfilePhoto implements core.v1.Core.
func (s *Server) SetProfilePhoto(ctx context.Context, req *corev1.SetProfilePhotoRequest) (*corev1.ProfilePhoto, error) {
	mime, err := profile.CheckPhoto(req.Data)
	var ce *errcode.Error
	if errors.As(err, &ce) {
		return nil, apiError(codes.InvalidArgument, ce.Code, ce.Details)
	}
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if err != nil {
		return nil, s.translate(ctx, "set profile photo", err)
	}
	if err := s.profiles.SetPhoto(ctx, a.ID, mime, req.Data); err != nil {
		return nil, s.translate(ctx, "set profile photo", err)
	}
	if err := s.publishProfile(ctx, a.ID); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(req.Data)
	return &corev1.ProfilePhoto{Mime: mime, Sha256: sum[:]}, nil
}

// DeleteProfilePhoto implements core.v1.Core.
func (s *Server) DeleteProfilePhoto(ctx context.Context, req *corev1.DeleteProfilePhotoRequest) (*corev1.DeleteProfilePhotoResponse, error) {
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if err != nil {
		return nil, s.translate(ctx, "delete profile photo", err)
	}
	if err := s.profiles.DeletePhoto(ctx, a.ID); err != nil {
		return nil, s.translate(ctx, "delete profile photo", err)
	}
	if err := s.publishProfile(ctx, a.ID); err != nil {
		return nil, err
	}
	return &corev1.DeleteProfilePhotoResponse{}, nil
}
