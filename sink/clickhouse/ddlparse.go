package clickhouse

import (
	"fmt"
	"strings"

	"github.com/rowcast/rowcast/pipeline"
)

// What a DDL statement does to ClickHouse's tables, read by ddlPlan.
type actKind uint8

const (
	aCreateTable actKind = iota + 1
	aCreateDB
	aDropDB
	aDropTable
	aTruncate
	aRename // table to to
	aAddColumn
	aDropColumn
	aModifyColumn
)

type action struct {
	kind  actKind
	table tableRef
	to    tableRef        // aRename
	col   pipeline.Column // aAddColumn, aModifyColumn; Name only for aDropColumn
	def   *pipeline.Table // aCreateTable; nil when its columns could not be read
}

// noEffect are statements about objects ClickHouse's copy does not have:
// indexes, views, routines, triggers, events, users and grants. Row events
// carry the effects of triggers and routines.
var noEffect = map[string]bool{"INDEX": true, "VIEW": true, "TRIGGER": true, "PROCEDURE": true, "FUNCTION": true,
	"EVENT": true, "USER": true, "ROLE": true, "SERVER": true, "SEQUENCE": true, "TABLESPACE": true, "LOGFILE": true}

// ddlPlan reads a statement run in database db into actions; none for a
// statement without effect on ClickHouse.
func ddlPlan(stmt, db string) ([]action, error) {
	c := &cursor{toks: tokenize(stmt)}
	switch kw := strings.ToUpper(c.next().text); kw {
	case "CREATE":
		return planCreate(c, db)
	case "DROP":
		return planDrop(c, db)
	case "ALTER":
		return planAlter(c, db)
	case "RENAME":
		return planRename(c, db)
	case "TRUNCATE":
		c.accept("TABLE")
		if t, ok := c.tableName(db); ok {
			return []action{{kind: aTruncate, table: t}}, nil
		}
	case "GRANT", "REVOKE", "ANALYZE", "OPTIMIZE", "FLUSH", "SET":
		return nil, nil
	}
	return nil, errNotMapped
}

// skipCreateOptions passes OR REPLACE, DEFINER=..., ALGORITHM=... and SQL
// SECURITY ... between CREATE and the object's kind.
func skipCreateOptions(c *cursor) (orReplace bool) {
	for {
		switch {
		case c.accept("OR", "REPLACE"):
			orReplace = true
		case c.peek().is("DEFINER") || c.peek().is("ALGORITHM"):
			c.i += 2 // the word and '='
			c.skipValue()
		case c.accept("SQL", "SECURITY"):
			c.i++
		default:
			return orReplace
		}
	}
}

// skipValue passes a value after '=': a word or string, or user@host.
func (c *cursor) skipValue() {
	c.i++
	if c.peek().punct("@") {
		c.i += 2
	}
}

func planCreate(c *cursor, db string) ([]action, error) {
	orReplace := skipCreateOptions(c)
	kw := strings.ToUpper(c.next().text)
	switch {
	case kw == "TEMPORARY", kw == "UNIQUE" || kw == "FULLTEXT" || kw == "SPATIAL" || kw == "AGGREGATE":
		return nil, nil // temporary tables are not replicated; indexes and functions have no effect
	case noEffect[kw]:
		return nil, nil
	case kw == "DATABASE" || kw == "SCHEMA":
		c.accept("IF", "NOT", "EXISTS")
		if name, ok := c.name(); ok {
			return []action{{kind: aCreateDB, table: tableRef{db: name}}}, nil
		}
	case kw == "TABLE":
		return planCreateTable(c, db, orReplace)
	}
	return nil, errNotMapped
}

// planCreateTable reads CREATE TABLE's columns and primary key. A form
// without a column list (LIKE, AS SELECT) or with a type the sink does not
// know gives a nil definition: the table is then created from the first
// row event's columns.
func planCreateTable(c *cursor, db string, orReplace bool) ([]action, error) {
	c.accept("IF", "NOT", "EXISTS")
	t, ok := c.tableName(db)
	if !ok {
		return nil, errNotMapped
	}
	var acts []action
	if orReplace {
		acts = append(acts, action{kind: aDropTable, table: t})
	}
	def, _ := tableDef(c, t)
	return append(acts, action{kind: aCreateTable, table: t, def: def}), nil
}

// tableDef reads the parenthesised definition of CREATE TABLE.
func tableDef(c *cursor, t tableRef) (*pipeline.Table, error) {
	body, ok := c.group()
	if !ok {
		return nil, errNotMapped
	}
	tbl := &pipeline.Table{Database: t.db, Name: t.name}
	var pk []string
	for _, item := range splitTop(body) {
		ic := &cursor{toks: item}
		switch {
		case ic.accept("PRIMARY", "KEY"):
			pk = keyColumns(ic)
		case ic.accept("CONSTRAINT"):
			if _, ok := ic.name(); ok && ic.accept("PRIMARY", "KEY") {
				pk = keyColumns(ic)
			}
		case isIndexWord(ic.peek()):
		default:
			col, isPK, err := columnDef(ic)
			if err != nil {
				return nil, err
			}
			if isPK {
				pk = append(pk, col.Name)
			}
			tbl.Columns = append(tbl.Columns, col)
		}
	}
	return withKey(tbl, pk), nil
}

