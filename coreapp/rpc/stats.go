package rpc

import (
	"context"
	"time"

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
	if !req.Db && !req.Local {
		s.peerStats(ctx, req, ms)
	}
	return &corev1.Stats{Metrics: ms}, nil
}

// peerStats adds the other live nodes' measures of their own (the
// metrics stats.NodeLocal names; the rest is read from the shared
// database, the same on every node) to ms, each point with its node
// label. A node that does not answer in time is left out.
func (s *Server) peerStats(ctx context.Context, req *corev1.GetStatsRequest, ms []*corev1.Metric) {
	if s.cluster == nil {
		return
	}
	byName := map[string]*corev1.Metric{}
	for _, m := range ms {
		if stats.NodeLocal[m.Name] {
			byName[m.Name] = m
		}
	}
	v := s.cluster.View()
	for _, n := range v.Nodes {
		if n.ID == v.Self || !n.Alive {
			continue
		}
		peer, err := s.cluster.Peer(n.ID)
		if err != nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, peerStatsTimeout)
		resp, err := peer.GetStats(pctx, &corev1.GetStatsRequest{Account: req.Account, Local: true})
		cancel()
		if err != nil {
			s.log.WarnContext(ctx, "stats: a node did not answer", "node", n.ID, "err", err)
			continue
		}
		for _, pm := range resp.GetMetrics() {
			if m := byName[pm.Name]; m != nil {
				m.Data = append(m.Data, pm.Data...)
			}
		}
	}
}

// peerStatsTimeout bounds asking another node for its stats.
const peerStatsTimeout = 2 * time.Second
