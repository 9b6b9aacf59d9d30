package clickhouse

import (
	"strings"
	"testing"

	"github.com/rowcast/rowcast/pipeline"
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