func isIndexWord(t token) bool {
	for _, kw := range []string{"KEY", "INDEX", "UNIQUE", "FULLTEXT", "SPATIAL", "FOREIGN", "CHECK", "PERIOD", "CONSTRAINT"} {
		if t.is(kw) {
			return true
		}
	}
	return false
}

// keyColumns reads [USING x] (a, b(10), ...).
func keyColumns(c *cursor) []string {
	c.accept("USING", "BTREE")
	body, ok := c.group()
	if !ok {
		return nil
	}
	var names []string
	for _, part := range splitTop(body) {
		if len(part) > 0 {
			names = append(names, part[0].text)
		}
	}
	return names
}

func withKey(tbl *pipeline.Table, pk []string) *pipeline.Table {
	for _, k := range pk {
		for i, col := range tbl.Columns {
			if strings.EqualFold(col.Name, k) {
				tbl.PrimaryKey = append(tbl.PrimaryKey, i)
			}
		}
	}
	return tbl
}

// columnDef reads "name type [attributes]"; isPK is set by a PRIMARY KEY
// attribute.
func columnDef(c *cursor) (col pipeline.Column, isPK bool, err error) {
	name, ok := c.name()
	if !ok {
		return col, false, errNotMapped
	}
	sqlType, kind, err := columnType(c)
	if err != nil {
		return col, false, fmt.Errorf("column %s: %w", name, err)
	}
	for !c.done() {
		if c.accept("PRIMARY", "KEY") {
			isPK = true
			continue
		}
		c.i++
	}
	return pipeline.Column{Name: name, Kind: kind, SQLType: sqlType}, isPK, nil
}

// typeKinds maps a MySQL type name to the value kind the reader gives it.
var typeKinds = map[string]pipeline.ValueKind{
	"tinyint": pipeline.VInt, "smallint": pipeline.VInt, "mediumint": pipeline.VInt, "int": pipeline.VInt,
	"integer": pipeline.VInt, "bigint": pipeline.VInt, "bool": pipeline.VInt, "boolean": pipeline.VInt,
	"float": pipeline.VFloat, "double": pipeline.VDouble, "real": pipeline.VDouble,
	"decimal": pipeline.VDecimal, "numeric": pipeline.VDecimal, "dec": pipeline.VDecimal, "fixed": pipeline.VDecimal,
	"date": pipeline.VDate, "datetime": pipeline.VDateTime, "timestamp": pipeline.VTimestamp, "time": pipeline.VTime,
	"year": pipeline.VYear, "bit": pipeline.VBit, "enum": pipeline.VEnum, "set": pipeline.VSet, "json": pipeline.VJSON,
	"char": pipeline.VString, "varchar": pipeline.VString, "tinytext": pipeline.VString, "text": pipeline.VString,
	"mediumtext": pipeline.VString, "longtext": pipeline.VString, "nchar": pipeline.VString, "nvarchar": pipeline.VString,
	"inet4": pipeline.VString, "inet6": pipeline.VString, "uuid": pipeline.VString,
	"binary": pipeline.VBytes, "varbinary": pipeline.VBytes, "tinyblob": pipeline.VBytes, "blob": pipeline.VBytes,
	"mediumblob": pipeline.VBytes, "longblob": pipeline.VBytes,
	"geometry": pipeline.VGeometry, "point": pipeline.VGeometry, "linestring": pipeline.VGeometry,
	"polygon": pipeline.VGeometry, "multipoint": pipeline.VGeometry, "multilinestring": pipeline.VGeometry,
	"multipolygon": pipeline.VGeometry, "geometrycollection": pipeline.VGeometry,
}

// columnType reads a column's type into information_schema's spelling
// ("decimal(12,2) unsigned") and its value kind.
func columnType(c *cursor) (string, pipeline.ValueKind, error) {
	name := strings.ToLower(c.next().text)
	kind, ok := typeKinds[name]
	if !ok {
		return "", 0, fmt.Errorf("%w: type %q", pipeline.ErrUnsupported, name)
	}
	s := name
	if args, ok := c.group(); ok {
		var parts []string
		for _, a := range splitTop(args) {
			if len(a) > 0 {
				parts = append(parts, a[0].text)
			}
		}
		s += "(" + strings.Join(parts, ",") + ")"
	}
	for c.peek().is("UNSIGNED") || c.peek().is("SIGNED") || c.peek().is("ZEROFILL") || c.peek().is("PRECISION") {
		if c.next().is("UNSIGNED") {
			s += " unsigned"
		}
	}
	return s, kind, nil
}

func colNamed(name string) pipeline.Column { return pipeline.Column{Name: name} }
