package clickhouse

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestBlockLetsGoOfBigRows: a block keeps its buffers between flushes, but
// not after a big row: those are made anew, so the row's size does not
// stay in the sink's memory.
func TestBlockLetsGoOfBigRows(t *testing.T) {
	tbl := &pipeline.Table{Database: "d", Name: "t", PrimaryKey: []int{0}, Columns: []pipeline.Column{
		{Name: "id", Kind: pipeline.VInt, SQLType: "bigint(20)"},
		{Name: "doc", Kind: pipeline.VString, SQLType: "longtext"},
	}}
	types, err := columnTypes(tbl)
	if err != nil {
		t.Fatal(err)
	}
	b := newBlock(tbl, types, false)
	flush := func(doc string) (kept bool) {
		t.Helper()
		col := b.cols[1]
		if err := b.add([]any{int64(1), doc}, rowMeta{version: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.encode(); err != nil {
			t.Fatal(err)
		}
		b.reset()
		return b.cols[1] == col && b.buf.Buf != nil
	}
	if !flush("small") {
		t.Error("a block of small rows did not keep its buffers")
	}
	if flush(strings.Repeat("x", bigRowBytes)) {
		t.Error("a block kept its buffers after a big row")
	}
	if b.bigRow || !flush("small") {
		t.Error("after the big row's flush, the block does not keep its buffers again")
	}
}

// TestCommitLandsBigRow: a block of a big row that ApplyRows already sent
// (the flush limit) is inserted before Commit returns, as one that waits in
// the block is: the worker lets go of the process's big message gate after
// Commit, and the next sink must not fetch its copy while this one's is in
// the air.
func TestCommitLandsBigRow(t *testing.T) {
	r := newReplica(t, Config{FlushBytes: 1 << 20, FlushInterval: time.Hour})
	r.Setup(t, "CREATE TABLE `docs` (`id` BIGINT NOT NULL PRIMARY KEY, `doc` LONGTEXT NULL) ENGINE=InnoDB")
	s := sinktest.NewScript(r.db)
	s.Table("docs", []pipeline.Column{{Name: "id", Kind: pipeline.VInt, SQLType: "bigint(20)"},
		{Name: "doc", Kind: pipeline.VString, SQLType: "longtext"}}, 0)
	s.Insert("docs", int64(1), strings.Repeat("x", bigRowBytes))
	s.Commit()
	tgt := r.target(t)
	defer tgt.Close()
	ctx := context.Background()
	if _, _, err := tgt.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tgt.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	var rows []*pipeline.Event
	for _, m := range s.Msgs {
		if m.Event.Table != nil && m.Event.Table.Name == "docs" {
			rows = append(rows, m.Event)
		}
	}
	if err := tgt.ApplyRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if tgt.fl == nil {
		t.Fatal("ApplyRows did not send the block beyond FlushBytes: the test does not test what it should")
	}
	if err := tgt.Commit(ctx, s.After(s.Seq())); err != nil {
		t.Fatal(err)
	}
	if got := r.query(t, "SELECT count() FROM "+quoteIdent(r.db)+".docs")[0][0]; got != "1" || tgt.fl != nil {
		t.Fatalf("after Commit: %s rows in ClickHouse, flight in the air: %v; want the big row inserted", got, tgt.fl != nil)
	}
}

// TestEncodePartsAsRawBlock: a block holding a big row is encoded in parts
// that make the bytes ch-go's EncodeRawBlock makes, and the big value's
// part is the column's own bytes, not a copy.
func TestEncodePartsAsRawBlock(t *testing.T) {
	tbl := &pipeline.Table{Database: "d", Name: "t", PrimaryKey: []int{0}, Columns: []pipeline.Column{
		{Name: "id", Kind: pipeline.VInt, SQLType: "bigint(20)"},
		{Name: "doc", Kind: pipeline.VString, SQLType: "longtext"},
		{Name: "note", Kind: pipeline.VString, SQLType: "varchar(20)"},
	}}
	types, err := columnTypes(tbl)
	if err != nil {
		t.Fatal(err)
	}
	for _, history := range []bool{false, true} {
		b := newBlock(tbl, types, history)
		big := strings.Repeat("0123456789abcdef", bigRowBytes/16)
		for i, row := range [][]any{{int64(1), "small", "a"}, {int64(2), nil, nil}, {int64(3), big, "c"}, {int64(4), "", "d"}} {
			if err := b.add(row, rowMeta{version: uint64(i + 1), op: pipeline.OpInsert}); err != nil {
				t.Fatal(err)
			}
		}
		if !b.bigRow {
			t.Fatal("the block does not know it holds a big row")
		}
		parts, err := b.encode()
		if err != nil {
			t.Fatal(err)
		}
		var want proto.Buffer
		if err := (proto.Block{Columns: len(b.input()), Rows: b.rows}).EncodeRawBlock(&want, nativeRevision, b.input()); err != nil {
			t.Fatal(err)
		}
		if got := bytes.Join(parts, nil); !bytes.Equal(got, want.Buf) {
			t.Fatalf("history %v: parts make %d bytes, EncodeRawBlock %d; they differ", history, len(got), len(want.Buf))
		}
		aliased := false
		for _, p := range parts {
			aliased = aliased || len(p) == len(big) && aliasesColumn(b, p)
		}
		if !aliased {
			t.Errorf("history %v: no part is the big value's bytes in the column: it was copied", history)
		}
	}
}

// aliasesColumn reports whether p starts in the doc column's bytes.
func aliasesColumn(b *block, p []byte) bool {
	col := b.cols[1].(*colOf[string]).null.Values.(strCol)
	return &col.Buf[col.Pos[2].Start] == &p[0]
}
