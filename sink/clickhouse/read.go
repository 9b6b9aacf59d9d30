package clickhouse

import (
	"context"
	"errors"
	"fmt"

	"github.com/rowcast/rowcast/checkpoint"
)

// LoadCheckpoint reads the checkpoint a sink keeps on a ClickHouse replica,
// for `rowcast status`; found is false when there is none (no bookkeeping
// database or table yet).
func LoadCheckpoint(ctx context.Context, cfg Config) (st checkpoint.State, found bool, err error) {
	cfg.setDefaults()
	cl, err := newClient(cfg.URL)
	if err != nil {
		return st, false, err
	}
	cl.hc.Timeout = cfg.Timeout
	defer cl.close()
	s := store{cl: cl, db: cfg.Database}
	st, found, err = s.load(ctx, cfg.Topic, cfg.Partition)
	if missing(err) {
		return st, false, nil
	}
	return st, found, err
}

// LoadBootstrap reads the tables a snapshot is still loading on a
// ClickHouse replica, by "db.table".
func LoadBootstrap(ctx context.Context, cfg Config) (map[string]checkpoint.Bootstrap, error) {
	cfg.setDefaults()
	cl, err := newClient(cfg.URL)
	if err != nil {
		return nil, err
	}
	cl.hc.Timeout = cfg.Timeout
	defer cl.close()
	s := store{cl: cl, db: cfg.Database}
	boot, err := s.loadBoot(ctx, cfg.Topic)
	if missing(err) {
		return nil, nil
	}
	return boot, err
}

// ErrCheckpointMoved: the checkpoint is not where the caller saw it.
var ErrCheckpointMoved = errors.New("the checkpoint moved")

// RewindCheckpoint stores st as the checkpoint of cfg's topic partition,
// for a replay, if the newest stored one is still at offset was. ClickHouse
// has no lock to hold meanwhile: the caller made sure no worker runs, and a
// worker that saves later anyway only makes its next start apply more.
func RewindCheckpoint(ctx context.Context, cfg Config, was int64, st checkpoint.State) error {
	cfg.setDefaults()
	cl, err := newClient(cfg.URL)
	if err != nil {
		return err
	}
	cl.hc.Timeout = cfg.Timeout
	defer cl.close()
	s := store{cl: cl, db: cfg.Database}
	cur, found, err := s.load(ctx, cfg.Topic, cfg.Partition)
	if err != nil {
		return err
	}
	if !found || cur.Offset != was {
		return fmt.Errorf("%w: the checkpoint of %s[%d] in %s is at offset %d (found %v), not %d", ErrCheckpointMoved,
			cfg.Topic, cfg.Partition, cfg.Database, cur.Offset, found, was)
	}
	st.Topic, st.Partition = cfg.Topic, cfg.Partition
	return s.save(ctx, st) // load read the highest seq: this one is newer
}

// missing reports an error of a database or table that does not exist.
func missing(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && (se.Code == codeUnknownTable || se.Code == codeUnknownDatabase)
}
