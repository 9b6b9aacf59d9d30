package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// epochIndex is the sink's view of the nodes' epoch index
// (<schema>.epochs, which a promotion writes on a majority of the mysql
// nodes under its lease): a record of a new epoch is taken only when a node
// holds it there. docs/DESIGN.md, "The topic is a trust boundary".
type epochIndex struct {
	cfg     *config.Config
	timeout time.Duration
}

var _ sink.EpochIndex = epochIndex{}

// Confirm reads the epoch's row on every mysql node it reaches: confirmed
// when one holds the record at offset, contradicted when one holds another
// record for the epoch. An error only when no node answers.
func (x epochIndex) Confirm(ctx context.Context, offset int64, rec pipeline.EpochRecord) (sink.EpochVerdict, error) {
	verdict, answered := sink.EpochNotIndexed, 0
	var errs []error
	for _, n := range x.cfg.Nodes {
		if n.Kind != config.KindMySQL {
			continue
		}
		row, found, err := x.read(ctx, n, rec.Epoch)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		answered++
		switch {
		case !found:
		case row.offset == offset && row.master == rec.Master:
			return sink.EpochConfirmed, nil
		default:
			verdict = sink.EpochContradicted
		}
	}
	if answered == 0 {
		return 0, fmt.Errorf("no node's epoch index answers: %w", errors.Join(errs...))
	}
	return verdict, nil
}

type indexedEpoch struct {
	offset int64
	master string
}

// read is the index's row for epoch on node n.
func (x epochIndex) read(ctx context.Context, n config.Node, epoch uint64) (indexedEpoch, bool, error) {
	db, err := n.Open(ctx, x.timeout)
	if err != nil {
		return indexedEpoch{}, false, err
	}
	defer db.Close()
	var r indexedEpoch
	q := "SELECT `record_offset`,`master` FROM " + x.cfg.CheckpointStore().Table(checkpoint.EpochsTable) + " WHERE `topic`=? AND `epoch`=?"
	err = db.QueryRowContext(ctx, q, x.cfg.Kafka.Topic, epoch).Scan(&r.offset, &r.master)
	switch {
	case errors.Is(err, sql.ErrNoRows), mysqlerr.Missing(err):
		return r, false, nil
	case err != nil:
		return r, false, fmt.Errorf("node %s: read the epoch index: %w", n.Name, err)
	}
	return r, true, nil
}
