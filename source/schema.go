package source

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/pipeline"
)

// colInfo is one column as information_schema describes it at the time rowcast
// asks, which may be later than the event being decoded.
type colInfo struct {
	Name       string
	ColumnType string // COLUMN_TYPE, e.g. "decimal(10,2) unsigned"
	DataType   string // DATA_TYPE, lower case
	Charset    string // CHARACTER_SET_NAME, "" for non-text columns
	JSON       bool   // MariaDB: LONGTEXT with a json_valid(col) CHECK constraint
}

// schemaLoader reads table definitions and collations from the master. Tests
// replace it with a fake.
type schemaLoader interface {
	// columns returns the table's columns in ordinal order, or nil when the
	// table does not exist (any more).
	columns(ctx context.Context, db, table string) ([]colInfo, error)
	// charset returns the character set name of a collation id.
	charset(ctx context.Context, collation uint64) (string, error)
}

// queryer runs a query: *sql.DB and *sql.Conn.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// sqlLoader is the schemaLoader of a live master.
type sqlLoader struct {
	db     queryer
	flavor string

	mu         sync.Mutex
	collations map[uint64]string
}

func (l *sqlLoader) columns(ctx context.Context, db, table string) ([]colInfo, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT COLUMN_NAME, COLUMN_TYPE, LOWER(DATA_TYPE), IFNULL(CHARACTER_SET_NAME, '')
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, db, table)
	if err != nil {
		return nil, fmt.Errorf("read information_schema.COLUMNS of %s.%s: %w", db, table, err)
	}
	var cols []colInfo
	for rows.Next() {
		var c colInfo
		if err := rows.Scan(&c.Name, &c.ColumnType, &c.DataType, &c.Charset); err != nil {
			rows.Close()
			return nil, err
		}
		cols = append(cols, c)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if len(cols) == 0 || l.flavor != FlavorMariaDB {
		return cols, nil
	}
	return cols, l.markJSON(ctx, db, table, cols)
}

