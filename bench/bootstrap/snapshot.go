package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/service"
)

// snapExtra are the snapshot's facts beside its measurements.
type snapExtra struct {
	end     int64   // the offset after the snapshot's last message
	applied float64 // rows the replica had applied when the snapshot was all in the topic
}

// Methods of the snapshot, as the report names them.
const (
	topicMethod = "snapshot into the topic (`rowcast pipeline`)"
	snapMethod  = "snapshot through Kafka (`rowcast pipeline` + `rowcast sink`)"
)

// measureSnapshot starts `rowcast pipeline` on the empty topic and `rowcast
// sink` for the empty snapshot replica at the same moment, and times the
// snapshot until it is all in the topic, and until the replica has applied
// it. Both processes go on running: the clone copies that replica, and the
// checks at the end read both.
func (b *bench) measureSnapshot(ctx context.Context, r *round) error {
	// The snapshot creates tables, not databases.
	if err := execAll(ctx, b.snap.root, "CREATE DATABASE IF NOT EXISTS "+benchDB); err != nil {
		return err
	}
	logf("round %d: rowcast pipeline (initial snapshot into %s) and rowcast sink into an empty replica ...", r.n, r.topic)
	t0 := time.Now()
	if err := b.startSnapshotProcs(r); err != nil {
		return err
	}
	mt := newMeter(b.snapshotParts(r)...)
	stopMonitor := b.monitor(ctx, r)
	defer stopMonitor()
	alive := func() error { return errors.Join(r.pipe.alive(), r.snapSink.alive()) }
	snap, err := b.waitSnapshot(ctx, r, alive)
	if err != nil {
		return fmt.Errorf("the snapshot into the topic: %w", err)
	}
	r.topicM = measurement{method: topicMethod, seconds: time.Since(t0).Seconds(), rows: int(snap.RowsDone),
		cpu: mt.since(), rss: []named{{"pipeline", float64(r.pipe.peakRSS())}}}
	r.extra.applied = r.snapSink.metric(ctx, "rowcast_sink_total", `counter="rows_applied"`)
	logf("round %d: the snapshot is in the topic: %d rows in %.1fs, %.0f rows/s; the replica has applied %.0f rows",
		r.n, snap.RowsDone, r.topicM.seconds, r.topicM.rate(), r.extra.applied)
	if r.extra.end, err = dataEnd(ctx, r.kc); err != nil {
		return err
	}
	if err := b.waitCaughtUp(ctx, r, b.snap, nodeSnap, r.extra.end, alive); err != nil {
		return fmt.Errorf("the snapshot's replica: %w", err)
	}
	r.snap = measurement{method: snapMethod, seconds: time.Since(t0).Seconds(), rows: b.o.rows, cpu: mt.since(),
		rss: []named{{"pipeline", float64(r.pipe.peakRSS())}, {"sink", float64(r.snapSink.peakRSS())}}}
	r.snap.steps = snapSteps(r.topicM.seconds, r.snap.seconds, r.extra.applied, r.snap.rows)
	logf("round %d: the replica is caught up after %.1fs, %.0f rows/s", r.n, r.snap.seconds, r.snap.rate())
	return nil
}

// startSnapshotProcs starts `rowcast pipeline` and the snapshot replica's
// `rowcast sink`, one right after the other.
func (b *bench) startSnapshotProcs(r *round) error {
	var err error
	r.pipe, err = b.startRowcast(r, "pipeline", 0, "pipeline")
	if err != nil {
		return err
	}
	r.snapSink, err = b.startRowcast(r, "sink-"+nodeSnap, 1, "sink", "--replica", nodeSnap)
	return err
}

// startRowcast starts a long-running rowcast command with the round's
// config, logging JSON at info into the bench directory; http is its
// metrics address (httpAddr).
func (b *bench) startRowcast(r *round, name string, http int, args ...string) (*proc, error) {
	args = append(args, "--config", r.cfgPath, "--log-format", "json", "--log-level", "info")
	p, err := startProc(name, filepath.Join(b.o.dir, "round"+strconv.Itoa(r.n)+"-"+name+".log"), b.o.rowcastBin, args...)
	if err != nil {
		return nil, err
	}
	p.metrics = "http://" + b.httpAddr(http) + "/metrics"
	return p, nil
}

// snapshotParts are the processes the snapshot keeps busy.
func (b *bench) snapshotParts(r *round) []part {
	return []part{{"pipeline", r.pipe.pidFunc()}, {"sink", r.snapSink.pidFunc()},
		{"master mariadbd", b.master.pidFunc()}, {"replica mariadbd", b.snap.pidFunc()}, b.kafkaPart()}
}

// waitSnapshot waits until the master's snapshots table says the topic's
// snapshot is done: its last end marker is acknowledged by Kafka.
func (b *bench) waitSnapshot(ctx context.Context, r *round, alive func() error) (checkpoint.Snapshot, error) {
	var last checkpoint.Snapshot
	err := waitFor(ctx, b.o.timeout, alive, func() (bool, error) {
		var err error
		last, err = b.topicSnapshot(ctx, r)
		if err != nil || last.State == "" {
			return false, err
		}
		if last.State == checkpoint.SnapshotFailed || last.State == checkpoint.SnapshotCancelled {
			return false, fmt.Errorf("snapshot %d %s: %s", last.ID, last.State, last.Error)
		}
		return last.State == checkpoint.SnapshotDone, nil
	})
	return last, err
}

