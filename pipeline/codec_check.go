package pipeline

import "fmt"

// checkEvent rejects events that the format cannot represent, so that
// everything AppendValue writes, Decode reads back.
func checkEvent(e *Event) error {
	switch e.Kind {
	case KindRow:
		return checkRowEvent(e)
	case KindDDL:
		if e.Statement == "" {
			return encodeErr(e, "ddl event", fmt.Errorf("empty statement: %w", ErrUnsupported))
		}
	case KindHeartbeat:
	case KindEpoch:
		if e.Epoch == nil {
			return encodeErr(e, "epoch event", fmt.Errorf("no epoch record: %w", ErrUnsupported))
		}
	case KindSnapshot:
		return checkSnapshotEvent(e)
	default:
		return fmt.Errorf("encode message: unknown kind %d: %w", uint8(e.Kind), ErrUnsupported)
	}
	return nil
}

func checkRowEvent(e *Event) error {
	t := e.Table
	if t == nil {
		return encodeErr(e, "row event", fmt.Errorf("no table: %w", ErrUnsupported))
	}
	if err := checkTable(t); err != nil {
		return encodeErr(e, "row event", err)
	}
	wantBefore, wantAfter, ok := opImages(e.Op)
	if !ok {
		return encodeErr(e, "row event", fmt.Errorf("unknown op %q: %w", byte(e.Op), ErrUnsupported))
	}
	err := checkImage("before", e.Before, wantBefore, e.Op, len(t.Columns))
	if err == nil {
		err = checkImage("after", e.After, wantAfter, e.Op, len(t.Columns))
	}
	if err != nil {
		return encodeErr(e, "row event", err)
	}
	return nil
}

// opImages says which images a row event of op carries; ok is false for an
// unknown op.
func opImages(op Op) (before, after, ok bool) {
	switch op {
	case OpInsert, OpRead:
		return false, true, true
	case OpUpdate:
		return true, true, true
	case OpDelete:
		return true, false, true
	}
	return false, false, false
}

func checkImage(name string, img []any, want bool, op Op, n int) error {
	switch {
	case want && img == nil:
		return fmt.Errorf("op %c without %s image: %w", byte(op), name, ErrUnsupported)
	case !want && img != nil:
		return fmt.Errorf("op %c with a %s image: %w", byte(op), name, ErrUnsupported)
	case want && len(img) != n:
		return fmt.Errorf("%s image has %d values for %d columns: %w", name, len(img), n, ErrUnsupported)
	}
	return nil
}

func checkSnapshotEvent(e *Event) error {
	if e.Snapshot != "start" && e.Snapshot != "end" {
		return encodeErr(e, "snapshot event", fmt.Errorf("marker %q is neither start nor end: %w", e.Snapshot, ErrUnsupported))
	}
	if e.Statement != "" && (e.Snapshot != "start" || e.Table == nil) {
		return encodeErr(e, "snapshot event", fmt.Errorf("a definition only goes with a table's start marker: %w", ErrUnsupported))
	}
	t := e.Table
	if t == nil {
		return nil
	}
	if err := checkTable(t); err != nil {
		return encodeErr(e, "snapshot event", err)
	}
	if e.Database != "" && e.Database != t.Database {
		return encodeErr(e, "snapshot event", fmt.Errorf("database %q differs from the table's %q: %w", e.Database, t.Database, ErrUnsupported))
	}
	return nil
}

// checkTable checks what a msgDecoder would refuse and costs little; duplicate
// column names are the source's business and are caught by Decode.
func checkTable(t *Table) error {
	if t.Database == "" || t.Name == "" {
		return fmt.Errorf("table %q.%q: empty name: %w", t.Database, t.Name, ErrUnsupported)
	}
	if len(t.Columns) == 0 {
		return fmt.Errorf("table %s.%s: no columns: %w", t.Database, t.Name, ErrUnsupported)
	}
	for i, ci := range t.PrimaryKey {
		if ci < 0 || ci >= len(t.Columns) {
			return fmt.Errorf("table %s.%s: primary key index %d out of range: %w", t.Database, t.Name, ci, ErrUnsupported)
		}
		for _, cj := range t.PrimaryKey[:i] {
			if ci == cj {
				return fmt.Errorf("table %s.%s: column %d twice in the primary key: %w", t.Database, t.Name, ci, ErrUnsupported)
			}
		}
	}
	return nil
}
