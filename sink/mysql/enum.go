package mysql

import (
	"context"

	"github.com/rowcast/rowcast/pipeline"
)

// A master not in strict mode stores a value that is not a member of an ENUM
// as the special error value 0, which reads back as ” (and which the reader
// publishes as ""). Writing ” into that ENUM under the sink's strict
// sql_mode fails with error 1265, although it is exactly what the master
// holds; native row replication applies it, since row events bypass
// sql_mode. So a statement carrying such a value runs with strict mode off,
// and only that statement: every other one stays strict, so that a column
// that really differs on the replica still stops the worker.
const lenientSQLMode = "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'"
const strictSQLMode = "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'"

// holdsEnumErrorValue reports whether an after image of rows has ” in an
// ENUM column.
func holdsEnumErrorValue(tbl *pipeline.Table, rows []*pipeline.Event) bool {
	for i, c := range tbl.Columns {
		if c.Kind != pipeline.VEnum {
			continue
		}
		for _, ev := range rows {
			if i < len(ev.After) {
				if s, ok := ev.After[i].(string); ok && s == "" {
					return true
				}
			}
		}
	}
	return false
}

// leniently runs fn with strict mode off, and restores it.
func (t *Target) leniently(ctx context.Context, fn func() error) error {
	if _, err := t.ex.ExecContext(ctx, lenientSQLMode); err != nil {
		return err
	}
	ferr := fn()
	if _, err := t.ex.ExecContext(ctx, strictSQLMode); err != nil && ferr == nil {
		return err
	}
	return ferr
}
