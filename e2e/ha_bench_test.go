package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/e2e/stack"
)

// BenchmarkHA is make bench's multi-node mode: three coreapps and two
// webapps on this machine (as make run-ha), 16 phones. It measures the send
// throughput through both webapps with 1, 2 and 4 shards, then kills the
// owner of the busiest slot several times under a steady load and reports
// the median time until the slot is connected on another node and the
// median gap in deliveries. It runs once whatever -benchtime says:
//
//	go test -run '^$' -bench BenchmarkHA -benchtime 1x ./e2e   (make bench)
//
// BENCH_HA_SECONDS sets the length of each throughput run (default 10) and
// BENCH_HA_KILLS the number of kills (default 5).
func BenchmarkHA(b *testing.B) {
	seconds := envInt("BENCH_HA_SECONDS", 10)
	kills := envInt("BENCH_HA_KILLS", 5)
	b.StopTimer()
	h := newHA(b, stack.Options{}, 1, 16)
	var rows []string
	for _, shards := range []int{1, 2, 4} {
		if shards != h.shards {
			h.setShards(shards)
		}
		prefix := fmt.Sprintf("tput%d", shards)
		start := time.Now()
		load := h.s.StartLoad(stack.LoadOptions{Auth: bearer(h.tok), To: h.numbers(), Rate: 1e6, Retry: true, Prefix: prefix})
		time.Sleep(time.Duration(seconds) * time.Second)
		res := load.Stop()
		took := time.Since(start)
		accepted := len(res.Texts)
		last := h.waitAllDelivered(res, 5*time.Minute)
		delivered := last.Sub(start)
		b.ReportMetric(float64(accepted)/took.Seconds(), fmt.Sprintf("accepted/s-%dshards", shards))
		b.ReportMetric(float64(accepted)/delivered.Seconds(), fmt.Sprintf("delivered/s-%dshards", shards))
		rows = append(rows, fmt.Sprintf("| %d | %d | %.0f | %.0f | %d |", shards, accepted,
			float64(accepted)/took.Seconds(), float64(accepted)/delivered.Seconds(), len(res.Errors)))
	}

	var takeovers, gaps []time.Duration
	for k := range kills {
		load := h.startLoad(fmt.Sprintf("failover%d", k), 100)
		load.WaitAccepted(100, 30*time.Second)
		kd := h.killBusiest()
		takeovers = append(takeovers, kd.took)
		load.WaitAccepted(load.Accepted()+200, 60*time.Second)
		res := load.Stop()
		h.waitAllDelivered(res, 2*time.Minute)
		gaps = append(gaps, deliveryGap(kd.phones, fmt.Sprintf("failover%d", k), kd.at))
		h.s.StartCore(kd.victim.Index)
		h.waitSlots(30 * time.Second)
	}
	takeover, gap := median(takeovers), median(gaps)
	b.ReportMetric(takeover.Seconds(), "failover-s")
	b.ReportMetric(gap.Seconds(), "delivery-gap-s")

	fmt.Printf("\nHA benchmark: 3 coreapps, 2 webapps, 16 phones, %d s per run\n\n", seconds)
	fmt.Println("| shards | messages | accepted (msg/s) | delivered (msg/s) | retried errors |")
	fmt.Println("| --- | --- | --- | --- | --- |")
	fmt.Println(strings.Join(rows, "\n"))
	fmt.Printf("\nkill -9 of the busiest slot's owner, %d times under 100 msg/s:\n", kills)
	fmt.Printf("  slot logged in to chatd from another node after: median %s (all: %v)\n", takeover.Round(time.Millisecond), rounded(takeovers))
	fmt.Printf("  longest gap in deliveries on that slot: median %s (all: %v)\n\n", gap.Round(time.Millisecond), rounded(gaps))
}

// waitAllDelivered waits until every accepted message reached its phone and
// returns when the last one arrived.
func (h *haEnv) waitAllDelivered(res stack.LoadResult, within time.Duration) time.Time {
	h.t.Helper()
	var last time.Time
	for _, p := range h.phones {
		want := map[string]bool{}
		for _, id := range res.Accepted[p.Number()] {
			want[id] = true
		}
		p.WaitCount(within, "accepted messages", len(want), func(e waphone.Event) bool { return e.Event == "message" && want[e.ID] })
		for _, a := range p.Arrivals() {
			if a.Event.Event == "message" && want[a.ID] && a.At.After(last) {
				last = a.At
			}
		}
	}
	return last
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func rounded(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond)
	}
	return out
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err != nil || n <= 0 {
		return def
	}
	return n
}
