package verify

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// chTable is how a table's rows are read from both sides in one canonical
// text per value (docs/CLICKHOUSE.md, "Type mapping"): binary values in hex,
// BIT and YEAR as numbers, floats parsed and printed again at their width;
// every other type's text is the same on both sides.
type chTable struct {
	t             *Table
	master, ch    []string // select lists; the master's starts with the raw key
	floatBits     []int    // per column: 32 or 64 for FLOAT and DOUBLE, else 0
	masterFrom    string
	chFrom        string
	keyMaster     []string // quoted key columns, each side
	keyCH         []string
	keyIsBin      []bool
	keyIsInt      []bool
	keyIsUnsigned []bool
}

func newCHTable(t *Table) *chTable {
	m := &chTable{t: t, masterFrom: t.quoted(), chFrom: t.quoted() + " FINAL"}
	for _, k := range t.key {
		c := t.cols[k]
		m.master = append(m.master, qi(c.Name))
		m.keyMaster = append(m.keyMaster, qi(c.Name))
		m.keyCH = append(m.keyCH, qi(c.Name))
		m.keyIsBin = append(m.keyIsBin, c.kind == kindBinary)
		m.keyIsInt = append(m.keyIsInt, c.kind == kindInt || c.kind == kindUint)
		m.keyIsUnsigned = append(m.keyIsUnsigned, c.kind == kindUint)
	}
	for _, c := range t.cols {
		me, ce, bits := chExprs(c)
		m.master = append(m.master, me)
		m.ch = append(m.ch, ce)
		m.floatBits = append(m.floatBits, bits)
	}
	return m
}

// chExprs is one column's canonical expression on the master and on
// ClickHouse, and its float width.
func chExprs(c column) (master, ch string, floatBits int) {
	n := qi(c.Name)
	switch {
	case c.DataType == "bit" || c.DataType == "year":
		return n + "+0", n, 0
	case c.kind == kindBinary:
		return "HEX(" + n + ")", "hex(" + n + ")", 0
	case c.DataType == "float":
		return "CAST(" + n + " AS DOUBLE)", n, 32
	case c.kind == kindFloat:
		return "CAST(" + n + " AS DOUBLE)", n, 64
	}
	return n, n, 0
}

// chRow is one row in canonical text, its key text and hash.
type chRow struct {
	vals  []*string
	key   string
	hash  uint64
	bound []any // the master's raw key, for the next chunk's bounds
}

// canonical normalises the floats of a row read from either side and
// computes its key and hash.
func (m *chTable) canonical(vals []*string) chRow {
	h := fnv.New64a()
	var lenBuf [8]byte
	for i, v := range vals {
		if v != nil && m.floatBits[i] != 0 {
			s := normalFloat(*v, m.floatBits[i])
			vals[i] = &s
		}
		if v == nil {
			h.Write([]byte{'N'})
			continue
		}
		binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(*vals[i])))
		h.Write([]byte{'V'})
		h.Write(lenBuf[:])
		h.Write([]byte(*vals[i]))
	}
	keys := make([]string, len(m.t.key))
	for i, k := range m.t.key {
		keys[i] = strconv.Quote(deref(vals[k]))
	}
	return chRow{vals: vals, key: strings.Join(keys, ","), hash: h.Sum64()}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// normalFloat prints a float as the shortest text that reads back as the
