package pipeline

import "testing"

// sinkBenchTable is the table of scripts/benchsink (and scripts/benchsource)
// as the reader describes it: BIGINT key, two INT, DECIMAL(12,2), DATETIME,
// DATETIME(3) and three VARCHARs.
func sinkBenchTable() *Table {
	return &Table{Database: "rcbench", Name: "bench_rows_1", PrimaryKey: []int{0}, Columns: []Column{
		{Name: "id", Kind: VInt, SQLType: "bigint(20)"},
		{Name: "account_id", Kind: VInt, SQLType: "int(11)"},
		{Name: "qty", Kind: VInt, SQLType: "int(11)"},
		{Name: "amount", Kind: VDecimal, SQLType: "decimal(12,2)"},
		{Name: "created_at", Kind: VDateTime, SQLType: "datetime"},
		{Name: "updated_at", Kind: VDateTime, SQLType: "datetime(3)"},
		{Name: "name", Kind: VString, SQLType: "varchar(64)"},
		{Name: "email", Kind: VString, SQLType: "varchar(96)"},
		{Name: "note", Kind: VString, SQLType: "varchar(255)"},
	}}
}

// sinkBenchRow is one row of that table, of about 190 bytes.
func sinkBenchRow(id int64, qty int64, note string) []any {
	return []any{id, int64(48213), qty, "538211.07", "2024-01-12 13:46:40", "2024-01-12 13:46:40.517",
		"p0Q rT3sXk9 mWb2 LcY7aZ qe4H Nn81 dU", "Vf6 oJk2 Ra9 tS3mWq 1xPz B7c@example.com", note}
}

const sinkBenchNote = "Gh2 kLm9 Qr 7TzXv 0aBcD eF4 gHi5 JkL6 mN opQ8 rStU9 vWx 0Yz1 AbC2 dEf3 GhI4 jK"

// sinkBenchEvents returns an insert and an update of the bench table, as the
// reader publishes them in a 1000-row transaction.
func sinkBenchEvents() (insert, update *Event) {
	t := sinkBenchTable()
	base := Event{Kind: KindRow, Pos: Position{Epoch: 1, TxnSeq: 1042, Row: 517}, GTID: "0-11-1043",
		Flavor: "mariadb", ServerID: 11, CommitTime: testTime, File: "master-bin.000001", Offset: 123456789,
		Table: t}
	insert, update = new(Event), new(Event)
	*insert, *update = base, base
	insert.Op, insert.After = OpInsert, sinkBenchRow(1000517, 417, sinkBenchNote)
	update.Op = OpUpdate
	update.Before = sinkBenchRow(1000517, 417, sinkBenchNote)
	update.After = sinkBenchRow(1000517, 418, sinkBenchNote[1:]+sinkBenchNote[:1])
	update.After[3] = "538212.32"
	update.After[5] = "2024-11-26 13:47:02.391"
	return insert, update
}

func benchmarkDecodeMessage(b *testing.B, e *Event, into bool) {
	c := &Codec{Cluster: "bench"}
	key, value, err := encodeBoth(c, e)
	if err != nil {
		b.Fatal(err)
	}
	if got, err := c.Decode(key, value); err != nil {
		b.Fatal(err)
	} else {
		assertEvent(b, got, e)
	}
	var ev Event
	b.ReportAllocs()
	b.SetBytes(int64(len(key) + len(value)))
	cpu := processCPU()
	for b.Loop() {
		if into {
			err = c.DecodeInto(&ev, key, value)
		} else {
			_, err = c.Decode(key, value)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if cpu > 0 {
		b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkDecodeSinkRow decodes the messages of scripts/benchsink's
// workloads: Decode is what the sink's KafkaInput calls for every message.
func BenchmarkDecodeSinkRow(b *testing.B) {
	ins, upd := sinkBenchEvents()
	b.Run("insert", func(b *testing.B) { benchmarkDecodeMessage(b, ins, false) })
	b.Run("update", func(b *testing.B) { benchmarkDecodeMessage(b, upd, false) })
	b.Run("insert-into", func(b *testing.B) { benchmarkDecodeMessage(b, ins, true) })
	b.Run("update-into", func(b *testing.B) { benchmarkDecodeMessage(b, upd, true) })
}
