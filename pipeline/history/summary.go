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
	s := Summary{From: start.Offset, To: to}
	tables := map[string]*TableCount{}
	applied := start.TxnSeq
	var open struct {
		active bool
		seq    uint64
		next   uint64
	}
	for off := start.Offset; off < to; {
		es, err := l.Read(ctx, off, min(window, int(to-off)))
		if err != nil {
			return s, err
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if e.Offset >= to {
				break
			}
			off = e.Offset + 1
			s.Messages++
			ev := e.Event
			if l.Stale(e) {
				s.Stale++
				continue
			}
			switch {
			case ev.Kind == pipeline.KindEpoch && ev.Epoch != nil:
				s.Epochs = append(s.Epochs, Mark{Offset: e.Offset, Record: *ev.Epoch})
				open.active = false
				continue
			case !ev.InTxn():
				continue
			}
			p := ev.Pos
			if p.TxnSeq <= applied || (open.active && p.TxnSeq == open.seq && p.Row < open.next) {
				s.Duplicates++
				continue
			}
			if !open.active || open.seq != p.TxnSeq {
				open.active, open.seq = true, p.TxnSeq
			}
			open.next = p.Row + 1
			if ev.Kind == pipeline.KindDDL {
				s.DDL++
			} else if ev.Table != nil {
				s.Rows++
				name := ev.Table.Database + "." + ev.Table.Name
				tc := tables[name]
				if tc == nil {
					tc = &TableCount{Table: name}
					tables[name] = tc
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
			if p.Last {
				pt, _ := pointOf(e)
				if s.Txns == 0 {
					s.First = pt
				}
				s.Last = pt
				s.Txns++
				applied = p.TxnSeq
				open.active = false
			}
		}
	}
	for _, tc := range tables {
		s.Tables = append(s.Tables, *tc)
	}
	sort.Slice(s.Tables, func(i, j int) bool { return s.Tables[i].Table < s.Tables[j].Table })
	return s, nil
}
