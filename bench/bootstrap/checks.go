package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rowcast/rowcast/service"
)

// check fails the round unless every replica equals the master: `rowcast
// status` shows the rowcast replicas caught up with nothing bootstrapping,
// every table has the master's row count on every replica, and (--verify)
// `rowcast verify` finds every replica equal.
func (b *bench) check(ctx context.Context, r *round) error {
	if err := b.checkStatus(ctx, r); err != nil {
		return err
	}
	if err := b.checkCounts(ctx, r); err != nil {
		return err
	}
	if !b.o.verify {
		return nil
	}
	for _, node := range []string{nodeDump, nodeSnap, nodeClone} {
		if err := b.verify(ctx, r, node); err != nil {
			return err
		}
	}
	return nil
}

// checkStatus waits, at most a minute, until `rowcast status` (the same
// report, read in this process) shows both rowcast replicas caught up with
// no table bootstrapping: a clone's floors go at the sink's first commit
// after them, at the latest the next heartbeat's.
func (b *bench) checkStatus(ctx context.Context, r *round) error {
	t0 := time.Now()
	var last string
	err := waitFor(ctx, time.Minute, func() error { return nil }, func() (bool, error) {
		rep := service.Status(ctx, r.cfg, r.kc)
		var ok bool
		ok, last = statusDone(rep, nodeSnap, nodeClone)
		return ok, nil
	})
	if err != nil {
		return fmt.Errorf("rowcast status: %s: %w", last, err)
	}
	r.checks = append(r.checks, fmt.Sprintf("`rowcast status` showed %s and %s caught up, nothing bootstrapping (%.0fs after the last measurement)",
		nodeSnap, nodeClone, time.Since(t0).Seconds()))
	return nil
}

// statusDone reports whether the nodes are caught up with nothing
// bootstrapping in rep, and says what it saw.
func statusDone(rep service.StatusReport, nodes ...string) (bool, string) {
	var seen []string
	ok := true
	for _, n := range rep.Nodes {
		if !slices.Contains(nodes, n.Node) {
			continue
		}
		seen = append(seen, fmt.Sprintf("%s %s (offset %d of %d), bootstrapping %v", n.Node, n.State, n.Offset, rep.Topic.EndOffset, n.Bootstrapping))
		ok = ok && n.State == "caught-up" && len(n.Bootstrapping) == 0
	}
	return ok && len(seen) == len(nodes), strings.Join(seen, "; ")
}

// checkCounts compares the row count of every table on every replica with
// the master's, and both with what was generated.
func (b *bench) checkCounts(ctx context.Context, r *round) error {
	want := rowsOf(b.o.rows)
	for i, t := range tables {
		for _, s := range b.servers() {
			var n int
			if err := s.root.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+benchDB+"."+t.name).Scan(&n); err != nil {
				return fmt.Errorf("count %s.%s on %s: %w", benchDB, t.name, s.name, err)
			}
			if n != want[i] {
				return fmt.Errorf("%s.%s has %d rows on %s, want %d", benchDB, t.name, n, s.name, want[i])
			}
		}
	}
	r.checks = append(r.checks, fmt.Sprintf("row counts of the %d tables equal on the master and the three replicas", len(tables)))
	return nil
}

// verify runs `rowcast verify --replica node`, which exits 0 when the
// replica equals the master (a replica without a checkpoint, the dump's,
// is compared as it is).
func (b *bench) verify(ctx context.Context, r *round, node string) error {
	t0 := time.Now()
	log := filepath.Join(b.o.dir, fmt.Sprintf("round%d-verify-%s.log", r.n, node))
	p, err := startProc("verify", log, b.o.rowcastBin, "verify", "--config", r.cfgPath, "--replica", node, "--quiet", "--log-format", "json")
	if err != nil {
		return err
	}
	if err := p.wait(ctx); err != nil {
		return fmt.Errorf("rowcast verify --replica %s: %w (exit 1: the replica differs)", node, err)
	}
	r.checks = append(r.checks, fmt.Sprintf("`rowcast verify --replica %s`: equal (%.0fs)", node, time.Since(t0).Seconds()))
	return nil
}
