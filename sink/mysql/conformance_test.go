package mysql

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestConformance runs the sink conformance suite against MariaDB db2.
func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (sink.Target, sinktest.Inspect) {
		r := newReplica(t, testenv.Replica1)
		return r.target(t), r
	})
}
