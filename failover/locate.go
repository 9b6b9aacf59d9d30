// Package failover changes which node is the master of a replicated cluster,
// and tells everyone which node it is: planned switchover and emergency
// promotion (promote.go, its steps in steps.go, the fence in fence.go), the
// promotion lease (lease.go), the automatic mode of the pipeline service
// (auto.go), the return of an old master as a replica with the report of
// what it lost (rejoin.go), and the current master and epoch (this file).
//
// The topic is the truth about masters; an index of the epoch records on a
// majority of the mysql nodes finds the current one without scanning it
// (docs/DESIGN.md, "Finding the current master").
package failover

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/changelog/history"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/pipeline"
)

// Current is the master now.
type Current struct {
	// Master is the node name.
	Master string `json:"master"`
	// Epoch is the master generation (1 before any promotion).
	Epoch uint64 `json:"epoch"`
	// Offset is the offset of the epoch record that made Master the master,
	// -1 when no promotion happened (the config's master, epoch 1).
	Offset int64 `json:"epoch_record_offset"`
	// From says where the answer comes from: "config" or "epoch record".
	From string `json:"from"`
	// Record is the epoch record, nil for the config's master.
	Record *pipeline.EpochRecord `json:"record,omitempty"`
}

// View is what Locate found.
type View struct {
	Current Current
	// Marks are every epoch record of the topic that sinks honour, by
	// offset (stale copies left out).
	Marks []history.Mark
	// Nodes is how many mysql nodes hold the index; Reachable how many
	// answered.
	Nodes, Reachable int
	// Warnings are conditions the answer had to work around.
	Warnings []string
}

// Locator finds the current master of one cluster.
type Locator struct {
	Cfg   *config.Config
	Kafka changelog.Config
	Log   zerolog.Logger
	// Timeout bounds each node's answer. Default 3s.
	Timeout time.Duration
	// Topic overrides the Kafka topic (tests).
	Topic history.Topic

	rec recorder // tests: record the statements
}

// NewLocator returns a Locator for cfg's cluster and topic.
func NewLocator(cfg *config.Config, kc changelog.Config, log zerolog.Logger) *Locator {
	return &Locator{Cfg: cfg, Kafka: kc, Log: log}
}

func (l *Locator) topic() history.Topic {
	if l.Topic != nil {
		return l.Topic
	}
	return changelog.TopicOf(l.Kafka)
}

func (l *Locator) store() store { return newStore(l.Cfg.Sink.BookkeepingSchema) }

// nodeIndex is what one node holds.
type nodeIndex struct {
	name   string
	err    error
	epochs []epochRow
	lease  leaseRow
	leased bool
}

// mysqlNodes are the nodes that can hold the index (and be masters).
func mysqlNodes(cfg *config.Config) []config.Node {
	var out []config.Node
	for _, n := range cfg.Nodes {
		if n.Kind == config.KindMySQL {
			out = append(out, n)
		}
	}
	return out
}

func (l *Locator) readIndexes(ctx context.Context) []nodeIndex {
	nodes := mysqlNodes(l.Cfg)
	out := make([]nodeIndex, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = l.readIndex(ctx, n)
		}()
	}
	wg.Wait()
	return out
}

// readIndex reads the epoch index and the lease of one node.
func (l *Locator) readIndex(ctx context.Context, n config.Node) nodeIndex {
	ni := nodeIndex{name: n.Name}
	nd, err := openNode(ctx, n, l.timeout(), l.rec)
	if err != nil {
		ni.err = err
		return ni
	}
	defer nd.close()
	qctx, cancel := context.WithTimeout(ctx, l.timeout())
	defer cancel()
	st := l.store()
	if ni.epochs, ni.err = st.epochs(qctx, nd.ex(), l.Kafka.Topic); ni.err == nil {
		ni.lease, ni.leased, ni.err = st.lease(qctx, nd.ex(), l.Kafka.Topic, false)
	}
	return ni
}

func (l *Locator) timeout() time.Duration {
	if l.Timeout > 0 {
		return l.Timeout
	}
	return 3 * time.Second
}

