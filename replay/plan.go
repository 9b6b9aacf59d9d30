package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/changelog/history"
	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/failover"
	"github.com/rowcast/rowcast/pipeline"
)

// Plan checks the request and computes the rewind and the range. It changes
// nothing.
func (r *Replayer) Plan(ctx context.Context, o Options) (*Plan, error) {
	kc := r.kafka()
	node, err := r.replicaNode(o.Replica)
	if err != nil {
		return nil, err
	}
	view, err := r.locate(ctx, kc, o.Replica)
	if err != nil {
		return nil, err
	}
	pl, err := r.newPlanner(ctx, kc, view, o.Replica)
	if err != nil {
		return nil, err
	}
	if err := pl.checkpoint(r.loadCheckpoint(ctx, node)); err != nil {
		return nil, err
	}
	if err := pl.from(ctx, o); err != nil {
		return nil, err
	}
	if err := pl.to(ctx, o.ToOffset); err != nil {
		return nil, err
	}
	if pl.p.Summary, err = pl.h.Summarize(ctx, pl.p.From, pl.p.To); err != nil {
		return nil, err
	}
	return pl.p, nil
}

// replicaNode is the node a replay applies to: a mysql or clickhouse replica.
func (r *Replayer) replicaNode(replica string) (config.Node, error) {
	node, ok := r.Cfg.Node(replica)
	if !ok {
		return node, fmt.Errorf("replica %q is not a node of the config", replica)
	}
	if node.Kind != config.KindMySQL && node.Kind != config.KindClickHouse {
		return node, fmt.Errorf("replica %s is a %s node: replay is implemented for mysql and clickhouse replicas", replica, node.Kind)
	}
	return node, nil
}

// locate finds the current master and the topic's epoch records; the
// master is not replayed into.
func (r *Replayer) locate(ctx context.Context, kc changelog.Config, replica string) (failover.View, error) {
	loc := failover.NewLocator(r.Cfg, kc, r.Log)
	loc.Topic = r.Topic
	view, err := loc.Locate(ctx)
	if err != nil {
		return view, fmt.Errorf("look up the current master: %w", err)
	}
	if view.Current.Master == replica {
		return view, fmt.Errorf("%s is the current master (epoch %d): a master is not replayed into", replica, view.Current.Epoch)
	}
	return view, nil
}

// planner fills in a Plan from the topic's history.
type planner struct {
	h         *history.Log
	p         *Plan
	retention time.Duration
}

// newPlanner starts a plan of replica with the topic's retained range.
func (r *Replayer) newPlanner(ctx context.Context, kc changelog.Config, view failover.View, replica string) (*planner, error) {
	topic := r.Topic
	if topic == nil {
		topic = changelog.TopicOf(kc)
	}
	pl := &planner{h: history.New(topic, &pipeline.Codec{Cluster: r.Cfg.Cluster}, view.Marks),
		p: &Plan{Replica: replica, Topic: kc.Topic}, retention: kc.Retention}
	var err error
	pl.p.First, pl.p.End, err = pl.h.Extent(ctx)
	return pl, err
}

// checkpoint takes the replica's checkpoint, as loaded: a replica without
// one, or older than what the topic retains, cannot be replayed.
func (pl *planner) checkpoint(st checkpoint.State, found bool, err error) error {
	p := pl.p
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%s has no checkpoint for topic %s: it never applied this topic, so there is nothing to replay; start its sink worker (`rowcast sink --replica %s`)",
			p.Replica, p.Topic, p.Replica)
	}
	p.Checkpoint = st
	if st.Offset < p.First {
		return fmt.Errorf("%s is at offset %d, older than the earliest offset topic %s retains (%d, retention %v): the messages in between are gone, so it can be neither replayed nor resumed; re-seed it from the master: %w",
			p.Replica, st.Offset, p.Topic, p.First, pl.retention, history.ErrRetention)
	}
	return nil
}

// from sets where the range starts, as o asks; replay only rewinds.
func (pl *planner) from(ctx context.Context, o Options) error {
	p := pl.p
	if err := pl.fromAsked(ctx, o); err != nil {
		return err
	}
	if p.From.Offset > p.Checkpoint.Offset {
		return fmt.Errorf("%s has applied the topic up to offset %d; the replay would start later, at offset %d, and skip what lies between: replay only rewinds (start its sink worker to move it forward)",
			p.Replica, p.Checkpoint.Offset, p.From.Offset)
	}
	return nil
}

