package clickhouse

import (
	"context"
	"errors"

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

// missing reports an error of a database or table that does not exist.
func missing(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && (se.Code == codeUnknownTable || se.Code == codeUnknownDatabase)
}
