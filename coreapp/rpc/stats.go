package rpc

import (
	"context"

	"github.com/openwaba/openwaba/coreapp/stats"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// WithMaxPending makes sends answer 503 (1016) while a number has n
// messages or more accepted and not yet sent (0: never).
func (s *Server) WithMaxPending(n int) *Server {
	s.maxPending = n
	return s
}

// WithStats lets the server answer GetStats from src.
func (s *Server) WithStats(src stats.Source) *Server {
	s.stats = &src
	return s
}

// GetStats implements core.v1.Core. Table sizes are the deployment's: a
// tenant (API key) gets its own rows only.
func (s *Server) GetStats(ctx context.Context, req *corev1.GetStatsRequest) (*corev1.Stats, error) {
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if err != nil {
		return nil, s.translate(ctx, "stats", err)
	}
	var ms []*corev1.Metric
	if req.Db {
		c := req.GetAccount().GetCaller()
		ms, err = s.stats.Tables(ctx, a.ID, c == corev1.Caller_CALLER_ADMIN || c == corev1.Caller_CALLER_MONITOR)
	} else {
		ms, err = s.stats.App(ctx, a.ID)
	}
	if err != nil {
		return nil, s.translate(ctx, "stats", err)
	}
	return &corev1.Stats{Metrics: ms}, nil
}
