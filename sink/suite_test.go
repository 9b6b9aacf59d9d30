package sink_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

func TestMain(m *testing.M) {
	// kafka-go's shared default transport keeps idle connections of the
	// topic admin client (testenv) and the test's writer, whichever call
	// (a metadata wait, a read in flight) they are in when the check runs.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*conn).run"))
}

// TestConformanceMemory runs the conformance suite against the in-memory
// reference target: the Worker's rules, without a database.
func TestConformanceMemory(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (sink.Target, sinktest.Inspect) {
		m := sinktest.NewMemory("shop")
		return m.Target(), m
	})
}
