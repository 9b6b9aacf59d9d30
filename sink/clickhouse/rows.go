package clickhouse

import (
	"context"
	"fmt"
	"math"

	"github.com/rowcast/rowcast/pipeline"
)

// ApplyRows appends row events to their table's pending block: an insert,
// update or snapshot read as its after image, a delete as its before image
// flagged _deleted, an update that changes the key as both. Rows are
// inserted at a flush; a block that outgrows the limits is inserted now.
func (t *Target) ApplyRows(ctx context.Context, rows []*pipeline.Event) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.landed(); err != nil {
		return err
	}
	for _, ev := range rows {
		if err := t.addEvent(ctx, ev); err != nil {
			return err
		}
	}
	if t.rows >= t.cfg.FlushRows || t.bytes >= t.cfg.FlushBytes {
		return t.startFlush(ctx)
	}
	return nil
}

// ApplyRowsLenient is ApplyRows: an upsert replaces whatever row has the
// key, and a delete of a missing row leaves a deleted row that FINAL hides.
func (t *Target) ApplyRowsLenient(ctx context.Context, rows []*pipeline.Event) error {
	return t.ApplyRows(ctx, rows)
}

func (t *Target) addEvent(ctx context.Context, ev *pipeline.Event) error {
	b, err := t.blockFor(ctx, ev.Table)
	if err != nil {
		return err
	}
	ver, err := version(ev.Pos)
	if err != nil {
		return err
	}
	m := rowMeta{version: ver, op: ev.Op, commit: commitSeconds(ev)}
	before := b.bytes
	switch {
	case ev.Op == pipeline.OpDelete:
		err = b.add(ev.Before, deletedMeta(m))
	case ev.Op == pipeline.OpUpdate && keyChanged(ev):
		if err = b.add(ev.Before, deletedMeta(m)); err == nil {
			t.rows++
			err = b.add(ev.After, m)
		}
	default:
		err = b.add(ev.After, m)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", b.name, err)
	}
	t.rows++
	t.bytes += b.bytes - before
	return nil
}

// blockFor returns the pending block of a table shape, making sure first
// that the ClickHouse table has its columns.
func (t *Target) blockFor(ctx context.Context, tbl *pipeline.Table) (*block, error) {
	if b := t.blocks[tbl]; b != nil {
		return b, nil
	}
	if len(tbl.PrimaryKey) == 0 {
		return nil, noKey(tbl.Database, tbl.Name)
	}
	types, err := columnTypes(tbl)
	if err != nil {
		return nil, err
	}
	if err := t.ensureTable(ctx, tbl, types); err != nil {
		return nil, err
	}
	b := newBlock(tbl, types, t.cfg.History)
	t.blocks[tbl] = b
	t.order = append(t.order, b)
	return b, nil
}

// deletedMeta is m for the row that removes a key: flagged deleted, and in
// history an op 'd' (also for the old key of an update that changes it).
func deletedMeta(m rowMeta) rowMeta {
	m.deleted, m.op = true, pipeline.OpDelete
	return m
}

// commitSeconds is the source commit time of a row, 0 when unknown.
func commitSeconds(ev *pipeline.Event) uint32 {
	if s := ev.CommitTime.Unix(); !ev.CommitTime.IsZero() && s > 0 && s <= math.MaxUint32 {
		return uint32(s)
	}
	return 0
}
