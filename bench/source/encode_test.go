package main

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/compress"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
	"github.com/rowcast/rowcast/pipeline"
)

// benchEvent is a row of the bench table as the reader emits it.
func benchEvent(op pipeline.Op) *pipeline.Event {
	t := &pipeline.Table{Database: "rcbench_20260101_000000_abcd", Name: benchTable, PrimaryKey: []int{0}, Columns: []pipeline.Column{
		{Name: "id", Kind: pipeline.VInt, SQLType: "bigint(20)"},
		{Name: "account_id", Kind: pipeline.VInt, SQLType: "int(11)"},
		{Name: "qty", Kind: pipeline.VInt, SQLType: "int(11)"},
		{Name: "amount", Kind: pipeline.VDecimal, SQLType: "decimal(12,2)"},
		{Name: "created_at", Kind: pipeline.VDateTime, SQLType: "datetime"},
		{Name: "updated_at", Kind: pipeline.VDateTime, SQLType: "datetime(3)"},
		{Name: "name", Kind: pipeline.VString, SQLType: "varchar(64)"},
		{Name: "email", Kind: pipeline.VString, SQLType: "varchar(96)"},
		{Name: "note", Kind: pipeline.VString, SQLType: "varchar(255)"},
	}}
	img := func(qty int64) []any {
		return []any{int64(123456), int64(4242), qty, "98765.43", "2024-01-02 03:04:05", "2024-01-02 03:04:05.678",
			"Qx7 kd93LmZpa0 rTw 8sJ2hNq Yb4cVx1e", "a8Jd0kq2mZ7xP4 rT9wLs3nB0c@example.com",
			"Lorem7 ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor"}
	}
	e := &pipeline.Event{Kind: pipeline.KindRow, GTID: "0-1-123456", Flavor: "mariadb", ServerID: 1,
		CommitTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), File: "mariadb-bin.000012", Offset: 19506501,
		Table: t, Op: op, Pos: pipeline.Position{Epoch: 1, TxnSeq: 77, Row: 412}}
	switch op {
	case pipeline.OpInsert:
		e.After = img(7)
	case pipeline.OpUpdate:
		e.Before, e.After = img(7), img(8)
	}
	return e
}

// TestEncodedSize shows one message of each workload (go test -v).
func TestEncodedSize(t *testing.T) {
	c := &pipeline.Codec{Cluster: "bench"}
	for _, op := range []pipeline.Op{pipeline.OpInsert, pipeline.OpUpdate} {
		e := benchEvent(op)
		k, err := c.AppendKey(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.AppendValue(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("op %c: key %d bytes, value %d bytes\n%s\n%s", op, len(k), len(v), k, v)
	}
}

// BenchmarkEncode is the codec's share of the pipeline's work per row.
func BenchmarkEncode(b *testing.B) {
	for _, op := range []pipeline.Op{pipeline.OpInsert, pipeline.OpUpdate} {
		b.Run(string(op), func(b *testing.B) {
			c := &pipeline.Codec{Cluster: "bench"}
			e := benchEvent(op)
			buf := make([]byte, 0, 64<<10)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				buf = buf[:0]
				if buf, err = c.AppendKey(buf, e); err != nil {
					b.Fatal(err)
				}
				if buf, err = c.AppendValue(buf, e); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// BenchmarkCompressBatch compresses one produce request's worth (1 MiB, the
// default MaxBatchBytes) of insert messages with each of kafka-go's codecs:
// the producer does this on its one in-flight path before every request.
func BenchmarkCompressBatch(b *testing.B) {
	c := &pipeline.Codec{Cluster: "bench"}
	e := benchEvent(pipeline.OpInsert)
	var batch []byte
	for i := 0; len(batch) < 1<<20; i++ {
		r := rand.New(rand.NewPCG(uint64(i), 0x5eed)) // as the insert workload's rows
		e.After[0], e.After[1], e.After[2] = int64(i), int64(r.IntN(100000)), int64(r.IntN(1000))
		e.After[6], e.After[7], e.After[8] = benchkit.Text(r, 36), benchkit.Text(r, 28)+"@example.com", benchkit.Text(r, 76)
		e.Pos.Row = uint64(i % 1000)
		var err error
		if batch, err = c.AppendKey(batch, e); err != nil {
			b.Fatal(err)
		}
		if batch, err = c.AppendValue(batch, e); err != nil {
			b.Fatal(err)
		}
	}
	for _, comp := range []compress.Compression{compress.Lz4, compress.Snappy, compress.Zstd, compress.Gzip} {
		b.Run(comp.String(), func(b *testing.B) {
			codec := comp.Codec()
			var out bytes.Buffer
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				w := codec.NewWriter(&out)
				if _, err := w.Write(batch); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(batch))/float64(out.Len()), "ratio")
		})
	}
}
