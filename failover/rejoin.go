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

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/changelog/history"
	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/pipeline"
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
	Kafka changelog.Config
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
	rj, err := r.prepare(ctx, o)
	if err != nil {
		return nil, err
	}
	srv, err := connect(ctx, rj.node, 5*time.Second, nil)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	if err := rj.stopWrites(ctx, srv); err != nil {
		return nil, err
	}
	lines, err := rj.exportLoss(ctx)
	if err != nil {
		return rj.res, err
	}
	if err := rj.refuseLoss(); err != nil {
		return rj.res, err
	}
	return rj.res, rj.writeCheckpoint(ctx, lines)
}

// rejoin is one run of Rejoin.
type rejoin struct {
	r    *Rejoiner
	o    RejoinOptions
	node config.Node
	res  *RejoinResult
	// marks are the topic's epoch records; fence the one that ended the
	// node's last generation, and publishedAt the commit time of the last
	// transaction the topic has of it.
	marks       []history.Mark
	fence       history.Mark
	publishedAt time.Time
}

// prepare finds what the node published as master and the record that
// ended its generation.
func (r *Rejoiner) prepare(ctx context.Context, o RejoinOptions) (*rejoin, error) {
	node, ok := r.Cfg.AdminNode(o.Node)
	if !ok || node.Kind != config.KindMySQL {
		return nil, fmt.Errorf("%q is not a mysql node of the config", o.Node)
	}
	rj := &rejoin{r: r, o: o, node: node, res: &RejoinResult{FenceOffset: -1}}
	if err := rj.findFence(ctx); err != nil {
		return nil, err
	}
	if err := rj.readPublished(ctx); err != nil {
		return nil, err
	}
	return rj, nil
}

// findFence finds the last epoch the node was master of, and the record
// that ended it.
func (rj *rejoin) findFence(ctx context.Context) error {
	view, err := NewLocator(rj.r.Cfg, rj.r.Kafka, rj.r.Log).Locate(ctx)
	if err != nil {
		return err
	}
	if view.Current.Master == rj.o.Node {
		return fmt.Errorf("%s is the current master (epoch %d): promote another node first", rj.o.Node, view.Current.Epoch)
	}
	rj.marks = view.Marks
	if i := replacedAt(view.Marks, rj.r.Cfg.Master, rj.o.Node); i >= 0 {
		rj.fence = view.Marks[i]
		rj.res.Epoch = rj.fence.Record.Epoch - 1
	}
	if rj.res.Epoch == 0 {
		return fmt.Errorf("%s was never replaced as master of topic %s: nothing to rejoin (a replica only needs its sink worker)", rj.o.Node, rj.r.Kafka.Topic)
	}
	rj.res.FenceOffset, rj.res.NewMaster = rj.fence.Offset, rj.fence.Record.Master
	return nil
}

// replacedAt is the index of the newest record that ended a generation of
// node (the master before marks[0] is the config's), -1 when none did.
func replacedAt(marks []history.Mark, first, node string) int {
	for i := len(marks) - 1; i >= 0; i-- {
		before := first
		if i > 0 {
			before = marks[i-1].Record.Master
		}
		if before == node {
			return i
		}
	}
	return -1
}

// readPublished reads the node's GTID set as the topic last had it in its
// epoch.
func (rj *rejoin) readPublished(ctx context.Context) error {
	r, fence, res := rj.r, rj.fence, rj.res
	log := history.New(changelog.TopicOf(r.Kafka), &pipeline.Codec{Cluster: r.Cfg.Cluster}, rj.marks)
	first, _, err := log.Extent(ctx)
	if err != nil {
		return err
	}
	if fence.Offset < first {
		return fmt.Errorf("the epoch %d record (offset %d) is older than the topic's earliest offset %d: what %s published can no longer be compared; re-seed it: %w",
			fence.Record.Epoch, fence.Offset, first, rj.o.Node, history.ErrRetention)
	}
	pt, ok, err := log.LastBefore(ctx, fence.Offset, -1)
	if err != nil {
		return err
	}
	if !ok || pt.Epoch != res.Epoch || pt.GTIDSet == "" {
		return fmt.Errorf("the topic holds no GTID set of epoch %d (master %s) before offset %d: what it published cannot be told; re-seed %s", res.Epoch, rj.o.Node, fence.Offset, rj.o.Node)
	}
	res.Published, rj.publishedAt = pt.GTIDSet, pt.CommitTime
	return nil
}

// stopWrites makes the node a replica from now on (read-only), so that no
// write may add to the loss, and reads its GTID set.
func (rj *rejoin) stopWrites(ctx context.Context, srv *server) error {
	cp, found, err := rj.r.Cfg.CheckpointStore().Load(ctx, srv.ex(), rj.r.Kafka.Topic, 0)
	if err == nil && found && cp.Offset > rj.fence.Offset {
		return fmt.Errorf("%s already has a checkpoint after the epoch %d record (offset %d): it rejoined already; start its sink worker", rj.o.Node, rj.fence.Record.Epoch, cp.Offset)
	}
	if err := srv.setReadOnly(ctx, readOnly{ro: true}); err != nil {
		return err
	}
	rj.res.NodeGTIDSet, err = srv.gtidSet(ctx)
	return err
}

