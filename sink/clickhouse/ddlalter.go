package clickhouse

import (
	"strings"
)

func planDrop(c *cursor, db string) ([]action, error) {
	c.accept("TEMPORARY")
	kw := strings.ToUpper(c.next().text)
	switch {
	case noEffect[kw]:
		return nil, nil
	case kw == "DATABASE" || kw == "SCHEMA":
		c.accept("IF", "EXISTS")
		if name, ok := c.name(); ok {
			return []action{{kind: aDropDB, table: tableRef{db: name}}}, nil
		}
	case kw == "TABLE" || kw == "TABLES":
		c.accept("IF", "EXISTS")
		var acts []action
		for {
			t, ok := c.tableName(db)
			if !ok {
				return nil, errNotMapped
			}
			acts = append(acts, action{kind: aDropTable, table: t})
			if !c.peek().punct(",") {
				return acts, nil
			}
			c.i++
		}
	}
	return nil, errNotMapped
}

// planRename reads RENAME TABLE a TO b [, c TO d ...].
func planRename(c *cursor, db string) ([]action, error) {
	if c.accept("USER") {
		return nil, nil
	}
	if !c.accept("TABLE") && !c.accept("TABLES") {
		return nil, errNotMapped
	}
	var acts []action
	for {
		from, ok := c.tableName(db)
		if !ok || !c.accept("TO") {
			return nil, errNotMapped
		}
		to, ok := c.tableName(db)
		if !ok {
			return nil, errNotMapped
		}
		acts = append(acts, action{kind: aRename, table: from, to: to})
		if !c.peek().punct(",") {
			return acts, nil
		}
		c.i++
	}
}

// planAlter reads ALTER TABLE t spec, spec, ...
func planAlter(c *cursor, db string) ([]action, error) {
	c.accept("ONLINE")
	c.accept("IGNORE")
	switch {
	case c.accept("DATABASE") || c.accept("SCHEMA") || noEffect[strings.ToUpper(c.peek().text)]:
		return nil, nil
	case !c.accept("TABLE"):
		return nil, errNotMapped
	}
	c.accept("IF", "EXISTS")
	t, ok := c.tableName(db)
	if !ok {
		return nil, errNotMapped
	}
	var acts []action
	for _, spec := range splitTop(c.toks[c.i:]) {
		a, err := alterSpec(&cursor{toks: spec}, t)
		if err != nil {
			return nil, err
		}
		acts = append(acts, a...)
	}
	return acts, nil
}

// alterNoEffect are ALTER TABLE clauses that change nothing ClickHouse
// holds: options, indexes, defaults, character sets (values arrive in
// UTF-8 whatever the column's), partitioning, locking.
var alterNoEffect = map[string]bool{"ENGINE": true, "COMMENT": true, "AUTO_INCREMENT": true, "ROW_FORMAT": true,
	"DEFAULT": true, "CHARACTER": true, "CHARSET": true, "COLLATE": true, "CONVERT": true, "FORCE": true,
	"ALGORITHM": true, "LOCK": true, "KEY_BLOCK_SIZE": true, "PACK_KEYS": true, "CHECKSUM": true, "ORDER": true,
	"ENABLE": true, "DISABLE": true, "WITH": true, "WITHOUT": true, "STATS_PERSISTENT": true,
	"STATS_AUTO_RECALC": true, "STATS_SAMPLE_PAGES": true, "ALTER": true, "PARTITION": true,
	"REMOVE": true, "COALESCE": true, "REORGANIZE": true, "ANALYZE": true, "OPTIMIZE": true, "REBUILD": true,
	"REPAIR": true, "CHECK": true, "DISCARD": true, "IMPORT": true, "TRUNCATE": true, "EXCHANGE": true}

func alterSpec(c *cursor, t tableRef) ([]action, error) {
	if mentionsPrimaryKey(c.toks) {
		return nil, errNotMapped // ClickHouse cannot change a sorting key
	}
	kw := strings.ToUpper(c.next().text)
	switch kw {
	case "ADD":
		return alterAdd(c, t)
	case "DROP":
		return alterDrop(c, t)
	case "MODIFY":
		return alterModify(c, t)
	case "CHANGE":
		return alterChange(c, t)
	case "RENAME":
		return alterRename(c, t)
	}
	if alterNoEffect[kw] {
		return nil, nil
	}
	return nil, errNotMapped
}

func mentionsPrimaryKey(toks []token) bool {
	for i := 0; i+1 < len(toks); i++ {
		if toks[i].is("PRIMARY") && toks[i+1].is("KEY") {
			return true
		}
	}
	return false
}

func alterAdd(c *cursor, t tableRef) ([]action, error) {
	if isIndexWord(c.peek()) || c.peek().is("PARTITION") {
		return nil, nil
	}
	c.accept("COLUMN")
	c.accept("IF", "NOT", "EXISTS")
	if c.peek().punct("(") {
		return nil, errNotMapped
	}
	col, _, err := columnDef(c)
	if err != nil {
		return nil, err
	}
	return []action{{kind: aAddColumn, table: t, col: col}}, nil
}

func alterDrop(c *cursor, t tableRef) ([]action, error) {
	if isIndexWord(c.peek()) || c.peek().is("PARTITION") || c.peek().is("DEFAULT") {
		return nil, nil
	}
	c.accept("COLUMN")
	c.accept("IF", "EXISTS")
	name, ok := c.name()
	if !ok {
		return nil, errNotMapped
	}
	return []action{{kind: aDropColumn, table: t, col: colNamed(name)}}, nil
}

func alterModify(c *cursor, t tableRef) ([]action, error) {
	c.accept("COLUMN")
	c.accept("IF", "EXISTS")
	col, _, err := columnDef(c)
	if err != nil {
		return nil, err
	}
	return []action{{kind: aModifyColumn, table: t, col: col}}, nil
}

// alterChange maps CHANGE a a type; renaming a column is not in 18.16.
func alterChange(c *cursor, t tableRef) ([]action, error) {
	c.accept("COLUMN")
	c.accept("IF", "EXISTS")
	old, ok := c.name()
	if !ok {
		return nil, errNotMapped
	}
	col, _, err := columnDef(c)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(old, col.Name) {
		return nil, errNotMapped
	}
	return []action{{kind: aModifyColumn, table: t, col: col}}, nil
}

func alterRename(c *cursor, t tableRef) ([]action, error) {
	if isIndexWord(c.peek()) {
		return nil, nil
	}
	if c.peek().is("COLUMN") {
		return nil, errNotMapped
	}
	if !c.accept("TO") {
		c.accept("AS")
	}
	to, ok := c.tableName(t.db)
	if !ok {
		return nil, errNotMapped
	}
	return []action{{kind: aRename, table: t, to: to}}, nil
}
