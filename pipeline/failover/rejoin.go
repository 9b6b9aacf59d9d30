package failover

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/config"
	"github.com/rowcast/rowcast/pipeline/history"
	"github.com/rowcast/rowcast/sink/mysql"
	"github.com/rowcast/rowcast/source"
)

// RejoinOptions say which old master rejoins and how.
type RejoinOptions struct {
	// Node is the old master.
	Node string
	// LossFile is where the transactions that never reached the topic are
	// exported, one message per line ({"key":...,"value":...}, the topic's
	// own JSON). Default rowcast-loss-<topic>-<node>-epoch<N>.jsonl.
	LossFile string
	// UndoLoss reverts the lost transactions on the node, newest first, from
	// their binlog images, in the transaction that writes its checkpoint.
	// Without it, a node with a loss is not made a replica (its data holds
	// changes the topic does not have).
	UndoLoss bool
	// ReadTimeout bounds reading the node's binlog. Default 2m.
	ReadTimeout time.Duration
}

// LostTxn is one transaction of the loss report.
type LostTxn struct {
	GTID       string    `json:"gtid"`
	CommitTime time.Time `json:"commit_time"`
	Rows       int       `json:"rows"`
	DDL        int       `json:"ddl"`
	Tables     []string  `json:"tables"`
}

// RejoinResult is what Rejoin found and did.
type RejoinResult struct {
	// Epoch is the generation the node was master of, and FenceOffset the
	// offset of the epoch record that ended it.
	Epoch       uint64 `json:"epoch"`
	FenceOffset int64  `json:"fence_offset"`
	NewMaster   string `json:"new_master"`
	// Published is the node's GTID set as the topic last had it in that
	// epoch; NodeGTIDSet the node's GTID set now.
	Published   string `json:"published_gtid_set"`
	NodeGTIDSet string `json:"node_gtid_set"`
	// Lost are the node's transactions after Published that the reader would
	// have published (the config's include/exclude applied), oldest first.
	Lost     []LostTxn `json:"lost"`
	LostRows int       `json:"lost_rows"`
	LossFile string    `json:"loss_file"`
	// Undone is the number of row changes reverted (UndoLoss).
	Undone int `json:"undone"`
	// Checkpoint is the node's new checkpoint.
	Checkpoint checkpoint.State `json:"checkpoint"`
}

// Rejoiner makes an old master a replica of the current master.
type Rejoiner struct {
	Cfg   *config.Config
	Kafka pipeline.KafkaConfig
	Log   zerolog.Logger
}

