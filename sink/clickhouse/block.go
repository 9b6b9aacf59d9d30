package clickhouse

import (
	"fmt"
	"slices"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/rowcast/rowcast/pipeline"
)

// Version bits: a row's _version is its transaction's TxnSeq shifted left
// by rowBits, plus its Row. A replayed or duplicated row gets the same
// version, a later change a higher one (docs/CLICKHOUSE.md, "Versions").
const (
	rowBits = 24
	seqBits = 64 - rowBits
)

// version is the _version of the row event at pos.
func version(pos pipeline.Position) (uint64, error) {
	if pos.Row >= 1<<rowBits || pos.TxnSeq >= 1<<seqBits {
		return 0, fmt.Errorf("%w: %s (at most %d rows per transaction and %d transactions)", ErrVersionRange, pos,
			uint64(1)<<rowBits, uint64(1)<<seqBits)
	}
	return pos.TxnSeq<<rowBits | pos.Row, nil
}

// nativeRevision is the protocol revision the Native blocks are encoded
// for; 18.16 reads it (no custom serialization flags before 54454).
const nativeRevision = 54451

// block is the pending rows of one source table shape, as Native columns:
// the table's columns, then _version and _deleted.
type block struct {
	tbl     *pipeline.Table
	name    string   // `db`.`table`
	names   []string // quoted column names, in block order
	cols    []column
	version proto.ColUInt64
	deleted proto.ColUInt8
	// history mode: each row's operation and source commit time.
	history bool
	op      proto.ColStr
	commit  proto.ColUInt32
	rows    int
	mark    int // rows committed; those after it belong to the open transaction
	bytes   int
	buf     proto.Buffer
	types   []colType // to make the columns anew (reset)
	bigRow  bool      // a row of bigRowBytes or more since the last reset
}

// bigRowBytes is the row size from which a block's buffers are made anew
// after it is flushed instead of being kept for the next rows: a big row
// must not keep its size in the sink's memory for good.
const bigRowBytes = 8 << 20

func newBlock(tbl *pipeline.Table, types []colType, history bool) *block {
	b := &block{tbl: tbl, name: qualified(tbl.Database, tbl.Name), history: history, types: types}
	for i, c := range tbl.Columns {
		b.names = append(b.names, quoteIdent(c.Name))
		b.cols = append(b.cols, newColumn(types[i]))
	}
	b.names = append(b.names, "`_version`", "`_deleted`")
	if history {
		b.names = append(b.names, "`_op`", "`_commit_time`")
	}
	return b
}

// rowMeta is what a row carries besides its image.
type rowMeta struct {
	version uint64
	deleted bool
	op      pipeline.Op
	commit  uint32 // seconds since the epoch
}

// add appends one image as a row. On error the block is as before.
func (b *block) add(img []any, m rowMeta) error {
	if len(img) != len(b.cols) {
		return fmt.Errorf("%w: a row image of %d values for %d columns", pipeline.ErrMalformed, len(img), len(b.cols))
	}
	before := b.bytes
	for i, c := range b.cols {
		if err := c.add(img[i]); err != nil {
			b.truncate(b.rows)
			return fmt.Errorf("column %s: %w", b.tbl.Columns[i].Name, err)
		}
		b.bytes += valueSize(img[i])
	}
	b.bigRow = b.bigRow || b.bytes-before >= bigRowBytes
	b.version.Append(m.version)
	var d uint8
	if m.deleted {
		d = 1
	}
	b.deleted.Append(d)
	if b.history {
		b.op.Append(m.op.String())
		b.commit.Append(m.commit)
	}
	b.rows++
	return nil
}

// truncate drops the rows from n on; a column may hold one row more than
// rows when add failed half-way.
func (b *block) truncate(n int) {
	for _, c := range b.cols {
		c.truncate(n)
	}
	b.version = b.version[:min(n, len(b.version))]
	b.deleted = b.deleted[:min(n, len(b.deleted))]
	if b.history {
		truncateCol[string](&b.op, n)
		b.commit = b.commit[:min(n, len(b.commit))]
	}
	b.rows = n
	b.mark = min(b.mark, n)
}

