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
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/config"
	"github.com/rowcast/rowcast/pipeline/failover"
	"github.com/rowcast/rowcast/pipeline/history"
	"github.com/rowcast/rowcast/pipeline/service"
	"github.com/rowcast/rowcast/sink"
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

func (r *Replayer) kafka() pipeline.KafkaConfig { return service.KafkaConfig(r.Cfg) }

// Plan checks the request and computes the rewind and the range. It changes
// nothing.
func (r *Replayer) Plan(ctx context.Context, o Options) (*Plan, error) {
	kc := r.kafka()
	node, ok := r.Cfg.Node(o.Replica)
	if !ok {
		return nil, fmt.Errorf("replica %q is not a node of the config", o.Replica)
	}
	if node.Kind != config.KindMySQL {
		return nil, fmt.Errorf("replica %s is a %s node: replay is implemented for mysql replicas", o.Replica, node.Kind)
	}
	loc := failover.NewLocator(r.Cfg, kc, r.Log)
	loc.Topic = r.Topic
	view, err := loc.Locate(ctx)
	if err != nil {
		return nil, fmt.Errorf("look up the current master: %w", err)
	}
	if view.Current.Master == o.Replica {
		return nil, fmt.Errorf("%s is the current master (epoch %d): a master is not replayed into", o.Replica, view.Current.Epoch)
	}
	topic := r.Topic
	if topic == nil {
		topic = history.Kafka(kc)
	}
	log := history.New(topic, &pipeline.Codec{Cluster: r.Cfg.Cluster}, view.Marks)
	p := &Plan{Replica: o.Replica, Topic: kc.Topic}
	if p.First, p.End, err = log.Extent(ctx); err != nil {
		return nil, err
	}
	st, found, err := r.loadCheckpoint(ctx, node)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%s has no checkpoint for topic %s: it never applied this topic, so there is nothing to replay; start its sink worker (`rowcast sink --replica %s`)",
			o.Replica, kc.Topic, o.Replica)
	}
	p.Checkpoint = st
	if st.Offset < p.First {
		return nil, fmt.Errorf("%s is at offset %d, older than the earliest offset topic %s retains (%d, retention %v): the messages in between are gone, so it can be neither replayed nor resumed; re-seed it from the master: %w",
			o.Replica, st.Offset, kc.Topic, p.First, r.Cfg.Kafka.Retention.D(), history.ErrRetention)
	}

	switch {
	case o.FromOffset >= 0:
		p.Asked = fmt.Sprintf("--from-offset %d", o.FromOffset)
		if o.FromOffset < p.First {
			return nil, fmt.Errorf("--from-offset %d is older than the earliest offset topic %s retains (%d, retention %v); replay from %d or later, or re-seed %s: %w",
				o.FromOffset, kc.Topic, p.First, r.Cfg.Kafka.Retention.D(), p.First, o.Replica, history.ErrRetention)
		}
		if o.FromOffset > p.End {
			return nil, fmt.Errorf("--from-offset %d is past the end of topic %s (%d)", o.FromOffset, kc.Topic, p.End)
		}
		start := o.FromOffset
		if start < p.End {
			if start, err = log.TxnStart(ctx, o.FromOffset); err != nil {
				return nil, err
			}
			if start != o.FromOffset {
				p.Notes = append(p.Notes, fmt.Sprintf("offset %d is inside a transaction: the replay starts at its first message, offset %d", o.FromOffset, start))
			}
		}
		p.From, err = log.BoundaryAt(ctx, start)
	case !o.FromTime.IsZero():
		p.Asked = "--from-time " + o.FromTime.UTC().Format(time.RFC3339Nano) + " (the first transaction whose master commit time, second precision, is at or after it)"
		p.From, err = log.OffsetForTime(ctx, o.FromTime)
	case o.FromGTID != "":
		p.Asked = "--from-gtid " + o.FromGTID + " (the transactions after that GTID set)"
		p.From, err = log.OffsetForGTID(ctx, "", o.FromGTID)
	default:
		return nil, errors.New("say where to replay from: --from-offset N, --from-time T or --from-gtid SET")
	}
	if err != nil {
		if errors.Is(err, history.ErrRetention) {
			return nil, fmt.Errorf("%w; topic %s retains offsets %d..%d (retention %v): replay a later range or re-seed %s", err, kc.Topic, p.First, p.End, r.Cfg.Kafka.Retention.D(), o.Replica)
		}
		return nil, err
	}
	if p.From.Offset > st.Offset {
		return nil, fmt.Errorf("%s has applied the topic up to offset %d; the replay would start later, at offset %d, and skip what lies between: replay only rewinds (start its sink worker to move it forward)",
			o.Replica, st.Offset, p.From.Offset)
	}

	if o.ToOffset >= 0 {
		if o.ToOffset > p.End {
			return nil, fmt.Errorf("--to-offset %d is past the end of topic %s (%d)", o.ToOffset, kc.Topic, p.End)
		}
		p.To = o.ToOffset
		if p.To < p.End {
			if p.To, err = log.TxnStart(ctx, o.ToOffset); err != nil {
				return nil, err
			}
			if p.To != o.ToOffset {
				p.Notes = append(p.Notes, fmt.Sprintf("--to-offset %d is inside a transaction: the replay stops before it, at offset %d", o.ToOffset, p.To))
			}
		}
	} else {
		last, ok, err := log.LastBefore(ctx, p.End, -1)
		if err != nil {
			return nil, err
		}
		p.To = p.From.Offset
		if ok {
			p.To = max(p.To, last.Offset+1)
		}
	}
	if p.To <= p.From.Offset {
		return nil, fmt.Errorf("the range [%d, %d) is empty: nothing to replay", p.From.Offset, p.To)
	}
	if p.Summary, err = log.Summarize(ctx, p.From, p.To); err != nil {
		return nil, err
	}
	return p, nil
}