// Rejoin compares the old master's binlog with what reached the topic,
// exports the transactions that never did (the loss) to a file, and only
// then makes the node a replica: read-only, with a checkpoint at the epoch
// record that ended its generation, so that its sink worker starts there.
// A node with a loss becomes a replica only with UndoLoss (otherwise the
// result is returned with ErrLoss).
func (r *Rejoiner) Rejoin(ctx context.Context, o RejoinOptions) (*RejoinResult, error) {
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 2 * time.Minute
	}
	node, ok := r.Cfg.Node(o.Node)
	if !ok || node.Kind != config.KindMySQL {
		return nil, fmt.Errorf("%q is not a mysql node of the config", o.Node)
	}
	view, err := NewLocator(r.Cfg, r.Kafka, r.Log).Locate(ctx)
	if err != nil {
		return nil, err
	}
	if view.Current.Master == o.Node {
		return nil, fmt.Errorf("%s is the current master (epoch %d): promote another node first", o.Node, view.Current.Epoch)
	}
	// The last epoch the node was master of, and the record that ended it.
	res := &RejoinResult{FenceOffset: -1}
	masterOf := func(i int) string { // master of the epoch before marks[i]
		if i == 0 {
			return r.Cfg.Master
		}
		return view.Marks[i-1].Record.Master
	}
	var fence history.Mark
	for i := len(view.Marks) - 1; i >= 0; i-- {
		if masterOf(i) == o.Node {
			fence = view.Marks[i]
			res.Epoch = fence.Record.Epoch - 1
			break
		}
	}
	if res.Epoch == 0 {
		return nil, fmt.Errorf("%s was never replaced as master of topic %s: nothing to rejoin (a replica only needs its sink worker)", o.Node, r.Kafka.Topic)
	}
	res.FenceOffset, res.NewMaster = fence.Offset, fence.Record.Master
	log := history.New(history.Kafka(r.Kafka), &pipeline.Codec{Cluster: r.Cfg.Cluster}, view.Marks)
	first, _, err := log.Extent(ctx)
	if err != nil {
		return nil, err
	}
	if fence.Offset < first {
		return nil, fmt.Errorf("the epoch %d record (offset %d) is older than the topic's earliest offset %d: what %s published can no longer be compared; re-seed it: %w",
			fence.Record.Epoch, fence.Offset, first, o.Node, history.ErrRetention)
	}
	pt, ok, err := log.LastBefore(ctx, fence.Offset, -1)
	if err != nil {
		return nil, err
	}
	if !ok || pt.Epoch != res.Epoch || pt.GTIDSet == "" {
		return nil, fmt.Errorf("the topic holds no GTID set of epoch %d (master %s) before offset %d: what it published cannot be told; re-seed %s", res.Epoch, o.Node, fence.Offset, o.Node)
	}
	res.Published = pt.GTIDSet

	srv, err := connect(ctx, node, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer srv.db.Close()
	if cp, found, err := checkpoint.NewMySQL(r.Cfg.Sink.BookkeepingSchema).Load(ctx, srv.db, r.Kafka.Topic, 0); err == nil && found && cp.Offset > fence.Offset {
		return nil, fmt.Errorf("%s already has a checkpoint after the epoch %d record (offset %d): it rejoined already; start its sink worker", o.Node, fence.Record.Epoch, cp.Offset)
	}
	// A replica from now on: no write may add to the loss.
	if err := srv.setReadOnly(ctx, readOnly{ro: true}); err != nil {
		return nil, err
	}
	if res.NodeGTIDSet, err = srv.gtidSet(ctx); err != nil {
		return nil, err
	}
	if o.LossFile == "" {
		o.LossFile = fmt.Sprintf("rowcast-loss-%s-%s-epoch%d.jsonl", r.Kafka.Topic, o.Node, res.Epoch)
	}
	res.LossFile = o.LossFile
	lines, err := r.exportLoss(ctx, node, res, o)
	if err != nil {
		return res, err
	}
	if len(res.Lost) > 0 && !o.UndoLoss {
		return res, fmt.Errorf("%w: %s holds %d transactions (%d row changes) that never reached the topic, exported to %s; they are in its data, so it cannot follow the topic as is: "+
			"rerun with --undo-loss to revert them from their binlog images (the file keeps them, to re-apply by hand on %s), or re-seed %s",
			ErrLoss, o.Node, len(res.Lost), res.LostRows, o.LossFile, res.NewMaster, o.Node)
	}

	// Revert the loss and write the checkpoint in one transaction.
	tgt, err := mysql.New(mysql.Config{DSN: node.DSN, Schema: r.Cfg.Sink.BookkeepingSchema, Topic: r.Kafka.Topic,
		Protect: *r.Cfg.Sink.ProtectReplicas}, r.Log)
	if err != nil {
		return res, err
	}
	defer tgt.Close()
	if _, _, err := tgt.Open(ctx); err != nil {
		return res, err
	}
	if err := tgt.Begin(ctx); err != nil {
		return res, err
	}
	if len(lines) > 0 {
		if res.Undone, err = undoLoss(ctx, tgt, o.LossFile, lines); err != nil {
			tgt.Rollback(ctx)
			return res, err
		}
	}
	res.Checkpoint = checkpoint.State{Topic: r.Kafka.Topic, Offset: fence.Offset, Epoch: res.Epoch, TxnSeq: fence.Record.TxnSeq,
		MaxTxnSeq: fence.Record.TxnSeq, GTIDSet: res.Published, CommitTime: pt.CommitTime, UpdatedAt: time.Now()}
	if err := tgt.Commit(ctx, res.Checkpoint); err != nil {
		return res, fmt.Errorf("write the checkpoint of %s: %w", o.Node, err)
	}
	return res, nil
}

// rejoinServerID is added to the config's source.server_id for the binlog
// stream rejoin opens on the old master, so that it does not collide with a
// reader of the pipeline service that may still be attached there.
const rejoinServerID = 1_000_003