// same value of its width; text that is no number stays as it is.
func normalFloat(s string, bits int) string {
	f, err := strconv.ParseFloat(s, bits)
	if err != nil {
		return s
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// keyCond is the condition "key > lower" (after) or "key <= upper" on one
// side, as nested comparisons column by column; lit renders the i-th key
// value.
func keyCond(cols []string, after bool, lit func(i int) string) string {
	strict, last := "<", "<="
	if after {
		strict, last = ">", ">"
	}
	var rec func(i int) string
	rec = func(i int) string {
		if i == len(cols)-1 {
			return cols[i] + " " + last + " " + lit(i)
		}
		lt := cols[i] + " " + strict + " " + lit(i) // lit is called once per use, in textual order (placeholders)
		eq := cols[i] + " = " + lit(i)
		return "(" + lt + " OR " + eq + " AND " + rec(i+1) + ")"
	}
	return rec(0)
}

// masterRange is the master's WHERE clause and arguments of (lower, upper];
// nil bounds are open.
func (m *chTable) masterRange(lower, upper []any) (string, []any) {
	var conds []string
	var args []any
	for _, b := range []struct {
		vals  []any
		after bool
	}{{lower, true}, {upper, false}} {
		if b.vals == nil {
			continue
		}
		conds = append(conds, keyCond(m.keyMaster, b.after, func(i int) string {
			args = append(args, b.vals[i])
			return "?"
		}))
	}
	return whereOf(conds), args
}

// chRange is ClickHouse's WHERE clause of (lower, upper] over the current
// rows.
func (m *chTable) chRange(lower, upper []any) string {
	conds := []string{"_deleted = 0"}
	if lower != nil {
		conds = append(conds, keyCond(m.keyCH, true, func(i int) string { return m.chLiteral(i, lower[i]) }))
	}
	if upper != nil {
		conds = append(conds, keyCond(m.keyCH, false, func(i int) string { return m.chLiteral(i, upper[i]) }))
	}
	return whereOf(conds)
}

func whereOf(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// chLiteral renders a key value of the master as a ClickHouse literal.
func (m *chTable) chLiteral(i int, v any) string {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case []byte:
		var b strings.Builder
		b.WriteByte('\'')
		for _, c := range x {
			fmt.Fprintf(&b, `\x%02X`, c)
		}
		b.WriteByte('\'')
		return b.String()
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(fmt.Sprint(v)) + "'"
}

// boundOf converts a raw key value of the master to a bound: integers as Go
// integers (exact beyond 2^53), binary as bytes, dates as text.
func (m *chTable) boundOf(i int, raw []byte) (any, error) {
	switch {
	case m.keyIsUnsigned[i]:
		return strconv.ParseUint(string(raw), 10, 64)
	case m.keyIsInt[i]:
		return strconv.ParseInt(string(raw), 10, 64)
	case m.keyIsBin[i]:
		return append([]byte(nil), raw...), nil
	}
	return string(raw), nil
}

// readMaster reads the master's rows of (lower, upper] in key order, at most
// limit (0: all).
func (m *chTable) readMaster(ctx context.Context, db *sql.DB, lower, upper []any, limit int) ([]chRow, error) {
	where, args := m.masterRange(lower, upper)
	q := "SELECT " + strings.Join(m.master, ", ") + " FROM " + m.masterFrom + where + " ORDER BY " + strings.Join(m.keyMaster, ", ")
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s on the master: %w", m.t, err)
	}
	defer rows.Close()
	return m.scanMaster(rows)
}

// scanMaster reads the master's rows of a chunk.
func (m *chTable) scanMaster(rows *sql.Rows) ([]chRow, error) {
	var out []chRow
	nk := len(m.t.key)
	raw := make([]sql.RawBytes, len(m.master))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("read %s on the master: %w", m.t, err)
		}
		r, err := m.masterRow(raw, nk)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// masterRow copies one scanned row of the master: its bound, then its
// canonical values.
func (m *chTable) masterRow(raw []sql.RawBytes, nk int) (chRow, error) {
	bound := make([]any, nk)
	for i := 0; i < nk; i++ {
		b, err := m.boundOf(i, raw[i])
		if err != nil {
			return chRow{}, fmt.Errorf("%s: key value %q: %w", m.t, raw[i], err)
		}
		bound[i] = b
	}
	vals := make([]*string, len(raw)-nk)
	for i, v := range raw[nk:] {
		if v != nil {
			s := string(v)
			vals[i] = &s
		}
	}
	r := m.canonical(vals)
	r.bound = bound
	return r, nil
}

// readCH reads ClickHouse's current rows of (lower, upper].
func (m *chTable) readCH(ctx context.Context, c *chClient, lower, upper []any) ([]chRow, error) {
	q := "SELECT " + strings.Join(m.ch, ", ") + " FROM " + m.chFrom + m.chRange(lower, upper)
	rows, err := c.query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read %s on the replica: %w", m.t, err)
	}
	out := make([]chRow, 0, len(rows))
	for _, r := range rows {
		if len(r) != len(m.ch) {
			return nil, fmt.Errorf("read %s on the replica: a row of %d fields, want %d", m.t, len(r), len(m.ch))
		}
		out = append(out, m.canonical(r))
	}
	return out, nil
}

// sameRows reports whether both sides hold the same rows: count and the sum
// of the row hashes.
func sameRows(a, b []chRow) bool {
	if len(a) != len(b) {
		return false
	}
	var ha, hb uint64
	for i := range a {
		ha += a[i].hash
		hb += b[i].hash
	}
	return ha == hb
}

// diffRows lists the rows that differ, in the master's key order, then the
// replica's extra rows.
func (m *chTable) diffRows(master, replica []chRow, quiet bool) []Diff {
	byKey := make(map[string]*chRow, len(replica))
	for i := range replica {
		byKey[replica[i].key] = &replica[i]
	}
	var out []Diff
	for i := range master {
		r := byKey[master[i].key]
		delete(byKey, master[i].key)
		switch {
		case r == nil:
			out = append(out, m.diff(Missing, &master[i], nil, quiet))
		case r.hash != master[i].hash:
			out = append(out, m.diff(Changed, &master[i], r, quiet))
		}
	}
	for i := range replica {
		if byKey[replica[i].key] != nil {
			out = append(out, m.diff(Extra, nil, &replica[i], quiet))
		}
	}
	return out
}

func (m *chTable) diff(kind string, master, replica *chRow, quiet bool) Diff {
	d := Diff{Kind: kind}
	either := master
	if either == nil {
		either = replica
	}
	for _, k := range m.t.key {
		d.Key = append(d.Key, Field{Column: m.t.cols[k].Name, Value: m.display(k, either.vals[k])})
	}
	if quiet {
		return d
	}
	if master != nil {
		d.Master = m.fields(master)
	}
	if replica != nil {
		d.Replica = m.fields(replica)
	}
	return d
}

func (m *chTable) fields(r *chRow) []Field {
	out := make([]Field, len(r.vals))
	for i, v := range r.vals {
		out[i] = Field{Column: m.t.cols[i].Name, Value: m.display(i, v)}
	}
	return out
}

// display renders a canonical value for the report.
func (m *chTable) display(i int, v *string) *string {
	if v == nil {
		return nil
	}
	c := m.t.cols[i]
	s := *v
	switch {
	case numeric(c):
	case c.kind == kindBinary:
		s = "0x" + s
	default:
		s = strconv.Quote(s)
	}
	return &s
}

// numeric reports a column whose canonical text is a number.
func numeric(c column) bool {
	switch c.kind {
	case kindInt, kindUint, kindDecimal, kindFloat:
		return true
	}
	return c.DataType == "bit" || c.DataType == "year"
}

// chWalk verifies one table chunk by chunk: the master's next ChunkRows rows
// by key fix the chunk's range, ClickHouse's current rows of that range are
// read, and a chunk whose count or hash sum differs is read again once the
// replica has reached the master's position.
type chWalk struct {
	v  *CHVerifier
	t  *Table
	tr *TableReport
	m  *chTable
}

func (w *chWalk) run(ctx context.Context) error {
	var lower []any
	for {
		if err := w.v.thr.take(ctx, w.v.cfg.ChunkRows); err != nil {
			return err
		}
		mrows, err := w.m.readMaster(ctx, w.v.master, lower, nil, w.v.cfg.ChunkRows)
		if err != nil {
			return err
		}
		var upper []any
		if len(mrows) == w.v.cfg.ChunkRows {
			upper = mrows[len(mrows)-1].bound
		}
		if err := w.chunk(ctx, lower, upper, mrows); err != nil {
			return err
		}
		if upper == nil {
			return nil
		}
		lower = upper
	}
}

// chunk compares one chunk and records what differs.
func (w *chWalk) chunk(ctx context.Context, lower, upper []any, mrows []chRow) error {
	crows, err := w.m.readCH(ctx, w.v.ch, lower, upper)
	if err != nil {
		return err
	}
	w.tr.Chunks++
	w.tr.Rows += int64(len(mrows))
	if !sameRows(mrows, crows) {
		if mrows, crows, err = w.recheck(ctx, lower, upper, mrows, crows); err != nil {
			return err
		}
		w.record(w.m.diffRows(mrows, crows, w.v.cfg.Quiet))
	}
	if p := w.v.cfg.Progress; p != nil {
		p(Progress{Table: w.tr.Table, Rows: w.tr.Rows})
	}
	return nil
}

// chRechecks bounds the re-reads of a chunk that differs while the master
// keeps changing its rows.
const chRechecks = 3

// recheck reads a chunk that differs again, both sides, each time once the
// replica's checkpoint holds the master's position read after the master's
// rows: a difference that stays is no replication lag. ClickHouse takes no
// locks, so a row the master changes between the reads shows as a
// difference until a read falls between two of its changes.
func (w *chWalk) recheck(ctx context.Context, lower, upper []any, mrows, crows []chRow) ([]chRow, []chRow, error) {
	if w.v.pos.static {
		return mrows, crows, nil
	}
	w.tr.Rechecked++
	for i := 0; i < chRechecks && !sameRows(mrows, crows); i++ {
		var err error
		if mrows, err = w.m.readMaster(ctx, w.v.master, lower, upper, 0); err != nil {
			return nil, nil, err
		}
		pos, err := w.v.pos.masterPos(ctx, w.v.master)
		if err != nil {
			return nil, nil, err
		}
		if err := w.v.pos.wait(ctx, pos); err != nil {
			return nil, nil, err
		}
		if crows, err = w.m.readCH(ctx, w.v.ch, lower, upper); err != nil {
			return nil, nil, err
		}
	}
	return mrows, crows, nil
}

func (w *chWalk) record(diffs []Diff) {
	w.tr.Differences += len(diffs)
	room := max(0, w.v.cfg.MaxDiffs-len(w.tr.Diffs))
	w.tr.Diffs = append(w.tr.Diffs, diffs[:min(room, len(diffs))]...)
}