// markJSON flags the JSON columns of a MariaDB table: JSON is an alias of
// LONGTEXT plus a CHECK (json_valid(col)), and only the constraint tells the
// column is JSON.
func (l *sqlLoader) markJSON(ctx context.Context, db, table string, cols []colInfo) error {
	rows, err := l.db.QueryContext(ctx, `SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
		WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`, db, table)
	if err != nil {
		return fmt.Errorf("read information_schema.CHECK_CONSTRAINTS of %s.%s: %w", db, table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var clause string
		if err := rows.Scan(&clause); err != nil {
			return err
		}
		if m := jsonValidRe.FindStringSubmatch(strings.TrimSpace(clause)); m != nil {
			markJSONColumn(cols, unquote(m[1]))
		}
	}
	return rows.Err()
}

func markJSONColumn(cols []colInfo, name string) {
	for i := range cols {
		if cols[i].Name == name && cols[i].DataType == "longtext" {
			cols[i].JSON = true
		}
	}
}

var jsonValidRe = regexp.MustCompile("(?i)^json_valid\\((`(?:[^`]|``)+`|\\w+)\\)$")

func (l *sqlLoader) charset(ctx context.Context, collation uint64) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cs, ok := l.collations[collation]; ok {
		return cs, nil
	}
	rows, err := l.db.QueryContext(ctx, `SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL`)
	if err != nil {
		return "", fmt.Errorf("read information_schema.COLLATIONS: %w", err)
	}
	defer rows.Close()
	l.collations = map[uint64]string{}
	for rows.Next() {
		var id uint64
		var cs string
		if err := rows.Scan(&id, &cs); err != nil {
			return "", err
		}
		l.collations[id] = cs
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	if cs, ok := l.collations[collation]; ok {
		return cs, nil
	}
	return "", fmt.Errorf("%w: collation id %d is not in information_schema.COLLATIONS", ErrUnsupported, collation)
}

// tableEntry is the decoded shape of one TABLE_MAP event.
type tableEntry struct {
	body  []byte // the event's body: a new body under the same table id means a new shape
	skip  bool   // filtered out or bookkeeping
	table *pipeline.Table
	conv  []convFn
}

// name is "db.table", for messages.
func (e *tableEntry) name() string { return e.table.Database + "." + e.table.Name }

// tableCache maps table ids to decoded shapes. The TABLE_MAP event is the truth
// for the column list (the binlog may be older than the current schema);
// information_schema only adds what the event cannot say (COLUMN_TYPE, MariaDB
// JSON and INET/UUID), and only for columns whose name and type family match.
type tableCache struct {
	loader   schemaLoader
	filter   *filter
	flavor   string
	rawBytes bool
	log      zerolog.Logger

	byID map[uint64]*tableEntry
	info map[string][]colInfo // "db\x00table" -> columns; nil = table not found
}

func newTableCache(l schemaLoader, f *filter, flavor string, rawBytes bool, log zerolog.Logger) *tableCache {
	return &tableCache{loader: l, filter: f, flavor: flavor, rawBytes: rawBytes, log: log,
		byID: map[uint64]*tableEntry{}, info: map[string][]colInfo{}}
}

// invalidate forgets everything; called after every DDL, because a DDL may
// change any table (RENAME, cross-schema ALTER) and is rare.
func (c *tableCache) invalidate() {
	clear(c.byID)
	clear(c.info)
}

// tableMap records a TABLE_MAP event; body identifies its exact content.
func (c *tableCache) tableMap(ctx context.Context, tme *replication.TableMapEvent, body []byte) (*tableEntry, error) {
	if e, ok := c.byID[tme.TableID]; ok && bytes.Equal(e.body, body) {
		return e, nil
	}
	if len(c.byID) > 10000 {
		clear(c.byID)
	}
	e := &tableEntry{body: bytes.Clone(body)}
	db, name := string(tme.Schema), string(tme.Table)
	if !c.filter.table(db, name) {
		e.skip = true
	} else if err := c.build(ctx, e, tme, db, name); err != nil {
		return nil, err
	}
	c.byID[tme.TableID] = e
	return e, nil
}

func (c *tableCache) columnsOf(ctx context.Context, db, name string) ([]colInfo, error) {
	key := db + "\x00" + name
	if cols, ok := c.info[key]; ok {
		return cols, nil
	}
	cols, err := c.loader.columns(ctx, db, name)
	if err != nil {
		return nil, err
	}
	c.info[key] = cols
	return cols, nil
}

func (c *tableCache) build(ctx context.Context, e *tableEntry, tme *replication.TableMapEvent, db, name string) error {
	names := tme.ColumnNameString()
	if len(names) != int(tme.ColumnCount) {
		return fmt.Errorf("%w: the TABLE_MAP event of %s.%s has no column names: set binlog_row_metadata=FULL on the master; events written before that cannot be decoded faithfully", ErrMasterSetup, db, name)
	}
	infos, err := c.columnsOf(ctx, db, name)
	if err != nil {
		return err
	}
	byName := make(map[string]*colInfo, len(infos))
	for i := range infos {
		byName[infos[i].Name] = &infos[i]
	}
	m := newMapMeta(tme)
	t := &pipeline.Table{Database: db, Name: name, Columns: make([]pipeline.Column, len(names))}
	e.conv = make([]convFn, len(names))
	mismatch := 0
	for i, n := range names {
		s := colSpec{name: n, typ: tme.ColumnType[i], meta: tme.ColumnMeta[i], flavor: c.flavor,
			rawBytes: c.rawBytes, geometry: m.geoms[i]}
		rt, _ := realType(s.typ, s.meta)
		if ci := byName[n]; ci != nil && compatible(rt, ci.DataType) {
			s.info = ci
		} else {
			mismatch++
		}
		if t.Columns[i], e.conv[i], err = c.column(ctx, m, i, s); err != nil {
			return fmt.Errorf("column %s.%s.%s: %w", db, name, n, err)
		}
	}
	for _, pk := range tme.PrimaryKey {
		t.PrimaryKey = append(t.PrimaryKey, int(pk))
	}
	if mismatch > 0 {
		c.log.Warn().Str("table", db+"."+name).Int("columns", mismatch).
			Msg("information_schema does not match the binlog's TABLE_MAP (table changed or dropped since); using the binlog's own column description")
	}
	e.table = t
	return nil
}

// mapMeta is the column metadata of a TABLE_MAP event (FULL row metadata),
// by column index.
type mapMeta struct {
	tme            *replication.TableMapEvent
	unsigned       map[int]bool
	colls, esColls map[int]uint64
	enums, sets    map[int][]string
	geoms          map[int]uint64
}

func newMapMeta(tme *replication.TableMapEvent) mapMeta {
	return mapMeta{tme: tme, unsigned: tme.UnsignedMap(), colls: tme.CollationMap(), esColls: tme.EnumSetCollationMap(),
		enums: tme.EnumStrValueMap(), sets: tme.SetStrValueMap(), geoms: tme.GeometryTypeMap()}
}

// column completes s, column i, with its signedness and character set, and
// builds it.
func (c *tableCache) column(ctx context.Context, m mapMeta, i int, s colSpec) (pipeline.Column, convFn, error) {
	var err error
	if s.unsigned, err = c.signedness(m.unsigned, i, s.info, m.tme.IsNumericColumn(i)); err != nil {
		return pipeline.Column{}, nil, err
	}
	if s.charset, s.members, err = c.text(ctx, m, i, s.info); err != nil {
		return pipeline.Column{}, nil, err
	}
	return buildColumn(s)
}

// signedness comes from the TABLE_MAP (FULL metadata); information_schema is
// the fallback when the event lacks it.
func (c *tableCache) signedness(unsigned map[int]bool, i int, info *colInfo, numeric bool) (bool, error) {
	if !numeric {
		return false, nil
	}
	if u, ok := unsigned[i]; ok {
		return u, nil
	}
	if info != nil {
		return strings.Contains(info.ColumnType, "unsigned"), nil
	}
	return false, fmt.Errorf("%w: signedness unknown: set binlog_row_metadata=FULL on the master", ErrMasterSetup)
}

// text resolves the character set of a text column and the members of an
// ENUM or SET, converted to UTF-8.
func (c *tableCache) text(ctx context.Context, m mapMeta, i int, info *colInfo) (string, []string, error) {
	members := m.enums[i]
	if set, isSet := m.sets[i]; isSet {
		members = set
	}
	var coll uint64
	var known bool
	switch {
	case m.tme.IsEnumOrSetColumn(i):
		coll, known = m.esColls[i]
		if members == nil {
			return "", nil, fmt.Errorf("%w: the TABLE_MAP event has no ENUM/SET members: set binlog_row_metadata=FULL on the master", ErrMasterSetup)
		}
	case m.tme.IsCharacterColumn(i) && !m.tme.IsGeometryColumn(i):
		coll, known = m.colls[i]
	default:
		return "", nil, nil
	}
	cs, err := c.charsetOf(ctx, coll, known, info)
	if err != nil {
		return "", nil, err
	}
	if members, err = c.decodeMembers(cs, members); err != nil {
		return "", nil, err
	}
	return cs, members, nil
}

// charsetOf is the character set of a collation the TABLE_MAP names (if
// known), or else information_schema's, "binary" for a column without one.
func (c *tableCache) charsetOf(ctx context.Context, coll uint64, known bool, info *colInfo) (string, error) {
	switch {
	case known:
		return c.loader.charset(ctx, coll)
	case info != nil && info.Charset != "":
		return info.Charset, nil
	case info != nil:
		return "binary", nil
	}
	return "", fmt.Errorf("%w: character set unknown: set binlog_row_metadata=FULL on the master", ErrMasterSetup)
}

// decodeMembers converts ENUM or SET members in character set cs to UTF-8.
func (c *tableCache) decodeMembers(cs string, members []string) ([]string, error) {
	if len(members) == 0 {
		return members, nil
	}
	dec := decoderFor(cs)
	out := make([]string, len(members))
	for j, m := range members {
		switch {
		case dec != nil:
			out[j] = dec(m)
		case c.rawBytes:
			out[j] = m
		default:
			return nil, fmt.Errorf("%w: ENUM/SET members in character set %q: convert the column to utf8mb4 or exclude the table", ErrUnsupported, cs)
		}
	}
	return out, nil
}
