// Package replay rewinds one replica's checkpoint to an earlier point of the
// changelog and applies the topic again from there, with the replica's own
// sink worker logic, up to a stop offset.
//
// Replaying is safe because applying is idempotent over tables with a
// primary key (DESIGN.md, invariant 2): upserts of full after images and
// deletes by key converge to the same data, and the target knows from the
// checkpoint's max_txn_seq which transactions are replays (rows that are
// already gone are expected there). While a replay runs the replica shows
// older row images of the range; the data converges when it ends.
package replay

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/changelog/history"
	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/service"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/clickhouse"
	"github.com/rowcast/rowcast/sink/mysql"
)

// Options say what to replay. Exactly one of FromOffset (>= 0), FromTime
// (non-zero) and FromGTID (non-empty) is set.
type Options struct {
	Replica    string
	FromOffset int64 // -1: unset
	FromTime   time.Time
	FromGTID   string
	// ToOffset ends the range (exclusive), rounded down to a transaction
	// boundary; -1: the end of the last complete transaction in the topic.
	ToOffset int64
}

// Plan is what a replay does.
type Plan struct {
	Replica string `json:"replica"`
	Topic   string `json:"topic"`
	// First and End are the topic's retained range when planned.
	First int64 `json:"first_offset"`
	End   int64 `json:"end_offset"`
	// Checkpoint is the replica's checkpoint now.
	Checkpoint checkpoint.State `json:"checkpoint"`
	// Asked says how From was chosen, for the operator.
	Asked string `json:"asked"`
	// From is the checkpoint the replica is rewound to.
	From history.Boundary `json:"from"`
	// To is where the worker stops (exclusive, a boundary).
	To int64 `json:"to"`
	// Summary is what [From, To) holds.
	Summary history.Summary `json:"summary"`
	// Notes are adjustments made to what was asked.
	Notes []string `json:"notes,omitempty"`
}

// Replayer plans and runs replays of one cluster.
type Replayer struct {
	Cfg *config.Config
	Log zerolog.Logger
	// Topic overrides the Kafka topic (tests).
	Topic history.Topic
}

func (r *Replayer) kafka() changelog.Config { return r.Cfg.ChangelogConfig() }

func (r *Replayer) loadCheckpoint(ctx context.Context, n config.Node) (checkpoint.State, bool, error) {
	if n.Kind == config.KindClickHouse {
		cc, err := r.Cfg.ClickHouseTargetConfig(n.Name)
		if err != nil {
			return checkpoint.State{}, false, err
		}
		return clickhouse.LoadCheckpoint(ctx, cc)
	}
	db, err := n.Open(ctx, 5*time.Second)
	if err != nil {
		return checkpoint.State{}, false, err
	}
	defer db.Close()
	st, found, err := r.Cfg.CheckpointStore().Load(ctx, db, r.kafka().Topic, 0)
	if mysqlerr.Missing(err) {
		return checkpoint.State{}, false, nil
	}
	return st, found, err
}

// ErrWorkerRunning: the replica's regular sink worker is running.
var ErrWorkerRunning = errors.New("the replica's sink worker is running")

// CheckIdle makes sure no sink worker applies to the replica: its /healthz
// (the node's http, or the config's for `rowcast run`) must not list it, no
// session may hold its worker lock (sink/mysql.Lock), and its checkpoint
// must not move for settle.
func (r *Replayer) CheckIdle(ctx context.Context, p *Plan, settle time.Duration) error {
	n, _ := r.Cfg.Node(p.Replica)
	if err := r.checkNotServed(ctx, n, p.Replica); err != nil {
		return err
	}
	if err := r.checkUnlocked(ctx, n, p); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(settle):
	}
	st, _, err := r.loadCheckpoint(ctx, n)
	if err != nil {
		return err
	}
	if st.Offset != p.Checkpoint.Offset || !st.UpdatedAt.Equal(p.Checkpoint.UpdatedAt) {
		return fmt.Errorf("%w: the checkpoint of %s moved from offset %d to %d while replay looked: a sink worker is applying to it; stop it first",
			ErrWorkerRunning, p.Replica, p.Checkpoint.Offset, st.Offset)
	}
	return nil
}

// checkNotServed refuses a replica whose sink worker a process serves: the
// node's own (`rowcast sink`) or the config's (`rowcast run`).
func (r *Replayer) checkNotServed(ctx context.Context, n config.Node, replica string) error {
	for _, addr := range []string{n.HTTP, r.Cfg.HTTP} {
		if addr != "off" && service.WorkerHealth(ctx, addr, "sink/"+replica) != service.WorkerNotRunning {
			return fmt.Errorf("%w: the process serving http://%s/healthz runs the sink of %s; stop it first (replay runs that worker itself)", ErrWorkerRunning, addr, replica)
		}
	}
	return nil
}

