package rpc

import (
	"context"

	"google.golang.org/grpc/codes"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/coreapp/messagegc"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// WithMessageGC lets the server start message collections on c.
func (s *Server) WithMessageGC(c *messagegc.Collector) *Server {
	s.messageGC = c
	return s
}

// CollectMessages implements core.v1.Core. Any node may collect: the rows
// are in the shared database, and two collections at once only share the
// work.
func (s *Server) CollectMessages(ctx context.Context, req *corev1.CollectMessagesRequest) (*corev1.CollectMessagesResponse, error) {
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if err != nil {
		return nil, s.translate(ctx, "collect messages", err)
	}
	if s.messageGC == nil {
		return nil, apiError(codes.Unimplemented, errcode.Internal, "message garbage collection is not available on this node")
	}
	if err := s.messageGC.Request(ctx, a.ID); err != nil {
		return nil, s.translate(ctx, "collect messages", err)
	}
	return &corev1.CollectMessagesResponse{Status: "processing"}, nil
}
