package rpc

import (
	"context"

	"google.golang.org/grpc/codes"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/phone"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// SetTwoStep implements core.v1.Core.
func (s *Server) SetTwoStep(ctx context.Context, req *corev1.SetTwoStepRequest) (*corev1.SetTwoStepResponse, error) {
	if req.Pin != "" && (len(req.Pin) != 6 || !phone.Digits(req.Pin)) {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, "pin must be 6 digits")
	}
	a, err := s.verified(ctx, req.Account)
	if err != nil {
		return nil, s.translateOrPass(ctx, "two-step", err)
	}
	if err := s.accounts.SetTwoStep(ctx, a, req.Pin); err != nil {
		return nil, s.translate(ctx, "two-step", err)
	}
	return &corev1.SetTwoStepResponse{}, nil
}
