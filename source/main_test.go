package source

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: every Run
// must stop its syncer and close its connections.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
