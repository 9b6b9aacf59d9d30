package clickhouse

import (
	"context"
	"strings"
	"testing"
	"time"

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