// Locate finds every epoch record of the topic and the current master.
func (l *Locator) Locate(ctx context.Context) (View, error) {
	v := View{}
	byEpoch, scanFrom, err := l.merge(&v, l.readIndexes(ctx))
	if err != nil {
		return v, err
	}
	log := history.New(l.topic(), &pipeline.Codec{}, nil)
	ext, err := l.extent(ctx, log)
	if err != nil {
		return v, err
	}
	if err := l.scanTopic(ctx, &v, log, ext, byEpoch, scanFrom); err != nil {
		return v, err
	}
	v.Marks = honoured(byEpoch)
	v.Current = Current{Master: l.Cfg.Master, Epoch: 1, Offset: -1, From: "config"}
	if len(v.Marks) == 0 {
		return v, nil
	}
	m := v.Marks[len(v.Marks)-1]
	if err := l.checkInTopic(ctx, log, ext, m); err != nil {
		return v, err
	}
	rec := m.Record
	v.Current = Current{Master: rec.Master, Epoch: rec.Epoch, Offset: m.Offset, From: "epoch record", Record: &rec}
	return v, nil
}

// merge gathers the nodes' indexes by epoch (they must agree) and the
// oldest offset a held lease recorded (-1 when none is held).
func (l *Locator) merge(v *View, idx []nodeIndex) (map[uint64]history.Mark, int64, error) {
	v.Nodes = len(idx)
	byEpoch := map[uint64]history.Mark{}
	scanFrom := int64(-1)
	for _, ni := range idx {
		if ni.err != nil {
			v.Warnings = append(v.Warnings, fmt.Sprintf("node %s: %v", ni.name, ni.err))
			continue
		}
		v.Reachable++
		if err := l.mergeNode(byEpoch, ni); err != nil {
			return nil, 0, err
		}
		if ni.leased && ni.lease.Held && (scanFrom < 0 || ni.lease.FromOffset < scanFrom) {
			// A promotion is running, or died before it released the
			// lease: its record may be in the topic but not in the index.
			scanFrom = ni.lease.FromOffset
		}
	}
	return byEpoch, scanFrom, nil
}

// mergeNode adds one node's index to byEpoch.
func (l *Locator) mergeNode(byEpoch map[uint64]history.Mark, ni nodeIndex) error {
	for _, r := range ni.epochs {
		m := history.Mark{Offset: r.Offset, Record: r.Record}
		if o, ok := byEpoch[r.Record.Epoch]; ok && (o.Offset != m.Offset || o.Record.Master != m.Record.Master) {
			return fmt.Errorf("the epoch index disagrees between nodes: epoch %d is %s at offset %d on one node and %s at offset %d on %s: inspect %s.epochs on every node",
				r.Record.Epoch, o.Record.Master, o.Offset, m.Record.Master, m.Offset, ni.name, l.Cfg.Sink.BookkeepingSchema)
		}
		byEpoch[r.Record.Epoch] = m
	}
	return nil
}

// topicExtent is the topic's first and end offsets; missing when the topic
// does not exist.
type topicExtent struct {
	first, end int64
	missing    bool
}

func (l *Locator) extent(ctx context.Context, log *history.Log) (topicExtent, error) {
	var ext topicExtent
	var err error
	ext.first, ext.end, err = log.Extent(ctx)
	ext.missing = errors.Is(err, changelog.ErrTopicNotFound)
	if err != nil && !ext.missing {
		return ext, fmt.Errorf("read the extent of topic %s: %w", l.Kafka.Topic, err)
	}
	return ext, nil
}

