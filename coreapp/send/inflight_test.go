package send

import (
	"slices"
	"testing"
	"time"
)

// TestAckedStaysInFlightUntilRecorded: a message chatd acked is not sent
// again, however long its sent status waits to be written (the scan still
// sees it unsent meanwhile), until Recorded forgets it; a message with no
// ack is sent again after resendAfter; a new connection sends everything
// not acked again.
func TestAckedStaysInFlightUntilRecorded(t *testing.T) {
	s := NewSender(SenderConfig{})
	now := time.Now()
	old := now.Add(-2 * resendAfter)
	s.inflight["acked"] = flight{peer: "15550001", at: old}
	s.inflight["unacked-old"] = flight{peer: "15550002", at: old}
	s.inflight["unacked-new"] = flight{peer: "15550003", at: now}
	msgs := []Message{{ID: "acked"}, {ID: "unacked-old"}, {ID: "unacked-new"}, {ID: "fresh"}}
	ids := func(ms []Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}

	if peer := s.AckedMessage("acked"); peer != "15550001" {
		t.Fatalf("AckedMessage = %q, want the peer it was sent to", peer)
	}
	if peer := s.AckedMessage("someone-elses"); peer != "" {
		t.Fatalf("AckedMessage of a message not in flight = %q, want \"\"", peer)
	}
	if got, want := ids(s.due(msgs, now)), []string{"unacked-old", "fresh"}; !slices.Equal(got, want) {
		t.Fatalf("due = %v, want %v (acked and recently sent ones wait)", got, want)
	}
	s.Recorded("unacked-new") // not acked: stays in flight
	if got := ids(s.due(msgs, now)); slices.Contains(got, "unacked-new") {
		t.Fatalf("due = %v: Recorded forgot a message chatd has not acked", got)
	}
	s.Recorded("acked")
	if got := ids(s.due(msgs, now)); !slices.Contains(got, "acked") {
		t.Fatalf("due = %v: a recorded message is still held (a later scan could never send it if its status write failed)", got)
	}

	s.inflight["acked"] = flight{peer: "15550001", at: now, acked: true}
	s.Connected()
	if got := ids(s.due(msgs, now)); len(got) != len(msgs) {
		t.Fatalf("due after a new connection = %v, want all of %v", got, ids(msgs))
	}
}
