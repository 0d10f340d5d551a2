package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The webapp's Prometheus metrics, served at GET /metrics (monitoring
// access: a bearer token, an API key or Authorization: Apikey
// <WA_API_KEY>), with the Go runtime's and the process's. Routes are
// labelled by their pattern ("/v1/media/:id"), so their number is bounded;
// a path no route matches is "unmatched".
var (
	httpRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "openwaba_http_requests_total", Help: "API requests answered, by route pattern, method and HTTP status.",
	}, []string{"route", "method", "code"})
	httpDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "openwaba_http_request_duration_seconds", Help: "Time to answer an API request, by route pattern and method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "method"})
)

// observe counts an answered request.
func observe(c echo.Context, took time.Duration) {
	route := c.Path()
	if route == "" || route == "/*" {
		route = "unmatched"
	}
	m := c.Request().Method
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		m = "OTHER" // any token is a method to net/http: keep the labels bounded
	}
	httpRequests.WithLabelValues(route, m, strconv.Itoa(c.Response().Status)).Inc()
	httpDuration.WithLabelValues(route, m).Observe(took.Seconds())
}

// metrics: GET /metrics.
func (s *Server) metrics(c echo.Context) error {
	promhttp.Handler().ServeHTTP(c.Response(), c.Request())
	return nil
}

// RegisterLimitsShare exports how many webapps share the rate limits (once
// per process: the webapp command calls it).
func RegisterLimitsShare(share func() int) {
	promauto.NewGaugeFunc(prometheus.GaugeOpts{Name: "openwaba_rate_limit_share", Help: "Webapps alive the request rate limits are shared among (this one's buckets fill at limit/share)."},
		func() float64 { return float64(share()) })
}
