package send

import (
	"testing"
	"time"
)

func TestBacklogged(t *testing.T) {
	s, d := newStore(t)
	for range 3 {
		if _, _, err := s.Accept(t.Context(), acct, "", "15551234567", text("x"), ""); err != nil {
			t.Fatal(err)
		}
	}
	if full, err := s.Backlogged(t.Context(), acct, 4); err != nil || full {
		t.Errorf("3 pending against a limit of 4: %v, %v; want room", full, err)
	}
	if full, _ := s.Backlogged(t.Context(), acct, 0); full {
		t.Error("a limit of 0 refused")
	}
	// The count is reused for a second, then read again.
	if _, _, err := s.Accept(t.Context(), acct, "", "15551234567", text("y"), ""); err != nil {
		t.Fatal(err)
	}
	if full, _ := s.Backlogged(t.Context(), acct, 4); full {
		t.Error("the count was read again within a second")
	}
	s.backlogs.mu.Lock()
	b := s.backlogs.m[acct.ID]
	b.at = b.at.Add(-2 * time.Second)
	s.backlogs.m[acct.ID] = b
	s.backlogs.mu.Unlock()
	if full, err := s.Backlogged(t.Context(), acct, 4); err != nil || !full {
		t.Errorf("4 pending against a limit of 4: %v, %v; want full", full, err)
	}
	// Sent messages no longer count.
	if _, err := d.Exec("UPDATE outbound_messages SET status = ?", StatusSent); err != nil {
		t.Fatal(err)
	}
	s.backlogs.mu.Lock()
	delete(s.backlogs.m, acct.ID)
	s.backlogs.mu.Unlock()
	if full, _ := s.Backlogged(t.Context(), acct, 4); full {
		t.Error("sent messages counted as pending")
	}
}
