// Package clickhouse is the sink.Target of ClickHouse analytics replicas.
// ClickHouse has no transactions, so exactly-once comes from versions: each
// source table is a ReplacingMergeTree(_version) ordered by its primary key,
// every row carries a _version derived from its changelog position and a
// _deleted flag, and the checkpoint (stored in ClickHouse) is saved only
// after the rows it covers were inserted. A replay re-inserts rows with the
// same versions, which collapse. Rows are batched across source
// transactions into Native blocks encoded with ch-go and POSTed over HTTP.
// docs/CLICKHOUSE.md has the mapping and the argument.
package clickhouse

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// Config configures a Target. Zero fields take the documented defaults.
type Config struct {
	// URL is the server's HTTP interface, http://user:password@host:8123/.
	// A database in its path is not used: tables go to databases named as
	// on the master.
	URL string
	// Database holds the bookkeeping tables (checkpoint, bootstrap entries,
	// skips). Default "rowcast".
	Database string
	// Topic and Partition key the checkpoint.
	Topic     string
	Partition int32
	// FlushRows and FlushBytes: pending rows are inserted once they reach
	// either. Defaults 100000 rows, 16 MiB.
	FlushRows  int
	FlushBytes int
	// FlushInterval is the longest a committed row waits before it is
	// inserted (and the checkpoint saved). Default 1s; a negative value
	// inserts at every commit.
	FlushInterval time.Duration
	// Timeout bounds one HTTP request. Default 5m.
	Timeout time.Duration
	// History keeps every change as its own row, with its operation (_op)
	// and source commit time (_commit_time): tables are ordered by the
	// primary key and then _version, so FINAL collapses only replays.
	// Default false: one current row per key.
	History bool
}

// DefaultFlushInterval is Config.FlushInterval's default.
const DefaultFlushInterval = time.Second

func (c *Config) setDefaults() {
	if c.Database == "" {
		c.Database = "rowcast"
	}
	if c.FlushRows <= 0 {
		c.FlushRows = 100000
	}
	if c.FlushBytes <= 0 {
		c.FlushBytes = 16 << 20
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
}

// Target applies the changelog to one ClickHouse server. The sink.Worker
// drives it from one goroutine; a timer goroutine of its own inserts rows
// that waited FlushInterval, so every method takes mu.
type Target struct {
	cfg   Config
	log   zerolog.Logger
	cl    *client
	store store

	mu     sync.Mutex
	inited bool
	dbs    map[string]bool
	blocks map[*pipeline.Table]*block
	order  []*block // blocks in the order their tables were first seen
	inTx   bool

	// pendingSt is the checkpoint of the last commit not yet saved, nil
	// when ClickHouse holds everything committed; since is when the oldest
	// such commit was made.
	pendingSt *checkpoint.State
	since     time.Time
	// Bootstrap entries: as committed, the changes of the open transaction,
	// and committed changes not yet saved. Skips likewise.
	boot                   map[string]checkpoint.Bootstrap
	bootOpen, bootPending  []bootOp
	skipsOpen, skipPending []checkpoint.Skip
	rows, bytes            int // pending rows and their size

	// fl is the flush in the air, nil when none (flight.go).
	fl *flight
	// bgErr is the error of a flight (of the worker's or the timer's
	// flush), returned by every later call until Open.
	bgErr   error
	stopBg  chan struct{}
	bgDone  chan struct{}
	inserts atomic.Int64 // Native inserts made
	// afterInsert, in tests, runs between the inserts of a flush and the
	// save of st: an error there is a crash in between.
	afterInsert func(st *checkpoint.State) error
}

var _ sink.Target = (*Target)(nil)

// New returns a Target; it connects at Open.
func New(cfg Config, log zerolog.Logger) (*Target, error) {
	cfg.setDefaults()
	if cfg.Topic == "" {
		return nil, fmt.Errorf("clickhouse sink: Topic is required")
	}
	cl, err := newClient(cfg.URL)
	if err != nil {
		return nil, err
	}
	cl.hc.Timeout = cfg.Timeout
	return &Target{cfg: cfg, log: log, cl: cl, store: store{cl: cl, db: cfg.Database}}, nil
}

// Open drops whatever is pending (the worker re-reads it from the stored
// checkpoint), creates the bookkeeping tables and loads the checkpoint and
// the bootstrap entries.
func (t *Target) Open(ctx context.Context) (checkpoint.State, bool, error) {
	t.stopTimer()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.land() // its error was returned already; the worker re-applies from the stored checkpoint
	t.forget()
	if !t.inited {
		if err := t.store.init(ctx); err != nil {
			return checkpoint.State{}, false, classify(err)
		}
		t.inited = true
	}
	boot, err := t.store.loadBoot(ctx, t.cfg.Topic)
	if err != nil {
		return checkpoint.State{}, false, classify(err)
	}
	t.boot = boot
	st, found, err := t.store.load(ctx, t.cfg.Topic, t.cfg.Partition)
	if err != nil {
		return checkpoint.State{}, false, classify(err)
	}
	t.startTimer()
	return st, found, nil
}

// forget drops every pending row, checkpoint and entry, and the schema cache.
func (t *Target) forget() {
	t.dbs = map[string]bool{}
	t.blocks = map[*pipeline.Table]*block{}
	t.order = nil
	t.inTx = false
	t.pendingSt = nil
	t.bootOpen, t.bootPending, t.skipsOpen, t.skipPending = nil, nil, nil, nil
	t.rows, t.bytes = 0, 0
	t.bgErr = nil
}

// Begin starts a target transaction: rows from here on may be rolled back
// until Commit.
func (t *Target) Begin(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.landed(); err != nil {
		return err
	}
	t.inTx = true
	return nil
}

// Commit marks the transaction's rows committed with st, and sends them
// with everything pending once a flush limit is reached. Until their flight
// landed st is not stored: a crash re-applies from the stored checkpoint,
// whose rows collapse by version.
func (t *Target) Commit(ctx context.Context, st checkpoint.State) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.landed(); err != nil {
		return err
	}
	t.inTx = false
	for _, b := range t.order {
		b.mark = b.rows
	}
	t.applyBoot(t.bootOpen)
	t.bootPending = append(t.bootPending, t.bootOpen...)
	t.skipPending = append(t.skipPending, t.skipsOpen...)
	t.bootOpen, t.skipsOpen = nil, nil
	if t.pendingSt == nil {
		t.since = time.Now()
	}
	t.pendingSt = &st
	switch {
	case t.holdsBigRow():
		// Inserted before Commit returns: the worker then lets go of the
		// process's big message gate (changelog.Consumer.Applied).
		return t.flush(ctx)
	case t.due():
		return t.startFlush(ctx)
	}
	return nil
}