// scanTopic adds the records the index may miss: without a majority of the
// nodes the newest promotion may be missing, so the topic is scanned back
// to what the index knows; with a held lease, it is scanned from the
// lease's offset.
func (l *Locator) scanTopic(ctx context.Context, v *View, log *history.Log, ext topicExtent, byEpoch map[uint64]history.Mark, scanFrom int64) error {
	switch {
	case ext.missing:
		return nil
	case v.Reachable*2 <= v.Nodes:
		v.Warnings = append(v.Warnings, fmt.Sprintf("only %d of %d mysql nodes answered: the current master was looked up in the topic itself", v.Reachable, v.Nodes))
		m, ok, err := log.ScanBack(ctx, max(ext.first, newestOffset(byEpoch)+1), ext.end)
		if err != nil || !ok {
			return err
		}
		addMark(byEpoch, m)
	case scanFrom >= 0:
		marks, err := log.Scan(ctx, max(ext.first, scanFrom), ext.end)
		if err != nil {
			return err
		}
		for _, m := range marks {
			addMark(byEpoch, m)
		}
	}
	return nil
}

// newestOffset is the highest offset of the records in byEpoch, -1 when
// there is none.
func newestOffset(byEpoch map[uint64]history.Mark) int64 {
	newest := int64(-1)
	for _, m := range byEpoch {
		newest = max(newest, m.Offset)
	}
	return newest
}

// honoured are the records of byEpoch by offset, without those that are
// not newer than an earlier one (sinks ignore them).
func honoured(byEpoch map[uint64]history.Mark) []history.Mark {
	var marks []history.Mark
	for _, m := range byEpoch {
		marks = append(marks, m)
	}
	sort.Slice(marks, func(i, j int) bool { return marks[i].Offset < marks[j].Offset })
	kept := marks[:0]
	var top uint64
	for _, m := range marks {
		if m.Record.Epoch > top {
			kept = append(kept, m)
			top = m.Record.Epoch
		}
	}
	return kept
}

// checkInTopic checks that the newest record the index names is in the
// topic at its offset (a re-created topic leaves a stale index).
func (l *Locator) checkInTopic(ctx context.Context, log *history.Log, ext topicExtent, m history.Mark) error {
	if ext.missing || m.Offset < ext.first {
		return nil
	}
	bk, topic := l.Cfg.Sink.BookkeepingSchema, l.Kafka.Topic
	if m.Offset >= ext.end {
		return fmt.Errorf("the epoch index (%s.epochs) says epoch %d starts at offset %d, but topic %s ends at %d: was the topic re-created? Then delete its rows: DELETE FROM %s.epochs WHERE topic='%s' on every node",
			bk, m.Record.Epoch, m.Offset, topic, ext.end, bk, topic)
	}
	e, err := log.At(ctx, m.Offset)
	if err != nil {
		return err
	}
	if ev := e.Event; ev.Kind != pipeline.KindEpoch || ev.Epoch == nil || ev.Epoch.Epoch != m.Record.Epoch || ev.Epoch.Master != m.Record.Master {
		return fmt.Errorf("the epoch index (%s.epochs) says epoch %d (master %s) starts at offset %d of topic %s, but that offset holds a %s message: was the topic re-created? Then delete its rows: DELETE FROM %s.epochs WHERE topic='%s' on every node",
			bk, m.Record.Epoch, m.Record.Master, m.Offset, topic, ev.Kind, bk, topic)
	}
	return nil
}

// Current is Locate's answer alone.
func (l *Locator) Current(ctx context.Context) (Current, error) {
	v, err := l.Locate(ctx)
	for _, w := range v.Warnings {
		l.Log.Warn().Msg(w)
	}
	return v.Current, err
}

// addMark keeps, for each epoch, the first record in the topic (sinks honour
// the first; a later copy of the same epoch is stale).
func addMark(by map[uint64]history.Mark, m history.Mark) {
	if o, ok := by[m.Record.Epoch]; !ok || m.Offset < o.Offset {
		by[m.Record.Epoch] = m
	}
}

// Replicas are the nodes sink workers apply to while master is the
// master: the config's replicas without master, and the config's master
// (an old master, once it rejoined) when another node is the master.
func Replicas(cfg *config.Config, master string) []string {
	var out []string
	for _, r := range cfg.Replicas {
		if r != master {
			out = append(out, r)
		}
	}
	if cfg.Master != master {
		out = append(out, cfg.Master)
	}
	return out
}
