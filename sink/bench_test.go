package sink_test

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// nopTarget accepts everything and keeps nothing: the worker's own cost.
type nopTarget struct{ rows int }

func (*nopTarget) Open(context.Context) (checkpoint.State, bool, error) {
	return checkpoint.State{Topic: "bench"}, true, nil
}
func (*nopTarget) Begin(context.Context) error { return nil }
func (n *nopTarget) ApplyRows(_ context.Context, rows []*pipeline.Event) error {
	n.rows += len(rows)
	return nil
}
func (n *nopTarget) ApplyRowsLenient(ctx context.Context, rows []*pipeline.Event) error {
	return n.ApplyRows(ctx, rows)
}
func (*nopTarget) ApplyDDL(context.Context, *pipeline.Event, checkpoint.State) error { return nil }
func (*nopTarget) StartSnapshot(context.Context, *pipeline.Event, checkpoint.State) error {
	return nil
}
func (*nopTarget) EndBootstrap(context.Context, string, string) error { return nil }
func (*nopTarget) Bootstrap(context.Context) (map[string]checkpoint.Bootstrap, error) {
	return nil, nil
}
func (*nopTarget) RecordSkip(context.Context, checkpoint.Skip) error { return nil }
func (*nopTarget) Commit(context.Context, checkpoint.State) error    { return nil }
func (*nopTarget) Rollback(context.Context) error                    { return nil }
func (*nopTarget) Close() error                                      { return nil }

// BenchmarkWorker measures the worker's per-message cost (position checks,
// batching, commits) without a database: 100,000 row events in source
// transactions of 100 (inserts, updates and deletes in turn) into a target
// that does nothing. The events are built before the timer starts.
func BenchmarkWorker(b *testing.B) {
	for _, live := range []bool{false, true} {
		b.Run(map[bool]string{false: "behind", true: "live"}[live], func(b *testing.B) { benchWorker(b, live) })
	}
}

func benchWorker(b *testing.B, live bool) {
	const rows, perTxn = 100000, 100
	tbl := &pipeline.Table{Database: "db", Name: "t", PrimaryKey: []int{0},
		Columns: []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}}}
	msgs := make([]sink.Message, rows+1)
	msgs[0] = sink.Message{Event: &pipeline.Event{Kind: pipeline.KindEpoch, Pos: pipeline.Position{Epoch: 1},
		Epoch: &pipeline.EpochRecord{Epoch: 1}}}
	ops := []pipeline.Op{pipeline.OpInsert, pipeline.OpUpdate, pipeline.OpDelete}
	for n := range int64(rows) {
		ev := &pipeline.Event{Kind: pipeline.KindRow, Table: tbl, Op: ops[n/perTxn%3],
			Pos: pipeline.Position{Epoch: 1, TxnSeq: uint64(n/perTxn + 1), Row: uint64(n % perTxn), Last: n%perTxn == perTxn-1}}
		img := []any{n % 1000, "some text of moderate length for row"}
		if ev.Op != pipeline.OpInsert {
			ev.Before = img
		}
		if ev.Op != pipeline.OpDelete {
			ev.After = img
		}
		msgs[n+1] = sink.Message{Size: 120, Event: ev}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		in := sinktest.NewInput(msgs)
		in.Live = live
		tgt := &nopTarget{}
		w := sink.NewWorker(sink.WorkerConfig{Topic: "bench"}, tgt, in, zerolog.Nop(), nil)
		if err := w.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		if tgt.rows != rows {
			b.Fatalf("%d rows applied, want %d", tgt.rows, rows)
		}
	}
}
