package api

import (
	"testing"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

func TestPrometheusText(t *testing.T) {
	got := prometheusText([]*corev1.Metric{
		{Name: "messages", Type: "gauge", Help: "Outbound messages\nkept", Data: []*corev1.MetricPoint{
			{Labels: map[string]string{"status": "sent", "node": "core1"}, Value: 3},
			{Labels: map[string]string{"status": `we"ird`, "node": "core1"}, Value: 0.5}}},
		{Name: "uptime_seconds", Type: "gauge", Data: []*corev1.MetricPoint{{Value: 12}}},
	})
	want := "# HELP messages Outbound messages kept\n# TYPE messages gauge\n" +
		`messages{node="core1",status="sent"} 3` + "\n" +
		`messages{node="core1",status="we\"ird"} 0.5` + "\n" +
		"# HELP uptime_seconds \n# TYPE uptime_seconds gauge\nuptime_seconds 12\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
