package changelog

import (
	"syscall"
	"testing"
	"time"

	"github.com/rowcast/rowcast/pipeline"
)

// The signature's cost per row, against what the reader (encode) and a sink
// (decode) spend on a row anyway: an update of scripts/bench sink's table
// (BIGINT key, two INT, DECIMAL, two DATETIME, three VARCHAR; about 1 KB as
// a message with both images).
func benchRowEvent() *pipeline.Event {
	t := &pipeline.Table{Database: "rcbench", Name: "bench_rows_1", PrimaryKey: []int{0}, Columns: []pipeline.Column{
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
	row := func(qty int64, note string) []any {
		return []any{int64(1000517), int64(48213), qty, "538211.07", "2024-01-12 13:46:40", "2024-01-12 13:46:40.517",
			"p0Q rT3sXk9 mWb2 LcY7aZ qe4H Nn81 dU", "Vf6 oJk2 Ra9 tS3mWq 1xPz B7c@example.com", note}
	}
	const note = "Gh2 kLm9 Qr 7TzXv 0aBcD eF4 gHi5 JkL6 mN opQ8 rStU9 vWx 0Yz1 AbC2 dEf3 GhI4 jK"
	return &pipeline.Event{Kind: pipeline.KindRow, Pos: pipeline.Position{Epoch: 1, TxnSeq: 1042, Row: 517}, GTID: "0-11-1043",
		Flavor: "mariadb", ServerID: 11, CommitTime: time.Unix(1714979289, 0), File: "master-bin.000001", Offset: 123456789,
		Table: t, Op: pipeline.OpUpdate, Before: row(417, note), After: row(418, note[1:]+note[:1])}
}

// BenchmarkEncodeRow is the reader's encoding of a row, with and without
// its signature (the producer's encoder signs it, off the serial path).
func BenchmarkEncodeRow(b *testing.B) {
	for _, signed := range []bool{false, true} {
		b.Run(map[bool]string{false: "unsigned", true: "signed"}[signed], func(b *testing.B) {
			ev, c := benchRowEvent(), &pipeline.Codec{Cluster: "bench"}
			keys, _ := NewSigningKeys([]byte("bench-key-0123456789abcdef"), nil)
			var key, value, sig []byte
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				var err error
				if key, err = c.AppendKey(key[:0], ev); err == nil {
					value, err = c.AppendValue(value[:0], ev)
				}
				if err != nil {
					b.Fatal(err)
				}
				if signed {
					sig = keys.Sign(sig[:0], "rowcast.bench", key, value)
				}
			}
			b.SetBytes(int64(len(key) + len(value)))
		})
	}
}

// BenchmarkDecodeRow is a sink's reading of a row, with and without the
// check of its signature (the consumer checks it, on its fetch goroutine).
func BenchmarkDecodeRow(b *testing.B) {
	for _, signed := range []bool{false, true} {
		b.Run(map[bool]string{false: "unsigned", true: "signed"}[signed], func(b *testing.B) {
			ev, c := benchRowEvent(), &pipeline.Codec{Cluster: "bench"}
			keys, _ := NewSigningKeys([]byte("bench-key-0123456789abcdef"), nil)
			key, _ := c.AppendKey(nil, ev)
			value, _ := c.AppendValue(nil, ev)
			sig := keys.Sign(nil, "rowcast.bench", key, value)
			var out pipeline.Event
			b.ReportAllocs()
			b.SetBytes(int64(len(key) + len(value)))
			defer reportCPU(b)()
			for b.Loop() {
				if signed {
					if err := keys.Verify("rowcast.bench", 1, key, value, sig); err != nil {
						b.Fatal(err)
					}
				}
				if err := c.DecodeInto(&out, key, value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reportCPU reports the process's CPU time per op when the returned func
// runs: on a machine shared with other load, wall time per op says little.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op") }
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSignature is the signature alone on that row's message: signing
// (the reader's encoder) and checking (every reader's fetch).
func BenchmarkSignature(b *testing.B) {
	ev, c := benchRowEvent(), &pipeline.Codec{Cluster: "bench"}
	keys, _ := NewSigningKeys([]byte("bench-key-0123456789abcdef"), nil)
	key, _ := c.AppendKey(nil, ev)
	value, _ := c.AppendValue(nil, ev)
	sig := keys.Sign(nil, "rowcast.bench", key, value)
	b.Run("sign", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(key) + len(value)))
		defer reportCPU(b)()
		var out []byte
		for b.Loop() {
			out = keys.Sign(out[:0], "rowcast.bench", key, value)
		}
	})
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(key) + len(value)))
		defer reportCPU(b)()
		for b.Loop() {
			if err := keys.Verify("rowcast.bench", 1, key, value, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}
