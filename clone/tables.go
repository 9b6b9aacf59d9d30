package clone

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// systemSchemas are never copied: every server has its own.
var systemSchemas = map[string]bool{"mysql": true, "information_schema": true, "performance_schema": true, "sys": true}

// selector says which tables the reader replicates: source.include and
// source.exclude, never the bookkeeping schema or a system schema (as
// source's filter and verify's selector decide).
type selector struct {
	inc, exc    []*regexp.Regexp
	bookkeeping string
}

func newSelector(include, exclude []string, bookkeeping string) (*selector, error) {
	s := &selector{bookkeeping: bookkeeping}
	for _, l := range []struct {
		dst   *[]*regexp.Regexp
		what  string
		exprs []string
	}{{&s.inc, "source.include", include}, {&s.exc, "source.exclude", exclude}} {
		for _, e := range l.exprs {
			re, err := regexp.Compile(e)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", l.what, e, err)
			}
			*l.dst = append(*l.dst, re)
		}
	}
	return s, nil
}

// replicated reports whether "db.table" is replicated; "db." asks about a
// database as the reader does for its DDL.
func (s *selector) replicated(name string) bool {
	db, _, _ := strings.Cut(name, ".")
	if systemSchemas[strings.ToLower(db)] || db == s.bookkeeping {
		return false
	}
	ok := len(s.inc) == 0 || slices.ContainsFunc(s.inc, func(re *regexp.Regexp) bool { return re.MatchString(name) })
	return ok && !slices.ContainsFunc(s.exc, func(re *regexp.Regexp) bool { return re.MatchString(name) })
}

// tableName is a table of the source.
type tableName struct{ db, name string }

func (t tableName) String() string { return t.db + "." + t.name }

// quoted is `db`.`name`.
func (t tableName) quoted() string { return qi(t.db) + "." + qi(t.name) }

func qi(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// database is a replicated database of the source, with its defaults.
type database struct{ name, charset, collation string }

// listing is what a node holds of the replicated data.
type listing struct {
	dbs      []database  // by name
	tables   []tableName // by name
	estimate map[tableName]int64
}

// has reports whether the listing holds t.
func (l *listing) has(t tableName) bool { _, ok := l.estimate[t]; return ok }

// sameTables reports whether two listings name the same tables.
func (l *listing) sameTables(o *listing) bool { return slices.Equal(l.tables, o.tables) }

// queryer is *sql.DB, *sql.Conn or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// list reads the replicated databases and tables of a node. Databases are
// those the reader replicates DDL of, and those that hold a replicated
// table. A replicated table that is not an InnoDB base table is refused:
// it cannot be read in a consistent read view.
func list(ctx context.Context, q queryer, sel *selector) (*listing, error) {
	l := &listing{estimate: map[tableName]int64{}}
	if err := l.readTables(ctx, q, sel); err != nil {
		return nil, err
	}
	if err := l.readDatabases(ctx, q, sel); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *listing) readTables(ctx context.Context, q queryer, sel *selector) error {
	rows, err := q.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, COALESCE(ENGINE,''), COALESCE(TABLE_ROWS,0) "+
		"FROM information_schema.TABLES WHERE TABLE_TYPE IN ('BASE TABLE','SYSTEM VERSIONED') ORDER BY TABLE_SCHEMA, TABLE_NAME")
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t tableName
		var kind, engine string
		var estimate int64
		if err := rows.Scan(&t.db, &t.name, &kind, &engine, &estimate); err != nil {
			return fmt.Errorf("list tables: %w", err)
		}
		if !sel.replicated(t.String()) {
			continue
		}
		if err := copyable(t, kind, engine); err != nil {
			return err
		}
		l.tables = append(l.tables, t)
		l.estimate[t] = estimate
	}
	return rows.Err()
}

// copyable refuses the tables a read view cannot copy as of its position.
func copyable(t tableName, kind, engine string) error {
	switch {
	case kind != "BASE TABLE":
		return fmt.Errorf("%w: %s is a %s table: its history cannot be copied; exclude it (source.exclude) or copy it by hand", ErrTable, t, strings.ToLower(kind))
	case !strings.EqualFold(engine, "InnoDB"):
		return fmt.Errorf("%w: %s is an %s table: only InnoDB tables can be read in a consistent read view; convert it (ALTER TABLE ... ENGINE=InnoDB) or exclude it (source.exclude)",
			ErrTable, t, engine)
	}
	return nil
}

func (l *listing) readDatabases(ctx context.Context, q queryer, sel *selector) error {
	rows, err := q.QueryContext(ctx, "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "+
		"FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
	if err != nil {
		return fmt.Errorf("list databases: %w", err)
	}
	defer rows.Close()
	holds := map[string]bool{}
	for _, t := range l.tables {
		holds[t.db] = true
	}
	for rows.Next() {
		var d database
		if err := rows.Scan(&d.name, &d.charset, &d.collation); err != nil {
			return fmt.Errorf("list databases: %w", err)
		}
		if holds[d.name] || sel.replicated(d.name+".") {
			l.dbs = append(l.dbs, d)
		}
	}
	return rows.Err()
}
