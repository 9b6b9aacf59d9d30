package source

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rowcast/rowcast/pipeline"
)

// emitError is a failure to hand a message over: it ends Run, as in the
// binlog path, where no retry can help.
type emitError struct{ err error }

func (e emitError) Error() string { return e.err.Error() }
func (e emitError) Unwrap() error { return e.err }

// emitAlone emits ev as a transaction of its own, at the stream's position.
func (s *stream) emitAlone(ctx context.Context, ev *pipeline.Event) error {
	ev.Pos = pipeline.Position{Epoch: s.epoch, TxnSeq: s.seq, Row: 0, Last: true}
	return s.endOwn(ctx, ev)
}

// endOwn emits the last message of a transaction of the reader's own (a
// marker or a chunk), with the stream's GTID set, and moves past it.
func (s *stream) endOwn(ctx context.Context, ev *pipeline.Event) error {
	set := s.set.String()
	ev.Pos.Last, ev.GTIDSet = true, set
	if err := s.emit(ctx, ev); err != nil {
		return emitError{fmt.Errorf("emit %s: %w", ev.Pos, err)}
	}
	s.seq++
	s.onPosition(set, s.seq)
	return nil
}

// event is a snapshot message of the job, stamped with the view's master
// and clock (the local clock for markers emitted without a view). It has
// no GTID and no binlog position (docs/FORMAT.md, "Snapshots").
func (j *jobRun) event(s *stream, kind pipeline.Kind) *pipeline.Event {
	ev := &pipeline.Event{Kind: kind, Flavor: s.flavor}
	if v := j.view; v != nil {
		ev.ServerID, ev.CommitTime = v.serverID, v.at
	} else {
		ev.CommitTime = time.Now().UTC().Truncate(time.Second)
	}
	return ev
}

// emitMarker emits a table's start or end marker; the start marker carries
// the table's definition.
func (j *jobRun) emitMarker(ctx context.Context, s *stream, t *snapTable, kind string) error {
	ev := j.event(s, pipeline.KindSnapshot)
	ev.Snapshot, ev.Table, ev.Database = kind, t.table, t.db
	if kind == "start" {
		ev.Statement = t.def
	}
	return s.emitAlone(ctx, ev)
}

// readRows emits the rows of the table's next chunk as one transaction,
// streamed from the cursor, and records the last key. A read that fails
// part way still ends the transaction with the rows it emitted: they are
// the view's state.
func (j *jobRun) readRows(ctx context.Context, s *stream, t *snapTable, limit int) (int, error) {
	query, args := t.chunkSQL(j.after, limit)
	rows, err := j.view.conn.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", t.qualified(), err)
	}
	defer rows.Close()
	tmpl := *j.event(s, pipeline.KindRow)
	tmpl.Op, tmpl.Table = pipeline.OpRead, t.table
	w := chunkWriter{s: s, tmpl: tmpl}
	readErr := w.copy(ctx, rows, t)
	if _, ok := readErr.(emitError); ok {
		return w.n, readErr
	}
	if err := w.end(ctx); err != nil {
		return w.n, err
	}
	if w.last != nil && t.key != nil {
		j.after = t.keyOf(w.last)
		if j.afterJSON, err = encodeKey(j.after); err != nil {
			return w.n, fmt.Errorf("%w: key of %s: %v", ErrUnsupported, t.qualified(), err)
		}
	}
	if readErr != nil {
		return w.n, fmt.Errorf("read %s: %w", t.qualified(), readErr)
	}
	return w.n, nil
}

// chunkWriter emits a chunk's rows, holding the last one back to mark it.
type chunkWriter struct {
	s       *stream
	tmpl    pipeline.Event
	pending *pipeline.Event
	last    []any // the image of the last row emitted or pending
	n       int
}

// copy converts and emits every row of rows.
func (w *chunkWriter) copy(ctx context.Context, rows *sql.Rows, t *snapTable) error {
	raw := make([]sql.RawBytes, len(t.conv))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		img, err := t.convert(raw)
		if err != nil {
			return err
		}
		if err := w.add(ctx, img); err != nil {
			return err
		}
	}
	return rows.Err()
}

// add queues one row and emits the one held back before it.
func (w *chunkWriter) add(ctx context.Context, img []any) error {
	ev := new(pipeline.Event)
	*ev = w.tmpl
	ev.After = img
	ev.Pos = pipeline.Position{Epoch: w.s.epoch, TxnSeq: w.s.seq, Row: uint64(w.n)}
	w.n++
	prev := w.pending
	w.pending, w.last = ev, img
	if prev == nil {
		return nil
	}
	if err := w.s.emit(ctx, prev); err != nil {
		return emitError{fmt.Errorf("emit %s: %w", prev.Pos, err)}
	}
	return nil
}

// end emits the last row, marked as the end of the chunk's transaction.
func (w *chunkWriter) end(ctx context.Context) error {
	if w.pending == nil {
		return nil
	}
	ev := w.pending
	w.pending = nil
	return w.s.endOwn(ctx, ev)
}

// convert turns one row of text into pipeline values.
func (t *snapTable) convert(raw []sql.RawBytes) ([]any, error) {
	img := make([]any, len(raw))
	for i, b := range raw {
		if b == nil {
			continue
		}
		v, err := t.conv[i](b)
		if err != nil {
			return nil, fmt.Errorf("%w: %s.%s.%s: %v", ErrUnsupported, t.db, t.name, t.table.Columns[i].Name, err)
		}
		img[i] = v
	}
	return img, nil
}

// keyOf is the key values of a row image.
func (t *snapTable) keyOf(img []any) []any {
	out := make([]any, len(t.key))
	for i, k := range t.key {
		out[i] = img[k.col]
	}
	return out
}

// chunkSQL is the statement of the chunk after the key after (nil: from
// the start): the whole table when it has no keyset.
func (t *snapTable) chunkSQL(after []any, limit int) (string, []any) {
	var b strings.Builder
	b.WriteString("SELECT " + t.selects + " FROM " + t.qualified())
	if t.key == nil {
		return b.String(), nil
	}
	var args []any
	if after != nil {
		b.WriteString(" WHERE ")
		args = t.keysetWhere(&b, after)
	}
	b.WriteString(" ORDER BY ")
	for i, k := range t.key {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k.name)
	}
	b.WriteString(" LIMIT " + strconv.Itoa(limit))
	return b.String(), args
}

// keysetWhere writes the rows after the key after, in key order, as
// (k1 > a) OR (k1 = a AND k2 > b) OR ..., which the range optimizer of
// both servers reads as ranges of the key (a row constructor it may not).
func (t *snapTable) keysetWhere(b *strings.Builder, after []any) []any {
	var args []any
	for i, k := range t.key {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteByte('(')
		for _, eq := range t.key[:i] {
			b.WriteString(eq.name + "=" + eq.lit + " AND ")
		}
		b.WriteString(k.name + ">" + k.lit + ")")
		args = append(args, after[:i]...)
		args = append(args, after[i])
	}
	return args
}