func (r *Replayer) loadCheckpoint(ctx context.Context, n config.Node) (checkpoint.State, bool, error) {
	db, err := open(ctx, n)
	if err != nil {
		return checkpoint.State{}, false, err
	}
	defer db.Close()
	st, found, err := checkpoint.NewMySQL(r.Cfg.Sink.BookkeepingSchema).Load(ctx, db, r.Cfg.Kafka.Topic, 0)
	if err != nil && missing(err) {
		return checkpoint.State{}, false, nil
	}
	return st, found, err
}

// ErrWorkerRunning: the replica's regular sink worker is running.
var ErrWorkerRunning = errors.New("the replica's sink worker is running")

// CheckIdle makes sure no sink worker applies to the replica: its /healthz
// (the node's http, or the config's for `rowcast run`) must not list it, and
// its checkpoint must not move for settle.
func (r *Replayer) CheckIdle(ctx context.Context, p *Plan, settle time.Duration) error {
	n, _ := r.Cfg.Node(p.Replica)
	for _, addr := range []string{n.HTTP, r.Cfg.HTTP} {
		if addr != "" && addr != "off" && workerListed(ctx, addr, "sink/"+p.Replica) {
			return fmt.Errorf("%w: the process serving http://%s/healthz runs the sink of %s; stop it first (replay runs that worker itself)", ErrWorkerRunning, addr, p.Replica)
		}
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

func workerListed(ctx context.Context, addr, component string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		Components map[string]string `json:"components"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	_, ok := body.Components[component]
	return ok
}

// Rewind moves the replica's checkpoint back to p.From, if it is still
// where Plan found it. max_txn_seq keeps its value, so that the target
// treats the range as a replay.
func (r *Replayer) Rewind(ctx context.Context, p *Plan) error {
	n, _ := r.Cfg.Node(p.Replica)
	db, err := open(ctx, n)
	if err != nil {
		return err
	}
	defer db.Close()
	store := checkpoint.NewMySQL(r.Cfg.Sink.BookkeepingSchema)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var off int64
	q := "`" + strings.ReplaceAll(r.Cfg.Sink.BookkeepingSchema, "`", "``") + "`"
	if err := tx.QueryRowContext(ctx, "SELECT `next_offset` FROM "+q+".`checkpoint` WHERE `topic`=? AND `partition_id`=0 FOR UPDATE",
		p.Topic).Scan(&off); err != nil {
		return fmt.Errorf("lock the checkpoint of %s: %w", p.Replica, err)
	}
	if off != p.Checkpoint.Offset {
		return fmt.Errorf("%w: the checkpoint of %s moved from offset %d to %d since the plan", ErrWorkerRunning, p.Replica, p.Checkpoint.Offset, off)
	}
	st := checkpoint.State{Topic: p.Topic, Offset: p.From.Offset, Epoch: p.From.Epoch, TxnSeq: p.From.TxnSeq,
		MaxTxnSeq: p.Checkpoint.MaxTxnSeq, GTIDSet: p.From.GTIDSet, CommitTime: p.From.CommitTime}
	if err := store.Save(ctx, tx, st); err != nil {
		return err
	}
	return tx.Commit()
}

// Apply runs the replica's sink worker from the rewound checkpoint to p.To
// and returns its final status.
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

func open(ctx context.Context, n config.Node) (*sql.DB, error) {
	mc, err := n.MySQLConfig()
	if err != nil {
		return nil, err
	}
	mc.Timeout = 5 * time.Second
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("node %s at %s: %w", n.Name, mc.Addr, err)
	}
	return db, nil
}

func missing(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1146 || me.Number == 1049)
}
