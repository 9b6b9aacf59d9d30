package clickhouse

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// waitingInput is an input whose messages are all read, that then waits
// like a Kafka consumer at the end of the topic.
type waitingInput struct{ *sinktest.Input }

func (w waitingInput) Next(ctx context.Context) (sink.Message, error) {
	m, err := w.Input.Next(ctx)
	if errors.Is(err, sink.ErrEndOfInput) {
		<-ctx.Done()
		return m, ctx.Err()
	}
	return m, err
}

// TestIdleFlush checks that rows a worker committed reach ClickHouse, with
// their checkpoint, within the flush interval while the worker waits for
// messages; and that the worker's transactions were merged into few inserts.
func TestIdleFlush(t *testing.T) {
	r := newReplica(t, Config{FlushInterval: 200 * time.Millisecond})
	r.Setup(t, sinktest.SetupSQL...)
	w := sinktest.NewWorkload(r.db, 5, 60, false)
	tgt := r.target(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := sinktest.RunWorker(ctx, t, tgt, waitingInput{sinktest.NewInput(w.Msgs)}, sink.WorkerConfig{}, nil)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, found, err := LoadCheckpoint(context.Background(), r.cfg)
		if err == nil && found && st.Offset == int64(len(w.Msgs)) {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("the checkpoint did not reach offset %d while the worker waited: %+v, %v", len(w.Msgs), st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sinktest.Compare(t, r, w.Script) // before the worker stops: the timer inserted them
	if n := tgt.Inserts(); n == 0 || n > int64(w.Seq()) {
		t.Errorf("%d inserts for %d transactions", n, w.Seq())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
