package waphone_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// server, session and phone a test starts must be stopped by its owner.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
