package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/internal/obs"
	"github.com/rowcast/rowcast/sink"
)

// blockingSink is a sink worker that runs until its context ends, as
// RunSink does, and hands that context to the test.
func blockingSink(started chan<- context.Context) RunFunc {
	return func(ctx context.Context) error {
		started <- ctx
		<-ctx.Done()
		return nil
	}
}

// TestSuperviseIsolatesSinkErrors: a sink that fails stops alone; the reader
// and the other sink go on until the reader fails, whose error ends all.
func TestSuperviseIsolatesSinkErrors(t *testing.T) {
	readerFails := make(chan error)
	readerCtx, db2Ctx := make(chan context.Context, 1), make(chan context.Context, 1)
	reader := func(ctx context.Context) error {
		readerCtx <- ctx
		select {
		case <-ctx.Done():
			return nil
		case err := <-readerFails:
			return err
		}
	}
	db3Failed := make(chan struct{})
	db3 := func(context.Context) error {
		defer close(db3Failed)
		return errors.New("Error 1146: Table 'd.t' doesn't exist")
	}
	done := make(chan error, 1)
	go func() {
		done <- Supervise(context.Background(), reader, map[string]RunFunc{"db2": blockingSink(db2Ctx), "db3": db3}, zerolog.Nop())
	}()
	rctx, sctx := <-readerCtx, <-db2Ctx
	<-db3Failed
	select {
	case err := <-done:
		t.Fatalf("Supervise returned %v after a sink failed; the reader and db2 should go on", err)
	case <-time.After(300 * time.Millisecond):
	}
	if rctx.Err() != nil || sctx.Err() != nil {
		t.Fatalf("after db3 failed: reader context %v, db2 context %v; want both running", rctx.Err(), sctx.Err())
	}
	boom := errors.New("binlog purged")
	readerFails <- boom
	if err := <-done; !errors.Is(err, boom) {
		t.Fatalf("Supervise returned %v, want the reader's error %v", err, boom)
	}
	if sctx.Err() == nil {
		t.Fatal("db2's context still runs after the reader failed")
	}
}

// TestSuperviseStopsOnCancel: cancelling (SIGTERM) stops the reader and
// every sink, and Supervise returns nil.
func TestSuperviseStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan context.Context, 2)
	reader := func(ctx context.Context) error { <-ctx.Done(); return nil }
	done := make(chan error, 1)
	go func() {
		done <- Supervise(ctx, reader, map[string]RunFunc{"db2": blockingSink(started), "db3": blockingSink(started)}, zerolog.Nop())
	}()
	a, b := <-started, <-started
	cancel()
	select {
	case err := <-done:
		if err != nil || a.Err() == nil || b.Err() == nil {
			t.Fatalf("Supervise returned %v; sink contexts %v, %v", err, a.Err(), b.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Supervise did not return after cancel")
	}
}

// missingTable is the error a worker stops with when the replica lacks a
// table: the message at offset 42 names it.
func missingTable() error {
	return fmt.Errorf("apply batch: %w", &sink.ApplyError{Offset: 42, Object: "d.t",
		Err: &mysql.MySQLError{Number: 1146, SQLState: [5]byte([]byte("42S02")), Message: "Table 'd.t' doesn't exist"}})
}

func TestStopReport(t *testing.T) {
	err := missingTable()
	fix := sink.Advice(err)
	if fix == "" {
		t.Fatal("no advice for 1146")
	}
	rep := stopReport(sink.Status{State: sink.StateError, Offset: 40, Err: err}, fmt.Errorf("sink x[0]: %w", err))
	want := WorkerReport{State: "stopped", Offset: 42, Error: "apply batch: offset 42 d.t: Error 1146 (42S02): Table 'd.t' doesn't exist", Fix: fix}
	if rep != want || !rep.Stopped() {
		t.Fatalf("report %+v\nwant   %+v", rep, want)
	}
	if got := workerReport(sink.Status{State: sink.StateError, Offset: 40, Err: err}); got != want {
		t.Fatalf("worker report %+v, want %+v", got, want)
	}
	if h := rep.healthErr().Error(); h != "stopped at offset 42: "+want.Error+"; fix: "+fix {
		t.Fatalf("health %q", h)
	}
	// No message to blame: the checkpoint's offset, and no fix to give.
	rep = stopReport(sink.Status{State: sink.StateStarting, Offset: 7}, errors.New("open target: refused"))
	if rep != (WorkerReport{State: "stopped", Offset: 7, Error: "open target: refused"}) || rep.healthErr().Error() != "stopped at offset 7: open target: refused" {
		t.Fatalf("report %+v, health %v", rep, rep.healthErr())
	}
}

func TestWorkerReportHealth(t *testing.T) {
	for _, c := range []struct {
		st   sink.Status
		want string
	}{
		{sink.Status{State: sink.StateRunning, Offset: 3}, ""},
		{sink.Status{State: sink.StateStarting}, ""},
		{sink.Status{State: sink.StatePromoted}, ""},
		{sink.Status{State: sink.StateRetrying, Err: errors.New("deadlock")}, "retrying: deadlock"},
		{sink.Status{State: sink.StateStopped}, "stopped"},
	} {
		got := ""
		if err := workerReport(c.st).healthErr(); err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%s: health %q, want %q", c.st.State, got, c.want)
		}
	}
}