// refuseLoss refuses to make a node with a loss a replica, unless the loss
// is to be undone.
func (rj *rejoin) refuseLoss() error {
	res, o := rj.res, rj.o
	if len(res.Lost) == 0 || o.UndoLoss {
		return nil
	}
	return fmt.Errorf("%w: %s holds %d transactions (%d row changes) that never reached the topic, exported to %s; they are in its data, so it cannot follow the topic as is: "+
		"rerun with --undo-loss to revert them from their binlog images (the file keeps them, to re-apply by hand on %s), or re-seed %s",
		ErrLoss, o.Node, len(res.Lost), res.LostRows, o.LossFile, res.NewMaster, o.Node)
}

// writeCheckpoint reverts the loss and writes the node's checkpoint at the
// epoch record, in one transaction.
func (rj *rejoin) writeCheckpoint(ctx context.Context, lines []int64) error {
	r, res := rj.r, rj.res
	tc, err := r.Cfg.TargetConfig(rj.o.Node)
	if err != nil {
		return err
	}
	tc.Topic = r.Kafka.Topic // the topic this Rejoiner reads
	tgt, err := mysql.New(tc, r.Log)
	if err != nil {
		return err
	}
	defer tgt.Close()
	if err := rj.undo(ctx, tgt, lines); err != nil {
		return err
	}
	res.Checkpoint = checkpoint.State{Topic: r.Kafka.Topic, Offset: rj.fence.Offset, Epoch: res.Epoch, TxnSeq: rj.fence.Record.TxnSeq,
		MaxTxnSeq: rj.fence.Record.TxnSeq, GTIDSet: res.Published, CommitTime: rj.publishedAt, UpdatedAt: time.Now()}
	if err := tgt.Commit(ctx, res.Checkpoint); err != nil {
		return fmt.Errorf("write the checkpoint of %s: %w", rj.o.Node, err)
	}
	return nil
}

// undo opens the target's transaction and reverts the loss in it.
func (rj *rejoin) undo(ctx context.Context, tgt *mysql.Target, lines []int64) error {
	if _, _, err := tgt.Open(ctx); err != nil {
		return err
	}
	if err := tgt.Begin(ctx); err != nil {
		return err
	}
	if len(lines) == 0 {
		return nil
	}
	var err error
	if rj.res.Undone, err = undoLoss(ctx, tgt, rj.o.LossFile, lines); err != nil {
		tgt.Rollback(ctx)
	}
	return err
}

// rejoinServerID is added to the config's source.server_id for the binlog
// stream rejoin opens on the old master, so that it does not collide with a
// reader of the pipeline service that may still be attached there.
const rejoinServerID = 1_000_003

// createPrivate creates or truncates path, readable by its owner only: the
// loss file holds row data. A file that was there keeps no wider mode.
func createPrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// exportLoss reads the node's binlog from res.Published to its GTID set now
// with the reader's filters and writes every transaction it would publish to
// the loss file. It returns the file offset of each line.
func (rj *rejoin) exportLoss(ctx context.Context) ([]int64, error) {
	res := rj.res
	if rj.o.LossFile == "" {
		rj.o.LossFile = fmt.Sprintf("rowcast-loss-%s-%s-epoch%d.jsonl", rj.r.Kafka.Topic, rj.o.Node, res.Epoch)
	}
	res.LossFile = rj.o.LossFile
	f, err := createPrivate(rj.o.LossFile)
	if err != nil {
		return nil, fmt.Errorf("create the loss file: %w", err)
	}
	defer f.Close()
	lw := &lossWriter{w: bufio.NewWriter(f), res: res, codec: &pipeline.Codec{Cluster: rj.r.Cfg.Cluster}, tables: map[string]bool{}}
	done, err := Contains(res.Published, res.NodeGTIDSet)
	if err != nil {
		return nil, err
	}
	if !done {
		if err := rj.readLoss(ctx, lw); err != nil {
			return nil, err
		}
	}
	if err := lw.w.Flush(); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	return lw.lines, nil
}

// readLoss reads the node's binlog after res.Published until its GTID set
// now, into lw.
func (rj *rejoin) readLoss(ctx context.Context, lw *lossWriter) error {
	r, res := rj.r, rj.res
	sc, err := r.Cfg.SourceConfig(rj.node.Name)
	if err != nil {
		return err
	}
	sc.ServerID += rejoinServerID
	sc.HeartbeatPeriod = 200 * time.Millisecond
	rctx, cancel := context.WithTimeout(ctx, rj.o.ReadTimeout)
	defer cancel()
	lw.until, lw.stop = res.NodeGTIDSet, cancel
	sc.OnHeartbeat = func(_ time.Time, set, _ string) { lw.check(set) }
	err = source.NewReader(sc, r.Log).Run(rctx, source.Start{GTIDSet: res.Published, NextTxnSeq: 1, Epoch: res.Epoch}, lw.emit)
	if lw.reached {
		return nil
	}
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = fmt.Errorf("the binlog of %s was not read up to %s within %v", rj.node.Name, res.NodeGTIDSet, rj.o.ReadTimeout)
	}
	return fmt.Errorf("read the binlog of %s after %s: %w", rj.node.Name, res.Published, err)
}

