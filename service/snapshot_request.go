package service

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/failover"
	"github.com/rowcast/rowcast/source"
)

// SnapshotRequest is a snapshot an operator asks the running reader for.
type SnapshotRequest struct {
	// Tables are "db.table" names, snapshotted in this order.
	Tables []string
	// Throttle caps the rows per second; 0: no limit.
	Throttle int
}

// RequestSnapshot checks the tables against the current master (they must
// exist and be published) and records the request in its snapshots table,
// where the running reader finds it within a second. It returns the
// request's id and the master's name.
func RequestSnapshot(ctx context.Context, cfg *config.Config, req SnapshotRequest, log zerolog.Logger) (int64, string, error) {
	if req.Throttle < 0 {
		return 0, "", fmt.Errorf("throttle %d: use 0 (no limit) or more rows per second", req.Throttle)
	}
	cur, err := failover.NewLocator(cfg, cfg.ChangelogConfig(), log).Current(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("find the current master: %w", err)
	}
	tables := distinct(req.Tables)
	sc, err := cfg.SourceConfig(cur.Master)
	if err == nil {
		err = source.NewReader(sc, log).CheckTables(ctx, tables)
	}
	if err != nil {
		return 0, cur.Master, err
	}
	id, err := recordRequest(ctx, cfg, cur.Master, checkpoint.Snapshot{Tables: tables, Throttle: req.Throttle})
	return id, cur.Master, err
}

// distinct is names without repeats, in order.
func distinct(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// recordRequest inserts a requested snapshot into master's snapshots table.
func recordRequest(ctx context.Context, cfg *config.Config, master string, s checkpoint.Snapshot) (int64, error) {
	node, _ := cfg.Node(master)
	db, err := node.Open(ctx, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	store := cfg.CheckpointStore()
	if err := store.InitSnapshots(ctx, db); err != nil {
		return 0, err
	}
	s.Topic, s.State, s.RowsTotal = cfg.Kafka.Topic, checkpoint.SnapshotRequested, EstimateRows(ctx, db, s.Tables)
	return store.InsertSnapshot(ctx, db, s)
}

// WatchSnapshot reads snapshot id on master every interval and hands it to
// show, until it finishes (returned) or ctx ends.
func WatchSnapshot(ctx context.Context, cfg *config.Config, master string, id int64, every time.Duration,
	show func(checkpoint.Snapshot)) (checkpoint.Snapshot, error) {
	node, _ := cfg.Node(master)
	db, err := node.Open(ctx, 5*time.Second)
	if err != nil {
		return checkpoint.Snapshot{}, err
	}
	defer db.Close()
	store := cfg.CheckpointStore()
	for {
		s, found, err := store.SnapshotByID(ctx, db, id)
		switch {
		case err != nil:
			return s, err
		case !found:
			return s, fmt.Errorf("snapshot %d is not in the snapshots table of %s", id, master)
		}
		show(s)
		if s.Finished() || !sleep(ctx, every) {
			return s, ctx.Err()
		}
	}
}