// get fetches a path of a process's HTTP server.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// serveStopped serves a process's health and metrics where db2's sink runs
// and db3's stopped for a missing table; it returns the address and db3's
// report.
func serveStopped(ctx context.Context, t *testing.T) (string, WorkerReport) {
	t.Helper()
	reg, health := obs.NewRegistry(), obs.NewHealth()
	m := NewSinkMetrics(reg, nil)
	addr, err := obs.Serve(ctx, "127.0.0.1:0", reg, health, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	health.Set("pipeline", nil)
	health.Set("sink/db2", nil)
	health.SetDetail("sink/db2", func() any { return workerReport(sink.Status{State: sink.StateRunning, Offset: 50}) })
	m.stopped.WithLabelValues("db2").Set(0)
	stop := stopReport(sink.Status{State: sink.StateError, Offset: 40, Err: missingTable()}, missingTable())
	sinkStopped("db3", stop, health, m)
	return addr, stop
}

// TestStoppedSinkHealthz: /healthz answers 503 with the stopped sink's
// error and fix, the others ok; the metrics say which sink stopped.
func TestStoppedSinkHealthz(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, stop := serveStopped(ctx, t)
	code, body := get(t, addr, "/healthz")
	var hz struct {
		OK         bool                    `json:"ok"`
		Components map[string]string       `json:"components"`
		Details    map[string]WorkerReport `json:"details"`
	}
	if err := json.Unmarshal([]byte(body), &hz); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable || hz.OK || hz.Components["pipeline"] != "ok" || hz.Components["sink/db2"] != "ok" ||
		hz.Components["sink/db3"] != stop.healthErr().Error() || hz.Details["sink/db3"] != stop {
		t.Fatalf("healthz %d %s", code, body)
	}
	_, metrics := get(t, addr, "/metrics")
	for _, line := range []string{`rowcast_sink_stopped{replica="db3"} 1`, `rowcast_sink_stopped{replica="db2"} 0`} {
		if !strings.Contains(metrics, line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
}

// TestStoppedSinkStatus: what `rowcast status` reads of each worker from
// /healthz.
func TestStoppedSinkStatus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, stop := serveStopped(ctx, t)
	h, rep := workerStatus(ctx, addr, "sink/db3")
	if h != "unhealthy: "+stop.healthErr().Error() || rep == nil || *rep != stop {
		t.Fatalf("db3 worker %q %+v", h, rep)
	}
	h, rep = workerStatus(ctx, addr, "sink/db2")
	if h != "healthy" || rep == nil || rep.State != "running" || rep.Offset != 50 {
		t.Fatalf("db2 worker %q %+v", h, rep)
	}
	if h, rep = workerStatus(ctx, addr, "sink/db9"); h != WorkerNotRunning || rep != nil {
		t.Fatalf("db9 worker %q %+v", h, rep)
	}
	if h := WorkerHealth(ctx, "", "sink/db3"); h != WorkerNotRunning {
		t.Fatalf("no address: %q", h)
	}
}
