package sink

import (
	"context"
	"fmt"
	"slices"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
)

// Bootstrap: tables that a snapshot in the changelog or rowcast clone is
// still loading. While a snapshot loads a table, its rows are applied
// leniently; a cloned table skips the messages its copy already holds.
// docs/DESIGN.md, "Bootstrap", has the rules and why they are exact.

// maxBootNames bounds the table names a Status carries.
const maxBootNames = 100

// tableKey names a table without building a string per lookup.
type tableKey struct{ db, name string }

func keyOf(t *pipeline.Table) tableKey { return tableKey{t.Database, t.Name} }

// bootState is the bootstrap entries as the open target transaction leaves
// them. A rollback discards its changes in the target, so the Worker loads
// it again after every rollback.
type bootState struct {
	tables map[tableKey]checkpoint.Bootstrap
	// clones counts the clone entries; floorMin and floorMax are their
	// lowest and highest floors.
	clones             int
	floorMin, floorMax int64
	// changed is set when the tables changed since the Status last showed
	// them.
	changed bool
}

// set replaces the entries with those loaded from the target.
func (b *bootState) set(loaded map[string]checkpoint.Bootstrap) {
	clear(b.tables)
	for _, e := range loaded {
		if b.tables == nil {
			b.tables = map[tableKey]checkpoint.Bootstrap{}
		}
		b.tables[tableKey{e.DB, e.Table}] = e
	}
	b.recount()
}

// put records one entry.
func (b *bootState) put(e checkpoint.Bootstrap) {
	if b.tables == nil {
		b.tables = map[tableKey]checkpoint.Bootstrap{}
	}
	b.tables[tableKey{e.DB, e.Table}] = e
	b.recount()
}

// remove forgets one entry.
func (b *bootState) remove(k tableKey) {
	delete(b.tables, k)
	b.recount()
}

func (b *bootState) recount() {
	b.clones, b.floorMin, b.floorMax = 0, 0, -1
	for _, e := range b.tables {
		if e.Mode != checkpoint.ModeClone {
			continue
		}
		if b.clones == 0 || e.FloorOffset < b.floorMin {
			b.floorMin = e.FloorOffset
		}
		b.floorMax = max(b.floorMax, e.FloorOffset)
		b.clones++
	}
	b.changed = true
}

// lookup returns the entry of a table; b may be nil.
func (b *bootState) lookup(k tableKey) (checkpoint.Bootstrap, bool) {
	if b == nil {
		return checkpoint.Bootstrap{}, false
	}
	e, ok := b.tables[k]
	return e, ok
}

// snapshotting reports whether a snapshot is loading t: its rows are then
// applied leniently.
func (b *bootState) snapshotting(t *pipeline.Table) bool {
	e, ok := b.tables[keyOf(t)]
	return ok && e.Mode == checkpoint.ModeSnapshot
}

// cloned reports whether a clone of t already holds the message at offset.
// Callers check first that there are entries: the apply path is hot.
func (b *bootState) cloned(offset int64, t *pipeline.Table) bool {
	if offset > b.floorMax {
		return false
	}
	e, ok := b.tables[keyOf(t)]
	return ok && e.Mode == checkpoint.ModeClone && offset <= e.FloorOffset
}

// names lists the tables ("db.table", sorted, at most maxBootNames).
func (b *bootState) names() []string {
	out := make([]string, 0, min(len(b.tables), maxBootNames))
	for _, e := range b.tables {
		out = append(out, e.Key())
	}
	slices.Sort(out)
	return out[:min(len(out), maxBootNames)]
}

// loadBoot reads the bootstrap entries from the target (after Open and
// after every rollback) and shows them in the Status.
func (w *Worker) loadBoot(ctx context.Context) error {
	loaded, err := w.t.Bootstrap(ctx)
	if err != nil {
		return fmt.Errorf("read the bootstrap tables: %w", err)
	}
	if len(loaded) == 0 && w.boot == nil {
		return nil
	}
	if w.boot == nil {
		w.boot = &bootState{}
	}
	w.boot.set(loaded)
	w.showBoot()
	return nil
}

// booting reports whether tables are being loaded: only then does a row
// need a look at them.
func (w *Worker) booting() bool { return w.boot != nil && len(w.boot.tables) > 0 }