// lossWriter writes the transactions of the loss to the loss file, one
// message per line, and sums them up in res.
type lossWriter struct {
	w     *bufio.Writer
	res   *RejoinResult
	codec *pipeline.Codec
	// until is the GTID set to read up to; stop ends the reading once
	// reached.
	until   string
	stop    context.CancelFunc
	reached bool

	cur    *LostTxn
	tables map[string]bool
	lines  []int64 // the file offset of each line
	pos    int64
}

// check stops the reading once set holds the GTID set to read up to.
func (lw *lossWriter) check(set string) {
	if ok, _ := Contains(set, lw.until); ok {
		lw.reached = true
		lw.stop()
	}
}

// emit writes one message of the loss.
func (lw *lossWriter) emit(_ context.Context, ev *pipeline.Event) error {
	lw.count(ev)
	if err := lw.write(ev); err != nil {
		return err
	}
	if ev.Pos.Last {
		lw.endTxn(ev)
	}
	return nil
}

// count adds ev to the transaction it is part of.
func (lw *lossWriter) count(ev *pipeline.Event) {
	if lw.cur == nil {
		lw.cur = &LostTxn{GTID: ev.GTID, CommitTime: ev.CommitTime}
		clear(lw.tables)
	}
	if ev.Kind == pipeline.KindDDL {
		lw.cur.DDL++
	} else if ev.Table != nil {
		lw.cur.Rows++
		lw.res.LostRows++
		lw.tables[ev.Table.Database+"."+ev.Table.Name] = true
	}
}

// lossLine is one line of the loss file: the message as the topic has it.
type lossLine struct {
	Key   json.RawMessage `json:"key"`
	Value json.RawMessage `json:"value"`
}

// write writes ev as one line of the loss file.
func (lw *lossWriter) write(ev *pipeline.Event) error {
	k, err := lw.codec.AppendKey(nil, ev)
	if err != nil {
		return err
	}
	v, err := lw.codec.AppendValue(nil, ev)
	if err != nil {
		return err
	}
	line, _ := json.Marshal(lossLine{k, v})
	lw.lines = append(lw.lines, lw.pos)
	n, err := lw.w.Write(append(line, '\n'))
	lw.pos += int64(n)
	if err != nil {
		return fmt.Errorf("write the loss file: %w", err)
	}
	return nil
}

// endTxn adds the transaction that ev ends to the loss.
func (lw *lossWriter) endTxn(ev *pipeline.Event) {
	for t := range lw.tables {
		lw.cur.Tables = append(lw.cur.Tables, t)
	}
	sort.Strings(lw.cur.Tables)
	lw.res.Lost = append(lw.res.Lost, *lw.cur)
	lw.cur = nil
	lw.check(ev.GTIDSet)
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
		ev, err := readLossLine(f, codec, lines, i, fi.Size())
		if err != nil {
			return n, err
		}
		if ev.Kind == pipeline.KindDDL {
			return n, fmt.Errorf("the loss holds a DDL statement (%s, GTID %s) that cannot be reverted: re-seed the node", ev.Database, ev.GTID)
		}
		if ev.Kind != pipeline.KindRow {
			continue
		}
		inv := inverse(ev)
		if err := tgt.ApplyRows(ctx, []*pipeline.Event{&inv}); err != nil {
			return n, fmt.Errorf("revert %s %s of GTID %s: %w", ev.Op, ev.Table.Name, ev.GTID, err)
		}
		n++
	}
	return n, nil
}

// readLossLine decodes line i of the loss file (lines are the offsets of
// the lines, size the file's).
func readLossLine(f *os.File, codec *pipeline.Codec, lines []int64, i int, size int64) (*pipeline.Event, error) {
	end := size
	if i+1 < len(lines) {
		end = lines[i+1]
	}
	buf := make([]byte, end-lines[i])
	if _, err := f.ReadAt(buf, lines[i]); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var line lossLine
	if err := json.Unmarshal(buf, &line); err != nil {
		return nil, fmt.Errorf("loss file line %d: %w", i+1, err)
	}
	ev, err := codec.Decode(line.Key, line.Value)
	if err != nil {
		return nil, fmt.Errorf("loss file line %d: %w", i+1, err)
	}
	return ev, nil
}

// inverse is the row change that reverts ev. Strict: a TxnSeq above
// anything applied is not a replay.
func inverse(ev *pipeline.Event) pipeline.Event {
	inv := *ev
	inv.Pos.TxnSeq = math.MaxUint64
	switch ev.Op {
	case pipeline.OpInsert, pipeline.OpRead:
		inv.Op, inv.Before, inv.After = pipeline.OpDelete, ev.After, nil
	case pipeline.OpDelete:
		inv.Op, inv.Before, inv.After = pipeline.OpInsert, nil, ev.Before
	case pipeline.OpUpdate:
		inv.Before, inv.After = ev.After, ev.Before
	}
	return inv
}
