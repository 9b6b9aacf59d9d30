package sink

import (
	"context"
	"fmt"
	"slices"

	"github.com/rowcast/rowcast/pipeline"
)

// batch holds consecutive row events of one table and one op class until
// they go to Target.ApplyRows. It may span source transactions that are
// merged into one target transaction; it never holds more than MaxBatchRows
// rows or MaxBatchBytes bytes, which is what bounds the worker's memory.
type batch struct {
	rows        []*pipeline.Event
	table       *pipeline.Table
	class       byte // 'u' (insert, update, snapshot read) or 'd' (delete)
	lenient     bool // a snapshot is loading the table (bootstrap.go)
	bytes       int
	first, last int64 // offsets
	pos         pipeline.Position
}

func (b *batch) reset() {
	clear(b.rows) // let the events be collected
	b.rows = b.rows[:0]
	b.table, b.bytes = nil, 0
}

// opClass groups operations that one statement can apply: upserts carry the
// after image, deletes the key or before image.
func opClass(op pipeline.Op) (byte, bool) {
	switch op {
	case pipeline.OpInsert, pipeline.OpUpdate, pipeline.OpRead:
		return 'u', true
	case pipeline.OpDelete:
		return 'd', true
	}
	return 0, false
}

// addRow adds a row event to the batch, flushing first when it does not fit.
// A row a clone already holds is skipped as a duplicate.
func (w *Worker) addRow(ctx context.Context, msg Message) error {
	ev := msg.Event
	class, ok := opClass(ev.Op)
	if !ok || !wellFormed(ev, class) {
		return malformedRow(msg)
	}
	if w.booting() && w.boot.cloned(msg.Offset, ev.Table) {
		w.pend.dups++
		return nil
	}
	if w.cfg.OriginDomain == nil && w.cfg.Versions != "" && ev.Table.Database+"."+ev.Table.Name == w.cfg.Versions {
		return nil // a row version: for the other masters, not for read replicas
	}
	size := msg.Size
	if size <= 0 {
		size = estimateSize(ev)
	}
	b := &w.batch
	if len(b.rows) > 0 && !b.takes(class, size, ev.Table, w.cfg.MaxBatchBytes) {
		if err := w.flush(ctx); err != nil {
			return err
		}
	}
	if len(b.rows) == 0 {
		b.table, b.class, b.first, b.pos = ev.Table, class, msg.Offset, ev.Pos
		b.lenient = w.booting() && w.boot.snapshotting(ev.Table)
	}
	b.rows = append(b.rows, ev)
	b.bytes += size
	b.last = msg.Offset
	w.pend.rows++
	limit := w.cfg.MaxBatchRows
	if w.narrow {
		limit = 1
	}
	if len(b.rows) >= limit {
		return w.flush(ctx)
	}
	return nil
}

func malformedRow(msg Message) error {
	ev := msg.Event
	p := ev.Pos
	return &ApplyError{Offset: msg.Offset, Pos: &p, Object: objectOf(ev),
		Err: fmt.Errorf("%w: row event with op %q, table %v, before %d values, after %d values",
			pipeline.ErrMalformed, ev.Op, ev.Table != nil, len(ev.Before), len(ev.After))}
}

// takes reports whether a row of class, size bytes and table t may join the
// batch.
func (b *batch) takes(class byte, size int, t *pipeline.Table, maxBytes int) bool {
	return b.class == class && b.bytes+size <= maxBytes && sameTable(b.table, t)
}

// wellFormed reports a row event with a table and the images its op needs:
// an after image to upsert, a before image unless it is an insert.
func wellFormed(ev *pipeline.Event, class byte) bool {
	return ev.Table != nil && (ev.After != nil || class != 'u') &&
		(ev.Before != nil || ev.Op == pipeline.OpInsert || ev.Op == pipeline.OpRead)
}

// flush gives the batch to the target, in the open target transaction.
func (w *Worker) flush(ctx context.Context) error {
	b := &w.batch
	if len(b.rows) == 0 {
		return nil
	}
	if err := w.begin(ctx); err != nil {
		return err
	}
	if err := w.applyBatch(ctx); err != nil {
		w.failedBatch = len(b.rows)
		w.narrowUntil = b.last
		pos := b.pos
		obj := fmt.Sprintf("%s.%s (%d %s rows, offsets %d-%d)", b.table.Database, b.table.Name, len(b.rows),
			map[byte]string{'u': "upsert", 'd': "delete"}[b.class], b.first, b.last)
		if len(b.rows) == 1 {
			obj = fmt.Sprintf("%s.%s (op %s)", b.table.Database, b.table.Name, b.rows[0].Op)
		}
		return &ApplyError{Offset: b.first, Pos: &pos, Object: obj, Err: err}
	}
	b.reset()
	return nil
}

// applyBatch gives the batch to the target, leniently while a snapshot
// loads its table.
func (w *Worker) applyBatch(ctx context.Context) error {
	if w.batch.lenient {
		return w.t.ApplyRowsLenient(ctx, w.batch.rows)
	}
	return w.t.ApplyRows(ctx, w.batch.rows)
}

// sameTable reports whether two events' tables are the same table with the
// same columns. Events of one table share a *Table until a DDL changes it.
func sameTable(a, b *pipeline.Table) bool {
	if a == b {
		return true
	}
	return a.Database == b.Database && a.Name == b.Name && slices.Equal(a.Columns, b.Columns) &&
		slices.Equal(a.PrimaryKey, b.PrimaryKey)
}

// estimateSize approximates a message's size when the input does not know it.
func estimateSize(ev *pipeline.Event) int {
	n := 64
	for _, img := range [][]any{ev.Before, ev.After} {
		for _, v := range img {
			switch v := v.(type) {
			case string:
				n += len(v) + 4
			case []byte:
				n += len(v) + 4
			default:
				n += 8
			}
		}
	}
	return n
}