// encode returns the block's rows in the Native format, in parts to send
// in order. A block that holds a big row is encoded by encodeParts; the
// others into the block's buffer, reused once the flight landed.
func (b *block) encode() ([][]byte, error) {
	input := b.input()
	if b.bigRow {
		return b.encodeParts(input)
	}
	b.buf.Reset()
	blk := proto.Block{Columns: len(input), Rows: b.rows}
	if err := blk.EncodeRawBlock(&b.buf, nativeRevision, input); err != nil {
		return nil, fmt.Errorf("encode a block of %s: %w", b.name, err)
	}
	return [][]byte{b.buf.Buf}, nil
}

// input is the block's columns, for ch-go's encoders.
func (b *block) input() proto.Input {
	input := make(proto.Input, 0, len(b.cols)+4)
	for i, c := range b.cols {
		input = append(input, proto.InputColumn{Name: b.tbl.Columns[i].Name, Data: c.input()})
	}
	input = append(input, proto.InputColumn{Name: "_version", Data: &b.version},
		proto.InputColumn{Name: "_deleted", Data: &b.deleted})
	if b.history {
		input = append(input, proto.InputColumn{Name: "_op", Data: &b.op},
			proto.InputColumn{Name: "_commit_time", Data: proto.Alias(&b.commit, "DateTime('UTC')")})
	}
	return input
}

// encodeParts encodes a block that holds a big row as EncodeRawBlock does,
// through ch-go's vectored Writer: a big string is its own part, the
// column's bytes (strCol.WriteColumn), instead of a copy in one buffer that
// grows by doubling (a 60 MB row took the ClickHouse sink 60 MB more). The
// parts point into the columns, which reset makes anew after a big row.
func (b *block) encodeParts(input proto.Input) ([][]byte, error) {
	var out partsWriter
	w := proto.NewWriter(&out, new(proto.Buffer))
	w.ChainBuffer(func(buf *proto.Buffer) {
		buf.PutInt(len(input))
		buf.PutInt(b.rows)
	})
	for _, col := range input {
		if r := col.Data.Rows(); r != b.rows {
			return nil, fmt.Errorf("encode a block of %s: column %s has %d rows, want %d", b.name, col.Name, r, b.rows)
		}
		w.ChainBuffer(func(buf *proto.Buffer) { col.EncodeStart(buf, nativeRevision) })
		if v, ok := col.Data.(proto.Preparable); ok {
			if err := v.Prepare(); err != nil {
				return nil, fmt.Errorf("encode a block of %s: column %s: %w", b.name, col.Name, err)
			}
		}
		if v, ok := col.Data.(proto.StateEncoder); ok {
			w.ChainBuffer(v.EncodeState)
		}
		col.Data.WriteColumn(w)
	}
	if _, err := w.Flush(); err != nil {
		return nil, err
	}
	return out.parts, nil
}

// partsWriter keeps what ch-go's Writer flushes, without a copy: the Writer
// and its buffer are dropped after one Flush, so nothing writes them again.
type partsWriter struct{ parts [][]byte }

func (p *partsWriter) Write(b []byte) (int, error) {
	p.parts = append(p.parts, b)
	return len(b), nil
}

func (b *block) reset() {
	if b.bigRow {
		// The flight in the air keeps what it sends; the block lets go.
		for i := range b.cols {
			b.cols[i] = newColumn(b.types[i])
		}
		b.buf, b.bigRow = proto.Buffer{}, false
	}
	for _, c := range b.cols {
		c.reset()
	}
	b.version.Reset()
	b.deleted.Reset()
	b.op.Reset()
	b.commit.Reset()
	b.rows, b.mark, b.bytes = 0, 0, 0
}

// valueSize approximates a value's share of a block, for the flush limits.
func valueSize(v any) int {
	switch x := v.(type) {
	case string:
		return len(x) + 2
	case []byte:
		return len(x) + 2
	}
	return 8
}

// keyChanged reports an update that moves the row to another primary key.
func keyChanged(ev *pipeline.Event) bool {
	for _, i := range ev.Table.PrimaryKey {
		if !valueEqual(ev.Before[i], ev.After[i]) {
			return true
		}
	}
	return false
}

func valueEqual(a, b any) bool {
	ab, aok := a.([]byte)
	bb, bok := b.([]byte)
	if aok || bok {
		return aok && bok && slices.Equal(ab, bb)
	}
	return a == b
}