// topicSnapshot is the round topic's newest snapshot on the master; empty
// before the pipeline has recorded one.
func (b *bench) topicSnapshot(ctx context.Context, r *round) (checkpoint.Snapshot, error) {
	list, err := r.cfg.CheckpointStore().Snapshots(ctx, b.master.root, r.topic)
	if mysqlerr.Missing(err) || len(list) == 0 {
		return checkpoint.Snapshot{}, nil
	}
	if err != nil {
		return checkpoint.Snapshot{}, err
	}
	return list[len(list)-1], nil
}

// dataEnd is the offset after the topic's last message that is not a
// heartbeat: a replica whose checkpoint reaches it has applied everything
// the master sent.
func dataEnd(ctx context.Context, kc changelog.Config) (int64, error) {
	first, err := changelog.FirstOffset(ctx, kc)
	if err != nil {
		return 0, err
	}
	end, err := changelog.EndOffset(ctx, kc)
	if err != nil {
		return 0, err
	}
	const window = 32
	for upper := end; upper > first; upper = max(first, upper-window) {
		msgs, err := changelog.ReadAt(ctx, kc, max(first, upper-window), window)
		if err != nil {
			return 0, err
		}
		if off, ok := lastData(msgs, upper); ok {
			return off + 1, nil
		}
	}
	return first, nil
}

// lastData is the offset of the last message before upper that is not a
// heartbeat.
func lastData(msgs []changelog.Message, upper int64) (int64, bool) {
	var codec pipeline.Codec
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Offset >= upper {
			continue
		}
		ev, err := codec.Decode(msgs[i].Key, msgs[i].Value)
		if err != nil || ev.Kind != pipeline.KindHeartbeat {
			return msgs[i].Offset, true
		}
	}
	return 0, false
}

// waitCaughtUp waits until the replica's checkpoint reaches target with
// nothing left to load, and its sink worker says it is healthy.
func (b *bench) waitCaughtUp(ctx context.Context, r *round, s *server, node string, target int64, alive func() error) error {
	store := r.cfg.CheckpointStore()
	n, _ := r.cfg.Node(node)
	return waitFor(ctx, b.o.timeout, alive, func() (bool, error) {
		st, found, err := store.Load(ctx, s.root, r.topic, 0)
		if mysqlerr.Missing(err) || !found {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		boots, err := store.LoadBootstrap(ctx, s.root, r.topic)
		if err != nil && !mysqlerr.Missing(err) {
			return false, err
		}
		if !caughtUp(st, boots, target) {
			return false, nil
		}
		return service.WorkerHealth(ctx, n.HTTP, "sink/"+node) == "healthy", nil
	})
}

// caughtUp reports whether a replica at checkpoint st, with bootstrap
// entries boots, has applied everything before target: no snapshot is
// loading a table, and every clone floor is behind it (the sink deletes
// those at its next commit).
func caughtUp(st checkpoint.State, boots map[string]checkpoint.Bootstrap, target int64) bool {
	if st.Offset < target {
		return false
	}
	for _, e := range boots {
		if e.Mode != checkpoint.ModeClone || e.FloorOffset >= st.Offset {
			return false
		}
	}
	return true
}

// monitor logs the progress every 5 seconds: rows in the topic and on the
// replica, and the CPU use of each process since the last line.
func (b *bench) monitor(ctx context.Context, r *round) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t0 := time.Now()
		for {
			mt, from := newMeter(b.snapshotParts(r)...), time.Now()
			if sleep(ctx, 5*time.Second) != nil {
				return
			}
			cpu := mt.since()
			snap, _ := b.topicSnapshot(ctx, r)
			applied := r.snapSink.metric(ctx, "rowcast_sink_total", `counter="rows_applied"`)
			logf("  %3.0fs: %d rows in the topic, %.0f applied; CPU: %s", time.Since(t0).Seconds(), snap.RowsDone, applied,
				cpuLine(cpu, time.Since(from)))
		}
	}()
	return func() { cancel(); <-done }
}

// snapSteps says what the snapshot's time is made of: the reader's part,
// and the sink's apply rate while the reader ran and after.
func snapSteps(inTopic, caught, applied float64, rows int) string {
	rest := caught - inTopic
	return fmt.Sprintf("all in the topic after %.1f s, %s of the rows applied then (%s rows/s); caught up %.1f s later (%s rows/s)",
		inTopic, percent(applied, rows), krate(applied/max(inTopic, 1e-9)), rest, krate((float64(rows)-applied)/max(rest, 1e-9)))
}

// percent is part of whole, in percent.
func percent(part float64, whole int) string {
	return fmt.Sprintf("%.0f%%", 100*part/float64(max(whole, 1)))
}