// fromAsked finds the boundary the option that o sets names.
func (pl *planner) fromAsked(ctx context.Context, o Options) error {
	p := pl.p
	var err error
	switch {
	case o.FromOffset >= 0:
		p.Asked = fmt.Sprintf("--from-offset %d", o.FromOffset)
		var start int64
		if start, err = pl.txnStartFrom(ctx, o.FromOffset); err != nil {
			return err
		}
		p.From, err = pl.h.BoundaryAt(ctx, start)
	case !o.FromTime.IsZero():
		p.Asked = "--from-time " + o.FromTime.UTC().Format(time.RFC3339Nano) + " (the first transaction whose master commit time, second precision, is at or after it)"
		p.From, err = pl.h.OffsetForTime(ctx, o.FromTime)
	case o.FromGTID != "":
		p.Asked = "--from-gtid " + o.FromGTID + " (the transactions after that GTID set)"
		p.From, err = pl.h.OffsetForGTID(ctx, "", o.FromGTID)
	default:
		return errors.New("say where to replay from: --from-offset N, --from-time T or --from-gtid SET")
	}
	return pl.retentionHint(err)
}

// retentionHint adds the topic's retained range to a boundary lookup that
// ran into the retention.
func (pl *planner) retentionHint(err error) error {
	if !errors.Is(err, history.ErrRetention) {
		return err
	}
	p := pl.p
	return fmt.Errorf("%w; topic %s retains offsets %d..%d (retention %v): replay a later range or re-seed %s", err, p.Topic, p.First, p.End, pl.retention, p.Replica)
}

// txnStartFrom checks --from-offset against the topic's range and moves it
// back to the first message of its transaction.
func (pl *planner) txnStartFrom(ctx context.Context, off int64) (int64, error) {
	p := pl.p
	if off < p.First {
		return 0, fmt.Errorf("--from-offset %d is older than the earliest offset topic %s retains (%d, retention %v); replay from %d or later, or re-seed %s: %w",
			off, p.Topic, p.First, pl.retention, p.First, p.Replica, history.ErrRetention)
	}
	if off > p.End {
		return 0, fmt.Errorf("--from-offset %d is past the end of topic %s (%d)", off, p.Topic, p.End)
	}
	if off == p.End {
		return off, nil
	}
	start, err := pl.h.TxnStart(ctx, off)
	if err != nil {
		return 0, err
	}
	if start != off {
		p.Notes = append(p.Notes, fmt.Sprintf("offset %d is inside a transaction: the replay starts at its first message, offset %d", off, start))
	}
	return start, nil
}

// to sets where the range ends: before toOffset, moved back to a
// transaction boundary, or (toOffset < 0) after the topic's last complete
// transaction. The range must not be empty.
func (pl *planner) to(ctx context.Context, toOffset int64) error {
	p := pl.p
	var err error
	if toOffset < 0 {
		err = pl.toLast(ctx)
	} else {
		err = pl.toBoundary(ctx, toOffset)
	}
	if err != nil {
		return err
	}
	if p.To <= p.From.Offset {
		return fmt.Errorf("the range [%d, %d) is empty: nothing to replay", p.From.Offset, p.To)
	}
	return nil
}

func (pl *planner) toBoundary(ctx context.Context, toOffset int64) error {
	p := pl.p
	if toOffset > p.End {
		return fmt.Errorf("--to-offset %d is past the end of topic %s (%d)", toOffset, p.Topic, p.End)
	}
	p.To = toOffset
	if p.To == p.End {
		return nil
	}
	var err error
	if p.To, err = pl.h.TxnStart(ctx, toOffset); err != nil {
		return err
	}
	if p.To != toOffset {
		p.Notes = append(p.Notes, fmt.Sprintf("--to-offset %d is inside a transaction: the replay stops before it, at offset %d", toOffset, p.To))
	}
	return nil
}

func (pl *planner) toLast(ctx context.Context) error {
	p := pl.p
	last, ok, err := pl.h.LastBefore(ctx, p.End, -1)
	if err != nil {
		return err
	}
	p.To = p.From.Offset
	if ok {
		p.To = max(p.To, last.Offset+1)
	}
	return nil
}
