package mysql

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// txns assigns positions to transactions of hand-built events (epoch 1,
// TxnSeq from 1) after an epoch record, for tables the Script's model cannot
// hold (no primary key).
func txns(groups ...[]*pipeline.Event) []sink.Message {
	msgs := []sink.Message{{Event: &pipeline.Event{Kind: pipeline.KindEpoch, Pos: pipeline.Position{Epoch: 1},
		Epoch: &pipeline.EpochRecord{Epoch: 1}}}}
	for i, g := range groups {
		for j, ev := range g {
			ev.Pos = pipeline.Position{Epoch: 1, TxnSeq: uint64(i + 1), Row: uint64(j), Last: j == len(g)-1}
			msgs = append(msgs, sink.Message{Event: ev})
		}
	}
	return msgs
}

// TestNoPrimaryKey: rows of a table without a primary key are matched on the
// whole before image, NULL-safely, DECIMAL exactly (two values equal as
// doubles are told apart), one row at a time; identical rows are
// interchangeable; a before image that matches nothing stops the worker.
func TestNoPrimaryKey(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `nopk` (`a` INT NULL, `b` VARCHAR(10) NULL, `c` DECIMAL(30,10) NULL, `f` FLOAT NULL) ENGINE=InnoDB")
	tbl := &pipeline.Table{Database: r.db, Name: "nopk", Columns: []pipeline.Column{
		{Name: "a", Kind: pipeline.VInt}, {Name: "b", Kind: pipeline.VString},
		{Name: "c", Kind: pipeline.VDecimal, SQLType: "decimal(30,10)"}, {Name: "f", Kind: pipeline.VFloat}}}
	ins := func(v ...any) *pipeline.Event {
		return &pipeline.Event{Kind: pipeline.KindRow, Table: tbl, Op: pipeline.OpInsert, After: v}
	}
	upd := func(before, after []any) *pipeline.Event {
		return &pipeline.Event{Kind: pipeline.KindRow, Table: tbl, Op: pipeline.OpUpdate, Before: before, After: after}
	}
	del := func(v ...any) *pipeline.Event {
		return &pipeline.Event{Kind: pipeline.KindRow, Table: tbl, Op: pipeline.OpDelete, Before: v}
	}
	f11 := float64(float32(1.1))
	one := []any{int64(1), "a", "1.5000000000", f11}
	two := []any{int64(2), nil, "2.0000000000", nil}
	big89 := []any{int64(3), "x", "12345678901234567890.0123456789", nil}
	big88 := []any{int64(3), "x", "12345678901234567890.0123456788", nil}
	msgs := txns(
		[]*pipeline.Event{ins(one...), ins(one...), ins(two...), ins(big89...), ins(big88...)},
		[]*pipeline.Event{
			upd(big89, []any{int64(3), "y", "12345678901234567890.0123456789", nil}),
			del(one...),
			upd(two, []any{int64(2), "n", "2.0000000000", nil}),
			upd(one, one), // an update that changes nothing still matches its row
			ins(int64(4), "z", nil, 0.0),
		},
	)
	if _, err := sinktest.RunWorker(context.Background(), t, r.target(t), sinktest.NewInput(msgs), sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	sinktest.CompareRows(t, "nopk", r.Rows(t, "nopk"), []string{
		"1|a|1.5000000000|1.1",
		"2|n|2.0000000000|NULL",
		"3|x|12345678901234567890.0123456788|NULL",
		"3|y|12345678901234567890.0123456789|NULL",
		"4|z|NULL|0",
	})

	// A delete whose before image matches no row: the replica diverged.
	msgs = append(msgs, txns(nil, nil, []*pipeline.Event{del(int64(9), "gone", nil, nil)})[1:]...)
	_, err := sinktest.RunWorker(context.Background(), t, r.target(t), sinktest.NewInput(msgs), sink.WorkerConfig{}, nil)
	if !errors.Is(err, sink.ErrRowMissing) || !strings.Contains(err.Error(), "offset 11 (e1/t3/r0/last)") {
		t.Fatalf("delete of a missing row: %v", err)
	}
}

// TestNoPrimaryKeyExactMatch: rows of a keyless table that the column's
// collation calls equal ('a', 'A' and 'a ' under a case-insensitive
// collation; 'a' and 'a ' under a PAD SPACE _bin one) are told apart byte
// for byte, so each update and delete changes the row the master changed.
// Keyless rows never go as row events.
func TestNoPrimaryKeyExactMatch(t *testing.T) {
	for _, coll := range []string{"utf8mb4_general_ci", "utf8mb4_bin", "latin1_swedish_ci"} {
		t.Run(coll, func(t *testing.T) {
			r := newReplica(t, testenv.Replica1)
			charset, _, _ := strings.Cut(coll, "_")
			r.Setup(t, "CREATE TABLE `nk` (`s` VARCHAR(10) CHARACTER SET "+charset+" COLLATE "+coll+" NULL, `n` INT NULL) ENGINE=InnoDB")
			tbl := &pipeline.Table{Database: r.db, Name: "nk", Columns: []pipeline.Column{
				{Name: "s", Kind: pipeline.VString}, {Name: "n", Kind: pipeline.VInt}}}
			ins, upd, del := exactMatchOps(tbl)
			msgs := txns(
				[]*pipeline.Event{ins("a"), ins("A"), ins("a "), ins("é")},
				[]*pipeline.Event{upd("A", "B"), del("a ")},
				[]*pipeline.Event{ins("A"), ins("a "), upd("a ", "C"), del("A"), upd("é", "E")},
			)
			cut := len(msgs) - 5
			rec := &recorder{}
			for _, c := range []struct {
				msgs []sink.Message
				want []string // hex|n
			}{
				{msgs[:cut], []string{"42|1", "61|1", "E9|1"}},   // B, a, é
				{msgs, []string{"42|1", "43|1", "45|1", "61|1"}}, // B, C, E, a
			} {
				if _, err := runRecorded(t, r.target(t), c.msgs, sink.WorkerConfig{}, rec); err != nil {
					t.Fatal(err)
				}
				got := queryStrings(t, r.root, "SELECT CONCAT(HEX(CONVERT(`s` USING latin1)), '|', `n`) FROM "+q(r.db, "nk")+" ORDER BY 1")
				if !slices.Equal(got, c.want) {
					t.Fatalf("rows (latin1 hex) %q, want %q", got, c.want)
				}
			}
			if n := countPrefix(rec.get(), binRowsPrefix); n != 0 {
				t.Fatalf("%d BINLOG statements for a keyless table, want none", n)
			}
		})
	}
}

// exactMatchOps build the row events of TestNoPrimaryKeyExactMatch: rows
// (s, 1) of tbl.
func exactMatchOps(tbl *pipeline.Table) (ins func(string) *pipeline.Event, upd func(string, string) *pipeline.Event, del func(string) *pipeline.Event) {
	row := func(op pipeline.Op, before, after []any) *pipeline.Event {
		return &pipeline.Event{Kind: pipeline.KindRow, Table: tbl, Op: op, Before: before, After: after}
	}
	ins = func(s string) *pipeline.Event { return row(pipeline.OpInsert, nil, []any{s, int64(1)}) }
	upd = func(b, a string) *pipeline.Event {
		return row(pipeline.OpUpdate, []any{b, int64(1)}, []any{a, int64(1)})
	}
	del = func(s string) *pipeline.Event { return row(pipeline.OpDelete, []any{s, int64(1)}, nil) }
	return ins, upd, del
}
