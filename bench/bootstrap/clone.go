package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

// measureClones clones the snapshot's replica once per --clone-parallel
// value, each time into an empty replica.
func (b *bench) measureClones(ctx context.Context, r *round) error {
	for i, parallel := range b.o.parallel {
		if i > 0 {
			if err := b.emptyCloneTarget(ctx, r); err != nil {
				return err
			}
		}
		m, err := b.measureClone(ctx, r, parallel)
		if err != nil {
			return fmt.Errorf("clone --parallel %d: %w", parallel, err)
		}
		r.clones = append(r.clones, m)
	}
	return nil
}

// emptyCloneTarget stops the last clone's sink and makes its replica an
// empty server again.
func (b *bench) emptyCloneTarget(ctx context.Context, r *round) error {
	if r.cloneSink != nil {
		r.cloneSink.stop()
		r.cloneSink = nil
	}
	if err := b.clone.restart(ctx, b.o.template); err != nil {
		return err
	}
	return b.settle(ctx)
}

// measureClone runs `rowcast clone --from snap --to clone --parallel N`,
// then the new replica's `rowcast sink`, and times both until the replica
// is caught up. The snapshot's pipeline and sink go on running, as they
// would in a cluster that gets a replica.
func (b *bench) measureClone(ctx context.Context, r *round, parallel int) (measurement, error) {
	logf("round %d: rowcast clone --from %s --to %s --parallel %d ...", r.n, nodeSnap, nodeClone, parallel)
	mt := newMeter(part{"source mariadbd", b.snap.pidFunc()}, part{"replica mariadbd", b.clone.pidFunc()},
		part{"pipeline", r.pipe.pidFunc()}, part{"snapshot's sink", r.snapSink.pidFunc()}, b.kafkaPart())
	t0 := time.Now()
	c, err := startProc("clone", filepath.Join(b.o.dir, fmt.Sprintf("round%d-clone-p%d.log", r.n, parallel)), b.o.rowcastBin,
		"clone", "--config", r.cfgPath, "--from", nodeSnap, "--to", nodeClone, "--parallel", strconv.Itoa(parallel), "--log-format", "json")
	if err != nil {
		return measurement{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	if err := c.wait(wctx); err != nil {
		return measurement{}, err
	}
	cloned := time.Since(t0)
	if err := b.catchUpClone(ctx, r, parallel); err != nil {
		return measurement{}, err
	}
	m := measurement{method: fmt.Sprintf("`rowcast clone --parallel %d`, then `rowcast sink`", parallel),
		seconds: time.Since(t0).Seconds(), rows: b.o.rows,
		cpu: mt.since(named{"clone", c.cpu()}),
		rss: []named{{"clone", float64(c.peakRSS())}, {"sink", float64(r.cloneSink.peakRSS())}}}
	m.steps = fmt.Sprintf("clone %.1f s, then the sink caught up %.1f s later", cloned.Seconds(), m.seconds-cloned.Seconds())
	logf("round %d: clone --parallel %d: %.1fs, caught up after %.1fs, %.0f rows/s", r.n, parallel, cloned.Seconds(), m.seconds, m.rate())
	return m, nil
}

// catchUpClone starts the new replica's sink and waits until it is caught
// up with the topic.
func (b *bench) catchUpClone(ctx context.Context, r *round, parallel int) error {
	end, err := dataEnd(ctx, r.kc)
	if err != nil {
		return err
	}
	if r.cloneSink, err = b.startRowcast(r, fmt.Sprintf("sink-%s-p%d", nodeClone, parallel), 2, "sink", "--replica", nodeClone); err != nil {
		return err
	}
	if err := b.waitCaughtUp(ctx, r, b.clone, nodeClone, end, r.cloneSink.alive); err != nil {
		return fmt.Errorf("the clone's replica: %w", err)
	}
	return nil
}
