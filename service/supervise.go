package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/rowcast/rowcast/internal/obs"
	"github.com/rowcast/rowcast/sink"
)

// RunFunc is a long-running part of `rowcast run`: the reader or one
// replica's sink worker. It returns nil when ctx ends.
type RunFunc func(context.Context) error

// Supervise runs the reader and every replica's sink worker of `rowcast run`
// until ctx ends or the reader fails. The reader is the topic's one writer:
// its error ends everything and is returned. A sink worker's error stops
// that worker alone, as MySQL's SQL thread stops while the IO thread goes
// on: it is logged, shown by /healthz and `rowcast status` (RunSink recorded
// it), and never retried here; the operator fixes the cause and restarts
// `rowcast run`, or runs `rowcast sink --replica NAME`.
func Supervise(ctx context.Context, reader RunFunc, sinks map[string]RunFunc, log zerolog.Logger) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return reader(gctx) })
	for replica, run := range sinks {
		g.Go(func() error {
			isolate(gctx, replica, run, log)
			return nil
		})
	}
	return g.Wait()
}

// isolate runs one sink worker and keeps its error to itself.
func isolate(ctx context.Context, replica string, run RunFunc, log zerolog.Logger) {
	err := run(ctx)
	if err == nil || ctx.Err() != nil {
		return
	}
	log.Error().Err(err).Str("replica", replica).
		Msg("sink worker stopped; the reader and the other sinks go on. Fix the cause, then restart `rowcast run` or run `rowcast sink --replica " + replica + "`")
}

// workerStopped is the state of a worker that stopped: for an error that
// needs a human when WorkerReport.Error is set (sink.StateError), else
// cleanly.
const workerStopped = string(sink.StateStopped)

// WorkerReport is a sink worker's state as /healthz serves it (under
// details."sink/<replica>") and `rowcast status` prints it.
type WorkerReport struct {
	// State is starting, running, retrying, stopped or promoted.
	State string `json:"state"`
	// Offset is the message a stopped worker stopped at (the failing one
	// when the error names it), else the next offset to apply; -1 unknown.
	Offset int64 `json:"offset"`
	// Error is why the worker stopped, or the error it retries.
	Error string `json:"error,omitempty"`
	// Fix is what an operator does about Error, when rowcast knows.
	Fix string `json:"fix,omitempty"`
	// LastVerify is what continuous verification found so far, when it runs.
	LastVerify *VerifyReport `json:"last_verify,omitempty"`
}

// VerifyReport sums up a replica's continuous verification: when it last
// compared a slice, and the rows compared and found different since start.
type VerifyReport struct {
	At          time.Time `json:"at"`
	Rows        int64     `json:"rows"`
	Differences int64     `json:"differences"`
}

// Stopped reports whether the worker stopped for an error.
func (r WorkerReport) Stopped() bool { return r.State == workerStopped && r.Error != "" }

// workerReport is a worker's report from its status.
func workerReport(st sink.Status) WorkerReport {
	r := WorkerReport{State: string(st.State), Offset: st.Offset}
	if st.State == sink.StateError {
		return stopReport(st, st.Err)
	}
	if st.Err != nil {
		r.Error = st.Err.Error()
	}
	return r
}

// stopReport is the report of a worker whose Run returned err.
func stopReport(st sink.Status, err error) WorkerReport {
	if st.Err != nil {
		err = st.Err // without the worker's "sink topic[partition]: " prefix
	}
	fix := sink.Advice(err)
	r := WorkerReport{State: workerStopped, Offset: st.Offset, Fix: fix,
		Error: strings.TrimSuffix(err.Error(), "; fix: "+fix)}
	var ae *sink.ApplyError
	if errors.As(err, &ae) {
		r.Offset = ae.Offset
	}
	return r
}

// healthErr is the report as a /healthz component: nil while the worker
// applies or waits to.
func (r WorkerReport) healthErr() error {
	switch {
	case r.Stopped() && r.Fix != "":
		return fmt.Errorf("stopped at offset %d: %s; fix: %s", r.Offset, r.Error, r.Fix)
	case r.Stopped():
		return fmt.Errorf("stopped at offset %d: %s", r.Offset, r.Error)
	case r.State == workerStopped && r.Error == "":
		return errors.New("stopped")
	case r.Error != "":
		return fmt.Errorf("%s: %s", r.State, r.Error)
	}
	return nil
}

// sinkStopped records a worker that stopped with an error in health (its
// component and details) and in the stopped metric.
func sinkStopped(replica string, rep WorkerReport, health *obs.Health, m *SinkMetrics) {
	component := "sink/" + replica
	health.SetDetail(component, func() any { return rep })
	health.Set(component, rep.healthErr())
	m.stopped.WithLabelValues(replica).Set(1)
}
