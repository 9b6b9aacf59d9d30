package mysql

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// BenchmarkApply measures rows/s of applying 100,000 inserts in source
// transactions of 100 rows through the Worker into db3:
//
//	behind: the input has messages buffered, so the worker merges up to 100
//	        source transactions per commit (a replica catching up);
//	live:   Buffered() is 0, one commit per source transaction (a replica
//	        that keeps up with a master committing 100-row transactions);
//
// each with the default upserts (LOAD DATA for large batches, load.go) and
// with INSERT ... ON DUPLICATE KEY UPDATE only (insert). The input is in
// memory: Kafka and decoding are not measured (scripts/bench sink does).
//
// Run: go test ./sink/mysql -run '^$' -bench Apply -benchtime 3x
func BenchmarkApply(b *testing.B) {
	for _, live := range []bool{false, true} {
		for _, noLoad := range []bool{false, true} {
			name := map[bool]string{false: "behind", true: "live"}[live] + map[bool]string{false: "", true: "/insert"}[noLoad]
			b.Run(name, func(b *testing.B) { benchApply(b, live, noLoad) })
		}
	}
}

func benchApply(b *testing.B, live, noLoad bool) {
	const rows, perTxn = 100000, 100
	r := newReplica(b, testenv.Replica2)
	r.Setup(b, "CREATE TABLE `bench` (`id` BIGINT NOT NULL PRIMARY KEY, `a` INT NOT NULL, `b` VARCHAR(64) NOT NULL, "+
		"`c` DECIMAL(12,2) NOT NULL, `d` DATETIME(6) NULL) ENGINE=InnoDB")
	tbl := &pipeline.Table{Database: r.db, Name: "bench", PrimaryKey: []int{0}, Columns: []pipeline.Column{
		{Name: "id", Kind: pipeline.VInt}, {Name: "a", Kind: pipeline.VInt}, {Name: "b", Kind: pipeline.VString},
		{Name: "c", Kind: pipeline.VDecimal, SQLType: "decimal(12,2)"}, {Name: "d", Kind: pipeline.VDateTime}}}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		base := int64(i) * rows
		in := &sinktest.Input{Len: rows + 1, Live: live, At: func(o int64) sink.Message {
			if o == 0 {
				return sink.Message{Event: &pipeline.Event{Kind: pipeline.KindEpoch, Pos: pipeline.Position{Epoch: 1},
					Epoch: &pipeline.EpochRecord{Epoch: 1}}}
			}
			n := o - 1
			return sink.Message{Size: 200, Event: &pipeline.Event{Kind: pipeline.KindRow, Table: tbl, Op: pipeline.OpInsert,
				Pos:   pipeline.Position{Epoch: 1, TxnSeq: uint64(n/perTxn + 1), Row: uint64(n % perTxn), Last: n%perTxn == perTxn-1},
				After: []any{base + n, int64(n % 1000), "some text of moderate length for row", "1234.56", "2024-05-06 07:08:09.123456"}}}
		}}
		cfg := sink.WorkerConfig{Topic: fmt.Sprintf("bench.%d", i)}
		tgt := r.target(b, func(c *Config) { c.Topic, c.NoLoadData = cfg.Topic, noLoad })
		w := sink.NewWorker(cfg, tgt, in, sinktest.Logger(b), nil)
		if err := w.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*rows)/time.Since(start).Seconds(), "rows/s")
	if got := r.Count(b, "bench"); got != b.N*rows {
		b.Fatalf("%d rows applied, want %d", got, b.N*rows)
	}
}

// BenchmarkBinaryEncode measures the encoding of row events (binlog_enc.go)
// for a table of every column type the binary apply writes: 200 rows per
// statement, as inserts, updates and deletes. The replica only describes the
// table (once, before the timer starts); nothing is sent to it.
func BenchmarkBinaryEncode(b *testing.B) {
	const rows = 200
	r := newReplica(b, testenv.Replica1)
	r.Setup(b, allTypesDDL)
	tbl := &pipeline.Table{Database: r.db, Name: "t", PrimaryKey: []int{0}, Columns: allTypesColumns()}
	tgt, bt := r.binTable(b, tbl)
	g := valueGen{r: rand.New(rand.NewPCG(7, 1))}
	evs := make([]*pipeline.Event, rows)
	for i := range evs {
		img := g.row(int64(i))
		evs[i] = &pipeline.Event{Table: tbl, Before: img, After: img}
	}
	for _, typ := range []struct {
		name string
		code byte
	}{{"insert", evWriteRowsV1}, {"update", evUpdateRowsV1}, {"delete", evDeleteRowsV1}} {
		b.Run(typ.name, func(b *testing.B) {
			var s binSend
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if n, stop := tgt.encodeRows(&s, bt, typ.code, evs); n != rows || stop {
					b.Fatalf("encoded %d of %d rows (stop %v)", n, rows, stop)
				}
			}
			b.ReportMetric(float64(len(s.stmt)), "stmt-bytes")
		})
	}
}