// showBoot publishes the bootstrap tables in the Status when they changed.
func (w *Worker) showBoot() {
	if w.boot == nil || !w.boot.changed {
		return
	}
	w.boot.changed = false
	n, names := len(w.boot.tables), w.boot.names()
	w.status.update(func(s *Status) { s.Bootstrapping, s.BootstrapTables = n, names })
}

// snapshotMarker applies a table's snapshot start or end marker, a
// transaction of its own. A marker that a clone already holds is skipped.
func (w *Worker) snapshotMarker(ctx context.Context, msg Message) error {
	ev := msg.Event
	if p := ev.Pos; p.Row != 0 || !p.Last {
		return &ApplyError{Offset: msg.Offset, Pos: &p, Object: objectOf(ev),
			Err: fmt.Errorf("%w: a snapshot marker that is not a transaction of its own", pipeline.ErrMalformed)}
	}
	if w.booting() && w.boot.cloned(msg.Offset, ev.Table) {
		w.pend.dups++
		w.finishTxn(msg.Offset+1, ev)
		return nil
	}
	if ev.Snapshot == "start" {
		return w.snapshotStart(ctx, msg)
	}
	return w.snapshotEnd(ctx, msg)
}

// snapshotStart commits what is held, then has the target replace the table
// and record its bootstrap with the checkpoint after the marker.
func (w *Worker) snapshotStart(ctx context.Context, msg Message) error {
	ev := msg.Event
	p := ev.Pos
	if w.holding() {
		if err := w.commit(ctx); err != nil {
			return err
		}
	}
	st := w.stateAfter(msg)
	if err := w.t.StartSnapshot(ctx, ev, st); err != nil {
		return &ApplyError{Offset: msg.Offset, Pos: &p, Object: objectOf(ev), Err: fmt.Errorf("snapshot start: %w", err)}
	}
	if w.boot == nil {
		w.boot = &bootState{}
	}
	w.boot.put(checkpoint.Bootstrap{Topic: w.cfg.Topic, DB: ev.Table.Database, Table: ev.Table.Name,
		Mode: checkpoint.ModeSnapshot, FloorOffset: -1, Since: st.UpdatedAt})
	w.log.Info().Int64("offset", msg.Offset).Str("table", objectOf(ev)).
		Msg("snapshot of a table starts: it was recreated empty, and its rows are applied leniently until the end marker")
	w.committedAlone(st, true)
	return nil
}

// snapshotEnd ends the table's bootstrap in the open transaction: the rows
// before the marker are applied leniently, those after it strictly.
func (w *Worker) snapshotEnd(ctx context.Context, msg Message) error {
	ev := msg.Event
	k := keyOf(ev.Table)
	if _, ok := w.boot.lookup(k); ok {
		if err := w.flush(ctx); err != nil {
			return err
		}
		if err := w.begin(ctx); err != nil {
			return err
		}
		if err := w.t.EndBootstrap(ctx, k.db, k.name); err != nil {
			p := ev.Pos
			return &ApplyError{Offset: msg.Offset, Pos: &p, Object: objectOf(ev), Err: fmt.Errorf("snapshot end: %w", err)}
		}
		w.boot.remove(k)
		w.log.Info().Int64("offset", msg.Offset).Str("table", objectOf(ev)).Msg("snapshot of a table ends: its rows are applied strictly again")
	}
	w.finishTxn(msg.Offset+1, ev)
	return nil
}

// pruneClones ends, in the open transaction, the clone entries whose floor
// the checkpoint being committed passes: next is its offset.
func (w *Worker) pruneClones(ctx context.Context, next int64) error {
	if w.boot == nil || w.boot.clones == 0 || next <= w.boot.floorMin {
		return nil
	}
	defer w.boot.recount()
	for k, e := range w.boot.tables {
		if e.Mode != checkpoint.ModeClone || e.FloorOffset >= next {
			continue
		}
		if err := w.t.EndBootstrap(ctx, k.db, k.name); err != nil {
			return fmt.Errorf("end the clone bootstrap of %s: %w", e.Key(), err)
		}
		delete(w.boot.tables, k)
		w.log.Info().Str("table", e.Key()).Int64("floor_offset", e.FloorOffset).
			Msg("the checkpoint passed the clone's floor: the table is applied like any other")
	}
	return nil
}
