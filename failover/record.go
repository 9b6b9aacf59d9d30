package failover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/pipeline"
)

// recordWriter produces control records (the epoch record) to the topic.
type recordWriter struct {
	p       *changelog.Producer
	stop    context.CancelFunc
	stopped chan struct{} // closed once Run returned, with runErr set
	runErr  error
	acked   chan int64
	closed  bool
	// timeout bounds the wait for an acknowledgement.
	timeout time.Duration
	faults  *faults
}

func newRecordWriter(ctx context.Context, kc changelog.Config, log zerolog.Logger) (*recordWriter, error) {
	return openRecordWriter(ctx, kc, log, &faults{})
}

// openRecordWriter is newRecordWriter with the faults a test injects.
func openRecordWriter(ctx context.Context, kc changelog.Config, log zerolog.Logger, f *faults) (*recordWriter, error) {
	w := &recordWriter{acked: make(chan int64, 1), stopped: make(chan struct{}), timeout: defaultRecordTimeout, faults: f}
	p, err := changelog.NewProducer(kc, log, changelog.ProducerOptions{OnAck: w.onAck})
	if err != nil {
		return nil, err
	}
	w.p = p
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.stop = cancel
	go func() {
		w.runErr = p.Run(pctx)
		close(w.stopped)
	}()
	return w, nil
}

// onAck passes Kafka's acknowledgement on to write.
func (w *recordWriter) onAck(_ any, off int64) {
	if w.faults.loseAck {
		return
	}
	select {
	case w.acked <- off:
	default:
	}
}

// write publishes one event and returns its offset once acknowledged.
func (w *recordWriter) write(ctx context.Context, ev *pipeline.Event) (int64, error) {
	if err := w.send(ctx, ev); err != nil {
		return 0, err
	}
	return w.waitAck(ctx)
}

// send queues one event; once it returns nil, the event may reach the
// topic whatever happens next, until close.
func (w *recordWriter) send(ctx context.Context, ev *pipeline.Event) error {
	c := &pipeline.Codec{}
	k, err := c.AppendKey(nil, ev)
	if err != nil {
		return err
	}
	v, err := c.AppendValue(nil, ev)
	if err != nil {
		return err
	}
	if w.faults.loseRecord {
		return nil
	}
	return w.p.Send(ctx, k, v, "epoch record")
}

// errNoAck is a record Kafka did not acknowledge in time.
var errNoAck = errors.New("no acknowledgement from Kafka")

// waitAck waits for the acknowledgement of the event sent, up to timeout.
func (w *recordWriter) waitAck(ctx context.Context) (int64, error) {
	t := time.NewTimer(w.timeout)
	defer t.Stop()
	select {
	case off := <-w.acked:
		return off, nil
	case <-w.stopped:
		return 0, fmt.Errorf("the producer stopped: %w", w.runErr)
	case <-t.C:
		return 0, fmt.Errorf("%w within %v", errNoAck, w.timeout)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// close stops the producer and returns once it sends nothing any more.
func (w *recordWriter) close() {
	if !w.closed {
		w.closed = true
		w.stop()
		<-w.stopped
	}
}
