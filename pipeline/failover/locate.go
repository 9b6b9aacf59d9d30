// Package failover changes which node is the master of a replicated cluster,
// and tells everyone which node it is: planned switchover and emergency
// promotion (promote.go), the promotion lease (lease.go), the automatic
// mode of the pipeline service (auto.go), the return of an old master as a
// replica with the report of what it lost (rejoin.go), and the current
// master and epoch (this file).
//
// The changelog topic is the truth about masters: an epoch record names
// each new master (DESIGN.md, invariant 4). To answer "who is the master"
// without scanning the topic, every promotion also writes its record into
// an index on a majority of the mysql nodes (<schema>.epochs, store.go),
// while holding the promotion lease on a majority. A reader that reaches a
// majority sees the newest promotion in at least one node (two majorities
// intersect); a promotion that died before writing the index left its lease
// unreleased, and the topic is scanned from the offset the lease recorded.
package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/config"
	"github.com/rowcast/rowcast/pipeline/history"
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
	Kafka pipeline.KafkaConfig
	Log   zerolog.Logger
	// Timeout bounds each node's answer. Default 3s.
	Timeout time.Duration
	// Topic overrides the Kafka topic (tests).
	Topic history.Topic
}

// NewLocator returns a Locator for cfg's cluster and topic.
func NewLocator(cfg *config.Config, kc pipeline.KafkaConfig, log zerolog.Logger) *Locator {
	return &Locator{Cfg: cfg, Kafka: kc, Log: log}
}

func (l *Locator) topic() history.Topic {
	if l.Topic != nil {
		return l.Topic
	}
	return history.Kafka(l.Kafka)
}