// exportLoss reads the node's binlog from res.Published to its GTID set now
// with the reader's filters and writes every transaction it would publish to
// the loss file. It returns the file offset of each line.
func (r *Rejoiner) exportLoss(ctx context.Context, node config.Node, res *RejoinResult, o RejoinOptions) ([]int64, error) {
	f, err := os.Create(o.LossFile)
	if err != nil {
		return nil, fmt.Errorf("create the loss file: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	done, err := Contains(res.Published, res.NodeGTIDSet)
	if err != nil {
		return nil, err
	}
	var lines []int64
	var pos int64
	if !done {
		mc, err := node.MySQLConfig()
		if err != nil {
			return nil, err
		}
		sc := source.Config{Addr: mc.Addr, User: mc.User, Password: mc.Passwd, Include: r.Cfg.Source.Include, Exclude: r.Cfg.Source.Exclude,
			BookkeepingSchema: r.Cfg.Sink.BookkeepingSchema, ServerID: r.Cfg.Source.ServerID + rejoinServerID, HeartbeatPeriod: 200 * time.Millisecond}
		if r.Cfg.Source.User != "" {
			sc.User, sc.Password = r.Cfg.Source.User, r.Cfg.Source.Password
		}
		rctx, cancel := context.WithTimeout(ctx, o.ReadTimeout)
		defer cancel()
		reached := false
		check := func(set string) {
			if ok, _ := Contains(set, res.NodeGTIDSet); ok {
				reached = true
				cancel()
			}
		}
		sc.OnHeartbeat = func(_ time.Time, set string) { check(set) }
		codec := &pipeline.Codec{Cluster: r.Cfg.Cluster}
		var cur *LostTxn
		tables := map[string]bool{}
		emit := func(_ context.Context, ev *pipeline.Event) error {
			if cur == nil {
				cur = &LostTxn{GTID: ev.GTID, CommitTime: ev.CommitTime}
				clear(tables)
			}
			if ev.Kind == pipeline.KindDDL {
				cur.DDL++
			} else if ev.Table != nil {
				cur.Rows++
				res.LostRows++
				tables[ev.Table.Database+"."+ev.Table.Name] = true
			}
			k, err := codec.AppendKey(nil, ev)
			if err != nil {
				return err
			}
			v, err := codec.AppendValue(nil, ev)
			if err != nil {
				return err
			}
			line, _ := json.Marshal(struct {
				Key   json.RawMessage `json:"key"`
				Value json.RawMessage `json:"value"`
			}{k, v})
			lines = append(lines, pos)
			n, err := w.Write(append(line, '\n'))
			pos += int64(n)
			if err != nil {
				return fmt.Errorf("write the loss file: %w", err)
			}
			if ev.Pos.Last {
				for t := range tables {
					cur.Tables = append(cur.Tables, t)
				}
				sort.Strings(cur.Tables)
				res.Lost = append(res.Lost, *cur)
				cur = nil
				check(ev.GTIDSet)
			}
			return nil
		}
		reader := source.NewReader(sc, r.Log)
		err = reader.Run(rctx, source.Start{GTIDSet: res.Published, NextTxnSeq: 1, Epoch: res.Epoch}, emit)
		if !reached {
			if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				err = fmt.Errorf("the binlog of %s was not read up to %s within %v", node.Name, res.NodeGTIDSet, o.ReadTimeout)
			}
			return nil, fmt.Errorf("read the binlog of %s after %s: %w", node.Name, res.Published, err)
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	return lines, nil
}

// Contains reports whether the GTID set set holds every transaction of sub
// (see history.Contains).
func Contains(set, sub string) (bool, error) { return history.Contains("", set, sub) }

// undoLoss reverts the exported transactions on the target, newest message
// first, inside the open transaction. Inverse changes are applied strictly
// (a row that is not as the binlog left it stops the undo).
func undoLoss(ctx context.Context, tgt *mysql.Target, path string, lines []int64) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	codec := &pipeline.Codec{}
	n := 0
	for i := len(lines) - 1; i >= 0; i-- {
		end := fi.Size()
		if i+1 < len(lines) {
			end = lines[i+1]
		}
		buf := make([]byte, end-lines[i])
		if _, err := f.ReadAt(buf, lines[i]); err != nil && !errors.Is(err, io.EOF) {
			return n, err
		}
		var line struct {
			Key   json.RawMessage `json:"key"`
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(buf, &line); err != nil {
			return n, fmt.Errorf("loss file line %d: %w", i+1, err)
		}
		ev, err := codec.Decode(line.Key, line.Value)
		if err != nil {
			return n, fmt.Errorf("loss file line %d: %w", i+1, err)
		}
		if ev.Kind == pipeline.KindDDL {
			return n, fmt.Errorf("the loss holds a DDL statement (%s, GTID %s) that cannot be reverted: re-seed the node", ev.Database, ev.GTID)
		}
		if ev.Kind != pipeline.KindRow {
			continue
		}
		inv := *ev
		// Strict: a TxnSeq above anything applied is not a replay.
		inv.Pos.TxnSeq = math.MaxUint64
		switch ev.Op {
		case pipeline.OpInsert, pipeline.OpRead:
			inv.Op, inv.Before, inv.After = pipeline.OpDelete, ev.After, nil
		case pipeline.OpDelete:
			inv.Op, inv.Before, inv.After = pipeline.OpInsert, nil, ev.Before
		case pipeline.OpUpdate:
			inv.Before, inv.After = ev.After, ev.Before
		}
		if err := tgt.ApplyRows(ctx, []*pipeline.Event{&inv}); err != nil {
			return n, fmt.Errorf("revert %s %s of GTID %s: %w", ev.Op, ev.Table.Name, ev.GTID, err)
		}
		n++
	}
	return n, nil
}
