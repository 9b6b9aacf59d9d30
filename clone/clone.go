// Package clone makes a new MySQL/MariaDB replica in one command: it copies
// the schema and rows of every replicated table from a running replica into
// an empty node, all read in one consistent read view of the replica in
// which the replica's rowcast checkpoint says exactly which messages of the
// topic the rows hold, and ends with a checkpoint on the new node from which
// its sink worker goes on. Progress is kept on the new node, so a clone that
// was stopped resumes. The runbook is in docs/OPERATIONS.md ("Add a
// replica"); why each step is as it is, in docs/DESIGN.md ("Clone").
package clone

import (
	"context"
	"database/sql"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/config"
)

// Defaults of Options.
const (
	DefaultParallel   = 2
	DefaultChunkRows  = 10000
	DefaultBatchBytes = 4 << 20
)

// Options are one clone's settings.
type Options struct {
	// From and To name the source replica and the new node (mysql nodes of
	// the config). Required.
	From, To string
	// Overwrite drops the replicated databases on To (and its rowcast
	// checkpoint, bootstrap and clone progress for the topic) before
	// copying. Without it a target that holds data is refused.
	Overwrite bool
	// Parallel is how many connections load the target. Default 2.
	Parallel int
	// ChunkRows bounds the rows of one read of the source. Default 10000.
	ChunkRows int
	// BatchBytes is about the size of one LOAD DATA on the target (a batch
	// holds at least one row). Default 4 MiB. Memory stays below
	// (2*Parallel+1) batches.
	BatchBytes int
	// Locate names the current master (nil: the config's master). The
	// clone refuses it as source and as target.
	Locate func(ctx context.Context) (string, error)
	// Progress, when set, is called as rows are loaded.
	Progress func(Progress)
	Log      zerolog.Logger
}

func (o *Options) setDefaults() {
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.ChunkRows <= 0 {
		o.ChunkRows = DefaultChunkRows
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
}

// Progress is how far the copy of one table is.
type Progress struct {
	Table    string // "db.table"
	Rows     int64  // rows of Table loaded so far
	Estimate int64  // the source's estimate of Table's rows
	// Total and TotalEstimate are the same over the tables this run copies.
	Total, TotalEstimate int64
	// TablesDone of Tables are copied, of this run's.
	TablesDone, Tables int
	Done               bool // Table is copied
}

// Result is what a clone did.
type Result struct {
	// Checkpoint is the checkpoint written on the target, where its sink
	// worker starts.
	Checkpoint checkpoint.State
	// Copied tables, and rows, this run; Kept: tables an earlier run of the
	// same clone had copied, kept as they are.
	Copied, Kept int
	Rows         int64
	// Views are the source checkpoints of the read views the tables were
	// copied in, this run's and the earlier runs', oldest offset first.
	Views   []checkpoint.State
	Elapsed time.Duration
	// ReadOnly: the target was left read-only, for its sink worker to put
	// back once it has applied the topic past the clone's floors.
	ReadOnly bool
}

// Run clones opts.From into opts.To. It refuses a target that holds data
// unless opts.Overwrite, resumes a clone that was stopped, and writes the
// target's checkpoint last: until then the target has none, and its sink
// worker would not start from a half copy.
func Run(ctx context.Context, cfg *config.Config, opts Options) (*Result, error) {
	opts.setDefaults()
	start := time.Now()
	c, err := open(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.prepareTarget(ctx); err != nil {
		return nil, err
	}
	if err := c.copyAll(ctx); err != nil {
		return nil, err
	}
	if err := c.finish(ctx); err != nil {
		return nil, err
	}
	c.res.Elapsed = time.Since(start)
	return &c.res, nil
}

// cloner is one run of a clone.
type cloner struct {
	opts  Options
	log   zerolog.Logger
	topic string
	store *checkpoint.MySQL
	sel   *selector
	src   *sql.DB // the source, read sessions
	dst   *sql.DB // the target, load sessions
	ctl   *sql.Conn
	done  map[tableName]checkpoint.CloneTable // on the target, copied
	redo  map[tableName]bool                  // on the target, cut by a stopped run
	res   Result
}

func (c *cloner) close() {
	if c.ctl != nil {
		c.ctl.Close()
	}
	c.src.Close()
	c.dst.Close()
}
