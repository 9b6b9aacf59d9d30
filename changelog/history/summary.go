package history

import (
	"context"
	"sort"

	"github.com/rowcast/rowcast/pipeline"
)

// Summary is what a range of the topic holds, as a sink would apply it.
type Summary struct {
	From, To   int64 // [From, To)
	Messages   int64 // every message of the range
	Txns       int64 // source transactions completed in the range
	Rows       int64 // row events applied
	DDL        int64
	Duplicates int64 // copies of messages already counted (retried produces, republished transactions)
	Stale      int64 // messages of an older epoch after a newer epoch record: ignored
	Epochs     []Mark
	// First and Last are the first and last transactions completed in the
	// range; zero when none.
	First, Last Point
	Tables      []TableCount // by name
}

// TableCount is what a range does to one table.
type TableCount struct {
	Table                     string // db.table
	Inserts, Updates, Deletes int64
}

// Summarize reads [from, to) as a worker whose checkpoint is start would:
// duplicates and stale messages are counted apart. It reads every message
// once and keeps only counters.
func (l *Log) Summarize(ctx context.Context, start Boundary, to int64) (Summary, error) {
	z := summarizer{l: l, s: Summary{From: start.Offset, To: to}, tables: map[string]*TableCount{}, applied: start.TxnSeq}
	if err := l.forEach(ctx, start.Offset, to, z.add); err != nil {
		return z.s, err
	}
	for _, tc := range z.tables {
		z.s.Tables = append(z.s.Tables, *tc)
	}
	sort.Slice(z.s.Tables, func(i, j int) bool { return z.s.Tables[i].Table < z.s.Tables[j].Table })
	return z.s, nil
}

// summarizer is Summarize's state: what a worker would have applied.
type summarizer struct {
	l       *Log
	s       Summary
	tables  map[string]*TableCount
	applied uint64 // the last transaction completed
	// The transaction being applied, and its next row.
	open     bool
	seq, row uint64
}

// add counts one message; it never stops the reading.
func (z *summarizer) add(e Entry) bool {
	z.s.Messages++
	ev := e.Event
	switch {
	case z.l.Stale(e):
		z.s.Stale++
	case ev.Kind == pipeline.KindEpoch && ev.Epoch != nil:
		z.s.Epochs = append(z.s.Epochs, Mark{Offset: e.Offset, Record: *ev.Epoch})
		z.open = false
	case ev.InTxn():
		z.txnMessage(e)
	}
	return true
}

// txnMessage counts a message of a source transaction, unless a worker has
// applied it already.
func (z *summarizer) txnMessage(e Entry) {
	p := e.Event.Pos
	if p.TxnSeq <= z.applied || (z.open && p.TxnSeq == z.seq && p.Row < z.row) {
		z.s.Duplicates++
		return
	}
	z.open, z.seq, z.row = true, p.TxnSeq, p.Row+1
	z.count(e.Event)
	if p.Last {
		z.complete(e)
	}
}

// count counts a DDL or a row change by table and operation.
func (z *summarizer) count(ev *pipeline.Event) {
	if ev.Kind == pipeline.KindDDL {
		z.s.DDL++
		return
	}
	if ev.Table == nil {
		return
	}
	z.s.Rows++
	name := ev.Table.Database + "." + ev.Table.Name
	tc := z.tables[name]
	if tc == nil {
		tc = &TableCount{Table: name}
		z.tables[name] = tc
	}
	switch ev.Op {
	case pipeline.OpDelete:
		tc.Deletes++
	case pipeline.OpUpdate:
		tc.Updates++
	default:
		tc.Inserts++
	}
}

// complete counts the transaction e closes.
func (z *summarizer) complete(e Entry) {
	pt, _ := pointOf(e)
	if z.s.Txns == 0 {
		z.s.First = pt
	}
	z.s.Last = pt
	z.s.Txns++
	z.applied = e.Event.Pos.TxnSeq
	z.open = false
}