// checkUnlocked refuses a replica whose worker lock a session holds: a
// sink worker applies to it, wherever it runs. ClickHouse has no such lock
// (docs/CLICKHOUSE.md): the health check and the settle watch stand alone.
func (r *Replayer) checkUnlocked(ctx context.Context, n config.Node, p *Plan) error {
	if n.Kind == config.KindClickHouse {
		return nil
	}
	db, err := n.Open(ctx, 5*time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	h, err := mysql.LockHolder(ctx, db, r.Cfg.CheckpointStore().Schema(), p.Topic, 0)
	if err != nil {
		return fmt.Errorf("read the worker lock of %s: %w", p.Replica, err)
	}
	if h != nil {
		return fmt.Errorf("%w: %s holds the worker lock of %s; stop that worker first (or, if no worker runs any more and its session lingers, KILL %d on %s)",
			ErrWorkerRunning, h, p.Replica, h.ID, p.Replica)
	}
	return nil
}

// Rewind moves the replica's checkpoint back to p.From, if it is still
// where Plan found it, holding the replica's worker lock meanwhile.
// max_txn_seq keeps its value, so that the target treats the range as a
// replay.
func (r *Replayer) Rewind(ctx context.Context, p *Plan) error {
	n, _ := r.Cfg.Node(p.Replica)
	if n.Kind == config.KindClickHouse {
		return r.rewindClickHouse(ctx, p)
	}
	db, err := n.Open(ctx, 5*time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	schema := r.Cfg.CheckpointStore().Schema()
	if err := mysql.Lock(ctx, conn, schema, p.Topic, 0); err != nil {
		return fmt.Errorf("%w: %w", ErrWorkerRunning, err)
	}
	defer mysql.Unlock(context.WithoutCancel(ctx), conn, schema, p.Topic, 0)
	return r.saveRewound(ctx, conn, p)
}

// saveRewound stores the rewound checkpoint in a transaction of conn, if
// the checkpoint is still where Plan found it.
func (r *Replayer) saveRewound(ctx context.Context, conn *sql.Conn, p *Plan) error {
	store := r.Cfg.CheckpointStore()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var off int64
	q := "`" + strings.ReplaceAll(store.Schema(), "`", "``") + "`"
	if err := tx.QueryRowContext(ctx, "SELECT `next_offset` FROM "+q+".`checkpoint` WHERE `topic`=? AND `partition_id`=0 FOR UPDATE",
		p.Topic).Scan(&off); err != nil {
		return fmt.Errorf("lock the checkpoint of %s: %w", p.Replica, err)
	}
	if off != p.Checkpoint.Offset {
		return fmt.Errorf("%w: the checkpoint of %s moved from offset %d to %d since the plan", ErrWorkerRunning, p.Replica, p.Checkpoint.Offset, off)
	}
	if err := store.Save(ctx, tx, r.rewound(p)); err != nil {
		return err
	}
	return tx.Commit()
}

// rewindClickHouse stores the rewound checkpoint on a ClickHouse replica,
// if it is still where Plan found it.
func (r *Replayer) rewindClickHouse(ctx context.Context, p *Plan) error {
	cc, err := r.Cfg.ClickHouseTargetConfig(p.Replica)
	if err != nil {
		return err
	}
	err = clickhouse.RewindCheckpoint(ctx, cc, p.Checkpoint.Offset, r.rewound(p))
	if errors.Is(err, clickhouse.ErrCheckpointMoved) {
		return fmt.Errorf("%w: %w since the plan", ErrWorkerRunning, err)
	}
	return err
}

// rewound is the checkpoint a replay starts from: p.From, with the
// highest transaction applied so far kept, so that the range is a replay.
func (r *Replayer) rewound(p *Plan) checkpoint.State {
	return checkpoint.State{Topic: p.Topic, Offset: p.From.Offset, Epoch: p.From.Epoch, TxnSeq: p.From.TxnSeq,
		MaxTxnSeq: p.Checkpoint.MaxTxnSeq, GTIDSet: p.From.GTIDSet, CommitTime: p.From.CommitTime}
}

// Apply runs the replica's sink worker from the rewound checkpoint to p.To
// and returns its final status. Its target takes the worker lock again: a
// worker started since Rewind makes it fail, naming that worker, which then
// applies from the rewound checkpoint itself.
func (r *Replayer) Apply(ctx context.Context, p *Plan) (sink.Status, error) {
	opts := service.SinkOptions{StopOffset: p.To, Replicas: []string{p.Replica}}
	w, closeIn, err := service.NewSinkWorker(r.Cfg, p.Replica, opts, r.Log, nil)
	if err != nil {
		return sink.Status{}, err
	}
	defer closeIn()
	err = w.Run(ctx)
	st := w.Status()
	if err == nil && ctx.Err() != nil {
		return st, fmt.Errorf("replay interrupted at offset %d (the replica holds a consistent prefix; run the replay again or start its sink worker): %w", st.Offset, ctx.Err())
	}
	return st, err
}
