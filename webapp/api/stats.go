package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// GET /v1/stats/app and /v1/stats/db (and their /internal variants, the
// same here): on-prem's metric objects for the number, as measured by the
// coreapp that answered (each point has its node label), in JSON or with
// ?format=prometheus in the Prometheus text format (coreapp/stats).

type statsMetric struct {
	Type string       `json:"type"`
	Help string       `json:"help,omitempty"`
	Data []statsPoint `json:"data"`
}

type statsPoint struct {
	Labels map[string]string `json:"labels,omitempty"`
	Value  float64           `json:"value"`
}

func (s *Server) statsApp(c echo.Context) error { return s.stats(c, false) }
func (s *Server) statsDB(c echo.Context) error  { return s.stats(c, true) }

func (s *Server) stats(c echo.Context, db bool) error {
	format := c.QueryParam("format")
	if format != "" && format != "prometheus" {
		return invalid("format must be prometheus, or absent for JSON")
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.GetStats, &corev1.GetStatsRequest{Account: principalOf(c).account(), Db: db})
	if err != nil {
		return err
	}
	if format == "prometheus" {
		return c.Blob(http.StatusOK, "text/plain; version=0.0.4; charset=utf-8", []byte(prometheusText(resp.GetMetrics())))
	}
	ms := make(map[string]statsMetric, len(resp.GetMetrics()))
	for _, m := range resp.GetMetrics() {
		sm := statsMetric{Type: m.GetType(), Help: m.GetHelp(), Data: []statsPoint{}}
		for _, p := range m.GetData() {
			sm.Data = append(sm.Data, statsPoint{Labels: p.GetLabels(), Value: p.GetValue()})
		}
		ms[m.GetName()] = sm
	}
	kind := "app"
	if db {
		kind = "db"
	}
	body, err := json.Marshal(map[string]any{"stats": map[string]any{kind: ms}, "meta": s.meta})
	if err != nil {
		return internal(err)
	}
	return c.JSONBlob(http.StatusOK, body)
}

// prometheusText renders metrics in the Prometheus text exposition format.
func prometheusText(ms []*corev1.Metric) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", m.GetName(), strings.ReplaceAll(m.GetHelp(), "\n", " "), m.GetName(), m.GetType())
		for _, p := range m.GetData() {
			b.WriteString(m.GetName())
			if len(p.GetLabels()) > 0 {
				b.WriteByte('{')
				for i, k := range slices.Sorted(maps.Keys(p.GetLabels())) {
					if i > 0 {
						b.WriteByte(',')
					}
					b.WriteString(k + "=" + strconv.Quote(p.GetLabels()[k]))
				}
				b.WriteByte('}')
			}
			b.WriteString(" " + strconv.FormatFloat(p.GetValue(), 'g', -1, 64) + "\n")
		}
	}
	return b.String()
}