// holdsBigRow reports whether a pending block, or the flight in the air,
// holds a big row.
func (t *Target) holdsBigRow() bool {
	if t.fl != nil && t.fl.big {
		return true
	}
	for _, b := range t.order {
		if b.bigRow {
			return true
		}
	}
	return false
}

// due reports that the pending rows reached a flush limit.
func (t *Target) due() bool {
	return t.cfg.FlushInterval < 0 || t.rows >= t.cfg.FlushRows || t.bytes >= t.cfg.FlushBytes ||
		(t.pendingSt != nil && time.Since(t.since) >= t.cfg.FlushInterval)
}

// Rollback drops the open transaction's rows and entries; committed rows
// stay pending.
func (t *Target) Rollback(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rollback()
	return nil
}

func (t *Target) rollback() {
	t.inTx = false
	t.bootOpen, t.skipsOpen = nil, nil
	t.rows, t.bytes = 0, 0
	for _, b := range t.order {
		if b.rows > b.mark {
			b.truncate(b.mark)
		}
		t.rows += b.rows
		t.bytes += b.bytes
	}
}

// RecordSkip records an operator skip with the open transaction.
func (t *Target) RecordSkip(ctx context.Context, s checkpoint.Skip) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.skipsOpen = append(t.skipsOpen, s)
	return nil
}

// Close inserts what is committed and pending, then stops the timer.
func (t *Target) Close() error {
	t.stopTimer()
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.cl.close()
	if t.land() != nil || t.pendingSt == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if t.inTx {
		t.rollback()
	}
	if err := t.flush(ctx); err != nil {
		t.log.Warn().Err(err).Msg("clickhouse: inserting the last committed rows at close failed; they are applied again at the next start")
		return err
	}
	return nil
}

// Inserts returns the number of Native inserts made so far; safe from any
// goroutine, for the metrics.
func (t *Target) Inserts() int64 { return t.inserts.Load() }
