// Package metrics holds coreapp's Prometheus metrics and serves them
// (GET /metrics on WA_CORE_METRICS_ADDR:WA_CORE_METRICS_PORT, plain HTTP:
// keep it on the host or the deployment's internal network). Counters are
// per node since it started; gauges read the database at each scrape
// (bounded by a short timeout) or this node's state.
package metrics

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/openwaba/openwaba/db"
)

// The counters and histograms other packages move.
var (
	MessagesAccepted = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "openwaba_messages_accepted_total", Help: "Messages accepted (committed) for sending, by type.",
	}, []string{"type"})
	MessageStatuses = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "openwaba_message_statuses_total", Help: "Outbound message status changes written (sent, delivered, read, failed), by message type.",
	}, []string{"status", "type"})
	WebhookPosts = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "openwaba_webhook_posts_total", Help: "Webhook POSTs made, by endpoint (default: the webhooks.url setting; extra: the others) and result.",
	}, []string{"endpoint", "result"})
	SlotTakeovers = promauto.NewCounter(prometheus.CounterOpts{
		Name: "openwaba_slot_takeovers_total", Help: "Slots this node took from another node whose lease had expired (failovers).",
	})
	grpcRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "openwaba_grpc_requests_total", Help: "gRPC calls served, by method and code.",
	}, []string{"method", "code"})
	grpcDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "openwaba_grpc_request_duration_seconds", Help: "Time to serve a gRPC call, by method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 30},
	}, []string{"method"})
	dbBatchDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "openwaba_db_batch_duration_seconds", Help: "Time of a group transaction, by batcher.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
	}, []string{"batch"})
	dbBatchItems = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "openwaba_db_batch_items", Help: "Items one group transaction carried, by batcher.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
	}, []string{"batch"})
	dbBatchErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "openwaba_db_batch_errors_total", Help: "Group transactions that failed, by batcher.",
	}, []string{"batch"})
)

// UnaryInterceptor counts and times the gRPC calls served.
func UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	grpcRequests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	grpcDuration.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	return resp, err
}

// ObserveBatches makes every db.Batcher of the process report here.
func ObserveBatches() {
	db.SetBatchObserver(func(name string, items int, took time.Duration, err error) {
		dbBatchDuration.WithLabelValues(name).Observe(took.Seconds())
		dbBatchItems.WithLabelValues(name).Observe(float64(items))
		if err != nil {
			dbBatchErrors.WithLabelValues(name).Inc()
		}
	})
}

// Node is what the gauges read of this node.
type Node struct {
	DB *sql.DB
	// Slots owned here and those of them connected to the chat network.
	Slots func() (owned, connected int)
	// Master reports whether this node holds the master lease.
	Master func() bool
}

// scrapeTimeout bounds the database reads of one scrape.
const scrapeTimeout = 2 * time.Second

// Register adds the gauges of n to the default registry.
func Register(n Node) {
	count := func(q string, args ...any) float64 {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		var v sql.NullInt64
		if err := n.DB.QueryRowContext(ctx, q, args...).Scan(&v); err != nil {
			return -1 // visible as an impossible value rather than a stale one
		}
		return float64(v.Int64)
	}
	promauto.NewGaugeFunc(prometheus.GaugeOpts{Name: "openwaba_webhook_outbox_depth", Help: "Webhook deliveries of every number not yet delivered (pending or failing); -1 when the database did not answer."},
		func() float64 { return count("SELECT COUNT(*) FROM webhook_deliveries WHERE state IN (0, 2)") })
	promauto.NewGaugeFunc(prometheus.GaugeOpts{Name: "openwaba_webhook_dead_deliveries", Help: "Webhook deliveries given up on (dead), still listed and replayable."},
		func() float64 { return count("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 3") })
	promauto.NewGaugeFunc(prometheus.GaugeOpts{Name: "openwaba_webhook_oldest_pending_age_seconds", Help: "Age of the oldest webhook delivery not yet delivered (0: none)."},
		func() float64 {
			oldest := count("SELECT MIN(created_at) FROM webhook_deliveries WHERE state IN (0, 2)")
			if oldest <= 0 {
				return 0
			}
			return time.Since(time.UnixMilli(int64(oldest))).Seconds()
		})
	if n.Slots != nil {
		promauto.NewGaugeFunc(prometheus.GaugeOpts{Name: "openwaba_slots_owned", Help: "Connection slots this node runs."},
			func() float64 { o, _ := n.Slots(); return float64(o) })
		promauto.NewGaugeFunc(prometheus.GaugeOpts{Name: "openwaba_slots_connected", Help: "Connection slots of this node connected to the chat network."},
			func() float64 { _, c := n.Slots(); return float64(c) })
	}
	if n.Master != nil {
		promauto.NewGaugeFunc(prometheus.GaugeOpts{Name: "openwaba_primary_master", Help: "1 while this node holds the master lease."},
			func() float64 {
				if n.Master() {
					return 1
				}
				return 0
			})
	}
}

// Serve serves GET /metrics on addr until ctx ends.
func Serve(ctx context.Context, addr string, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	log.Info("metrics listening", "url", "http://"+ln.Addr().String()+"/metrics")
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Endpoint is the label of webhook endpoint id: "default" for the first
// endpoint (id 0), "extra" for the others (ids are minted without bound:
// one label per id would grow without bound too).
func Endpoint(id int64) string {
	if id == 0 {
		return "default"
	}
	return "extra"
}
