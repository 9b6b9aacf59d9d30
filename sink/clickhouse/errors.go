package clickhouse

import (
	"errors"
	"strings"

	"github.com/rowcast/rowcast/sink"
)

// Sentinel errors of the ClickHouse sink.
var (
	// ErrNoKey refuses a table without a primary key: ReplacingMergeTree
	// collapses rows by key, and without one a replayed row would double.
	ErrNoKey = errors.New("table has no primary key")
	// ErrVersionRange refuses a position whose version does not fit 64 bits.
	ErrVersionRange = errors.New("position does not fit the _version column")

	// errNotMapped says that a statement has no ClickHouse equivalent the
	// sink knows; it stops the worker.
	errNotMapped = errors.New("DDL statement the ClickHouse sink cannot map")
	// Conversion errors name the problem, never the value (no row values
	// in logs); block.add adds the column.
	errNullKey  = errors.New("NULL in a primary key column")
	errIntRange = errors.New("an integer out of range of the ClickHouse column")
)

func markTransient(err error) error { return sink.MarkTransient(err) }

// quoteIdent quotes a ClickHouse identifier with backticks.
func quoteIdent(s string) string {
	return "`" + strings.NewReplacer(`\`, `\\`, "`", "\\`").Replace(s) + "`"
}

// quoteString quotes a ClickHouse string literal.
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

// qualified is `db`.`table`.
func qualified(db, table string) string { return quoteIdent(db) + "." + quoteIdent(table) }
