package rpc

import (
	"context"

	"google.golang.org/grpc/codes"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/coreapp/templates"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// SetBlocked implements core.v1.Core: the block is the network's (chatd
// refuses the business's messages to a blocked customer and drops the
// customer's), asked over one of the number's connected slots.
func (s *Server) SetBlocked(ctx context.Context, req *corev1.SetBlockedRequest) (*corev1.SetBlockedResponse, error) {
	op := "unblock"
	if req.Blocked {
		op = "block"
	}
	n, err := phone.Parse(req.WaId)
	if err != nil {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, "the contact must be a phone number of 5 to 20 digits")
	}
	_, iq, _, err := s.templateIQ(ctx, req.Account, op)
	if err != nil {
		return nil, err
	}
	ictx, cancel := context.WithTimeout(ctx, templates.IQTimeout)
	defer cancel()
	if _, err := iq(ictx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Block{Block: &chatdv1.Block{Number: string(n), Blocked: req.Blocked}}}); err != nil {
		return nil, s.networkError(ctx, op, session.OnPrem(err))
	}
	return &corev1.SetBlockedResponse{}, nil
}
