package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// chatd's Prometheus metrics, served at GET /metrics on the admin port
// (loopback by default, like the rest of the admin API).
var (
	stanzasStored = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatd_stanzas_total", Help: "Stanzas accepted from clients and queued, by kind (message, receipt).",
	}, []string{"kind"})
	stanzasRefused = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatd_stanzas_refused_total", Help: "Stanzas refused with an ack error, by reason.",
	}, []string{"reason"})
	metricsHandler = promhttp.Handler()
)

// RegisterMetrics adds the gauges that read s to the default registry:
// once per process (the chatd command calls it).
func (s *Server) RegisterMetrics() {
	promauto.NewGaugeFunc(prometheus.GaugeOpts{Name: "chatd_sessions", Help: "Client sessions connected (one per account slot)."},
		func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(len(s.conns))
		})
}