func (l *Locator) store() store { return store{schema: l.Cfg.Sink.BookkeepingSchema} }

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
			ni := nodeIndex{name: n.Name}
			db, err := openNode(ctx, n, l.timeout())
			if err != nil {
				ni.err = err
				out[i] = ni
				return
			}
			defer db.Close()
			qctx, cancel := context.WithTimeout(ctx, l.timeout())
			defer cancel()
			st := l.store()
			if ni.epochs, ni.err = st.epochs(qctx, db, l.Kafka.Topic); ni.err == nil {
				ni.lease, ni.leased, ni.err = st.lease(qctx, db, l.Kafka.Topic, false)
			}
			out[i] = ni
		}()
	}
	wg.Wait()
	return out
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
	idx := l.readIndexes(ctx)
	v.Nodes = len(idx)
	byEpoch := map[uint64]history.Mark{}
	scanFrom := int64(-1)
	for _, ni := range idx {
		if ni.err != nil {
			v.Warnings = append(v.Warnings, fmt.Sprintf("node %s: %v", ni.name, ni.err))
			continue
		}
		v.Reachable++
		for _, r := range ni.epochs {
			m := history.Mark{Offset: r.Offset, Record: r.Record}
			if o, ok := byEpoch[r.Record.Epoch]; ok && (o.Offset != m.Offset || o.Record.Master != m.Record.Master) {
				return v, fmt.Errorf("the epoch index disagrees between nodes: epoch %d is %s at offset %d on one node and %s at offset %d on %s: inspect %s.epochs on every node",
					r.Record.Epoch, o.Record.Master, o.Offset, m.Record.Master, m.Offset, ni.name, l.Cfg.Sink.BookkeepingSchema)
			}
			byEpoch[r.Record.Epoch] = m
		}
		if ni.leased && ni.lease.Held {
			// A promotion is running, or died before it released the
			// lease: its record may be in the topic but not in the index.
			if scanFrom < 0 || ni.lease.FromOffset < scanFrom {
				scanFrom = ni.lease.FromOffset
			}
		}
	}
	log := history.New(l.topic(), &pipeline.Codec{}, nil)
	first, end, err := log.Extent(ctx)
	topicMissing := errors.Is(err, pipeline.ErrTopicNotFound)
	if err != nil && !topicMissing {
		return v, fmt.Errorf("read the extent of topic %s: %w", l.Kafka.Topic, err)
	}
	newest := int64(-1)
	for _, m := range byEpoch {
		newest = max(newest, m.Offset)
	}
	if !topicMissing {
		quorum := v.Reachable*2 > v.Nodes
		switch {
		case !quorum:
			// Without a majority the index may miss the newest promotion:
			// the topic must be scanned back to what the index knows.
			v.Warnings = append(v.Warnings, fmt.Sprintf("only %d of %d mysql nodes answered: the current master was looked up in the topic itself", v.Reachable, v.Nodes))
			if m, ok, err := log.ScanBack(ctx, max(first, newest+1), end); err != nil {
				return v, err
			} else if ok {
				addMark(byEpoch, m)
			}
		case scanFrom >= 0:
			marks, err := log.Scan(ctx, max(first, scanFrom), end)
			if err != nil {
				return v, err
			}
			for _, m := range marks {
				addMark(byEpoch, m)
			}
		}
	}
	for _, m := range byEpoch {
		v.Marks = append(v.Marks, m)
	}
	sort.Slice(v.Marks, func(i, j int) bool { return v.Marks[i].Offset < v.Marks[j].Offset })
	// A record that is not newer than an earlier one is ignored by sinks.
	kept := v.Marks[:0]
	var top uint64
	for _, m := range v.Marks {
		if m.Record.Epoch > top {
			kept = append(kept, m)
			top = m.Record.Epoch
		}
	}
	v.Marks = kept
	v.Current = Current{Master: l.Cfg.Master, Epoch: 1, Offset: -1, From: "config"}
	if len(v.Marks) == 0 {
		return v, nil
	}
	m := v.Marks[len(v.Marks)-1]
	if !topicMissing && m.Offset >= first {
		if m.Offset >= end {
			return v, fmt.Errorf("the epoch index (%s.epochs) says epoch %d starts at offset %d, but topic %s ends at %d: was the topic re-created? Then delete its rows: DELETE FROM %s.epochs WHERE topic='%s' on every node",
				l.Cfg.Sink.BookkeepingSchema, m.Record.Epoch, m.Offset, l.Kafka.Topic, end, l.Cfg.Sink.BookkeepingSchema, l.Kafka.Topic)
		}
		e, err := log.At(ctx, m.Offset)
		if err != nil {
			return v, err
		}
		if e.Event.Kind != pipeline.KindEpoch || e.Event.Epoch == nil || e.Event.Epoch.Epoch != m.Record.Epoch || e.Event.Epoch.Master != m.Record.Master {
			return v, fmt.Errorf("the epoch index (%s.epochs) says epoch %d (master %s) starts at offset %d of topic %s, but that offset holds a %s message: was the topic re-created? Then delete its rows: DELETE FROM %s.epochs WHERE topic='%s' on every node",
				l.Cfg.Sink.BookkeepingSchema, m.Record.Epoch, m.Record.Master, m.Offset, l.Kafka.Topic, e.Event.Kind, l.Cfg.Sink.BookkeepingSchema, l.Kafka.Topic)
		}
	}
	rec := m.Record
	v.Current = Current{Master: rec.Master, Epoch: rec.Epoch, Offset: m.Offset, From: "epoch record", Record: &rec}
	return v, nil
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

// openNode opens a small pool to a mysql node and checks that it answers.
func openNode(ctx context.Context, n config.Node, timeout time.Duration) (*sql.DB, error) {
	mc, err := n.MySQLConfig()
	if err != nil {
		return nil, err
	}
	mc.Timeout = timeout
	mc.ReadTimeout = 30 * time.Second
	mc.WriteTimeout = 30 * time.Second
	mc.InterpolateParams = true
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("node %s at %s: %w", n.Name, mc.Addr, err)
	}
	return db, nil
}
