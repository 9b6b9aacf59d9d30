package verify

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Hash functions. Both sides must compute the same function; New picks the
// fastest one both servers have. Each sums up a chunk (its row count and an
// aggregate of one value per row) and hashes single rows (for chunks that
// differ), from the row's canonical text (Table.canonical). docs/DESIGN.md,
// "Verify hash functions", has what each detects; docs/BENCHMARKS.md, what
// each costs.
const (
	// HashCRC32 (MariaDB 10.8 and later, the default there) sums up a chunk
	// by the BIT_XOR of CRC32C(CRC32(text)) over its rows (the outer CRC
	// makes the XOR safe against rows changed alike), a table without a
	// usable key by their SUM; a row is hashed with the 64 bits of HashCRC.
	HashCRC32 = "crc32"
	// HashCRC (MariaDB 10.8 and later) hashes a row's text with CRC32 and
	// CRC32C side by side, 64 bits, and sums up a chunk by the exact sum of
	// its rows' hashes. The text is built once per row, into a user variable
	// the second CRC reads (TestRowHashOneText holds MariaDB to evaluating
	// them left to right).
	HashCRC = "crc32+crc32c"
	// HashMD5 is the first 64 bits of MD5 of the same text, summed: any
	// MySQL or MariaDB.
	HashMD5 = "md5-64"
)

// value is the SQL expression a column is read and hashed through: FLOAT and
// DOUBLE through CAST(c AS DOUBLE), whose text is exact (a FLOAT's own text
// has 6 digits, so two different values could print alike).
func (c column) value() string {
	if c.kind == kindFloat {
		return "CAST(" + qi(c.Name) + " AS DOUBLE)"
	}
	return qi(c.Name)
}

// canonical is the expression of a row's canonical text, from which its hash
// is taken. It must be injective: each nullable column adds a NULL marker,
// each character or binary column its length, except the last one, which
// ends the text. docs/DESIGN.md, "Canonical row text", says why that is
// enough.
func (t *Table) canonical() string {
	binary := slices.ContainsFunc(t.cols, func(c column) bool { return c.kind == kindBinary })
	last := t.lastText()
	parts := make([]string, 0, 2*len(t.cols))
	for i, c := range t.cols {
		v := c.value()
		switch {
		case i == last:
		case c.kind == kindText || c.kind == kindBinary:
			parts = append(parts, c.length(binary), v)
		case c.Nullable:
			parts = append(parts, "IFNULL("+v+",'N')")
		default:
			parts = append(parts, v)
		}
	}
	if last >= 0 {
		parts = append(parts, t.cols[last].value())
	}
	return "CONCAT_WS('#'," + strings.Join(parts, ",") + ")"
}

// lastText is the column that goes at the end of the canonical text without
// a length or a NULL marker: the last character or binary column, when at
// least one field comes before it; -1 for none.
func (t *Table) lastText() int {
	if len(t.cols) < 2 {
		return -1
	}
	last := -1
	for i, c := range t.cols {
		if c.kind == kindText || c.kind == kindBinary {
			last = i
		}
	}
	return last
}

// length is the length field of a character or binary column in the
// canonical text. When every argument is text (no binary column in the
// table), CONCAT_WS converts values to one character set, where a multi-byte
// charset's byte length would not count the converted value: count
// characters then.
func (c column) length(binary bool) string {
	v := c.value()
	length := "LENGTH(" + v + ")"
	if !binary && multiByte(c.Charset) {
		length = "CHAR_LENGTH(" + v + ")"
	}
	if c.Nullable {
		length = "IFNULL(" + length + ",'N')"
	}
	return length
}

// multiByte reports a character set whose byte length differs from the length
// of the same value in utf8mb4 (single-byte sets and utf8 count the same).
func multiByte(cs string) bool {
	switch strings.ToLower(cs) {
	case "", "binary", "utf8mb4", "utf8mb3", "utf8", "ascii", "latin1", "latin2", "latin5", "latin7",
		"cp1250", "cp1251", "cp1256", "cp1257", "cp850", "cp852", "cp866", "dec8", "greek", "hebrew",
		"hp8", "keybcs2", "koi8r", "koi8u", "macce", "macroman", "swe7", "tis620", "armscii8", "geostd8":
		return false
	}
	return true
}

// rowHash is the 64-bit hash of one row, an unsigned integer expression
// (HashCRC32 hashes rows as HashCRC does).
func (t *Table) rowHash(fn string) string {
	c := t.canonical()
	if fn == HashMD5 {
		return "CAST(CONV(LEFT(MD5(" + c + "),16),16,10) AS UNSIGNED)"
	}
	return "(CAST(CRC32(@rowcast_verify_row := " + c + ") AS UNSIGNED) << 32 | CRC32C(@rowcast_verify_row))"
}

// placeholder is the SQL that takes one value of column c: DECIMAL values are
// cast to the column's type, so that comparisons are exact decimal ones, not
// floating-point (which is how MySQL compares a DECIMAL with a string).
func (c column) placeholder() string {
	if c.kind == kindDecimal {
		return "CAST(? AS " + decimalType(c.Type) + ")"
	}
	return "?"
}

// decimalType turns "decimal(12,2) unsigned" into "DECIMAL(12,2)".
func decimalType(columnType string) string {
	s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(strings.Replace(columnType, "zerofill", "", 1)), "unsigned"))
	if i := strings.IndexByte(s, '('); i >= 0 {
		return "DECIMAL" + strings.TrimSpace(s[i:])
	}
	return "DECIMAL(65,30)"
}

// arg converts a value as read (nil for NULL) into a placeholder argument
// for column c: integers as Go integers (exact beyond 2^53), bytes for
// binary columns, strings otherwise (the connection's utf8mb4 is converted to
// the column's character set by the server).
func (c column) arg(v []byte) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.kind {
	case kindInt:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("column %s: %q is not an integer: %w", c.Name, v, err)
		}
		return n, nil
	case kindUint:
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("column %s: %q is not an unsigned integer: %w", c.Name, v, err)
		}
		return n, nil
	case kindBinary:
		return v, nil
	default:
		return string(v), nil
	}
}

// keyVals are the values of a row's key columns, as read.
type keyVals [][]byte

// after is the predicate "key > lo", as nested comparisons the range
// optimizer turns into one range: MariaDB does not optimize row constructors
// like (a,b) > (?,?).
func (t *Table) after(lo keyVals) (string, []any, error) { return t.cmp(lo, ">", ">") }

// atMost is the predicate "key <= hi".
func (t *Table) atMost(hi keyVals) (string, []any, error) { return t.cmp(hi, "<", "<=") }

// cmp builds k1 op ? OR (k1 = ? AND (k2 op ? OR (k2 = ? AND k3 last ?))), and
// for a composite key adds the redundant k1 op= ? that pins the range.
func (t *Table) cmp(v keyVals, op, last string) (string, []any, error) {
	n := len(t.key)
	args := make([]any, 0, 2*n)
	var build func(i int) (string, error)
	build = func(i int) (string, error) {
		c := t.cols[t.key[i]]
		a, err := c.arg(v[i])
		if err != nil {
			return "", err
		}
		if i == n-1 {
			args = append(args, a)
			return qi(c.Name) + " " + last + " " + c.placeholder(), nil
		}
		args = append(args, a, a)
		rest, err := build(i + 1)
		if err != nil {
			return "", err
		}
		return "(" + qi(c.Name) + " " + op + " " + c.placeholder() + " OR (" + qi(c.Name) + " = " + c.placeholder() + " AND " + rest + "))", nil
	}
	s, err := build(0)
	if err != nil {
		return "", nil, err
	}
	if n > 1 {
		c := t.cols[t.key[0]]
		a, _ := c.arg(v[0])
		s = qi(c.Name) + " " + op + "= " + c.placeholder() + " AND " + s
		args = append([]any{a}, args...)
	}
	return s, args, nil
}

// rangeWhere is the WHERE clause of the chunk (lo, hi]; nil bounds are open.
func (t *Table) rangeWhere(lo, hi keyVals) (string, []any, error) {
	var conds []string
	var args []any
	if lo != nil {
		s, a, err := t.after(lo)
		if err != nil {
			return "", nil, err
		}
		conds, args = append(conds, s), append(args, a...)
	}
	if hi != nil {
		s, a, err := t.atMost(hi)
		if err != nil {
			return "", nil, err
		}
		conds, args = append(conds, s), append(args, a...)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// keyIn is the predicate that selects the rows of the given keys.
func (t *Table) keyIn(keys []keyVals) (string, []any, error) {
	args := make([]any, 0, len(keys)*len(t.key))
	if len(t.key) == 1 {
		c := t.cols[t.key[0]]
		ph := make([]string, len(keys))
		for i, k := range keys {
			a, err := c.arg(k[0])
			if err != nil {
				return "", nil, err
			}
			ph[i], args = c.placeholder(), append(args, a)
		}
		return qi(c.Name) + " IN (" + strings.Join(ph, ",") + ")", args, nil
	}
	ors := make([]string, len(keys))
	for i, k := range keys {
		ands := make([]string, len(t.key))
		for j, ci := range t.key {
			c := t.cols[ci]
			a, err := c.arg(k[j])
			if err != nil {
				return "", nil, err
			}
			ands[j], args = qi(c.Name)+" = "+c.placeholder(), append(args, a)
		}
		ors[i] = "(" + strings.Join(ands, " AND ") + ")"
	}
	return strings.Join(ors, " OR "), args, nil
}

// keyList is the key's columns, for ORDER BY.
func (t *Table) keyList() string {
	s := make([]string, len(t.key))
	for i, k := range t.key {
		s[i] = qi(t.cols[k].Name)
	}
	return strings.Join(s, ",")
}

// keySelect reads the key's values (FLOAT exactly, see column.value).
func (t *Table) keySelect() string {
	s := make([]string, len(t.key))
	for i, k := range t.key {
		s[i] = t.cols[k].value()
	}
	return strings.Join(s, ",")
}

func (t *Table) index() string {
	if t.keyName == "" {
		return ""
	}
	return " FORCE INDEX (" + qi(t.keyName) + ")"
}

// boundSQL finds the key of the n-th row after lo (the chunk's upper bound).
func (t *Table) boundSQL(lo keyVals, n int) (string, []any, error) {
	where, args, err := t.rangeWhere(lo, nil)
	if err != nil {
		return "", nil, err
	}
	return "SELECT " + t.keySelect() + " FROM " + t.quoted() + t.index() + where +
		" ORDER BY " + t.keyList() + " LIMIT " + strconv.Itoa(n-1) + ",1", args, nil
}

// aggregates sums up rows: their count and an aggregate of one value per
// row, as text (see the hash functions). keyed says the rows differ from
// each other (they hold a key), which HashCRC32's XOR needs.
func (t *Table) aggregates(fn string, keyed bool) string {
	if fn == HashCRC32 {
		agg := "SUM"
		if keyed {
			agg = "BIT_XOR"
		}
		return "COUNT(*), CAST(COALESCE(" + agg + "(CRC32C(CRC32(" + t.canonical() + "))),0) AS CHAR)"
	}
	// A sum, unlike XOR, does not cancel out two rows changed alike.
	return "COUNT(*), CAST(COALESCE(SUM(" + t.rowHash(fn) + "),0) AS CHAR)"
}

// hashSQL sums up the rows of a chunk (see aggregates).
func (t *Table) hashSQL(fn string, lo, hi keyVals) (string, []any, error) {
	where, args, err := t.rangeWhere(lo, hi)
	if err != nil {
		return "", nil, err
	}
	return "SELECT " + t.aggregates(fn, true) + " FROM " + t.quoted() + t.index() + where, args, nil
}

// rowHashSQL lists the key and the hash of every row of a chunk.
func (t *Table) rowHashSQL(fn string, lo, hi keyVals) (string, []any, error) {
	where, args, err := t.rangeWhere(lo, hi)
	if err != nil {
		return "", nil, err
	}
	return "SELECT " + t.keySelect() + "," + t.rowHash(fn) + " FROM " + t.quoted() + t.index() + where + " ORDER BY " + t.keyList(), args, nil
}

// rowsSQL reads whole rows (every stored column, then the row hash) by key.
func (t *Table) rowsSQL(fn string, keys []keyVals, lock bool) (string, []any, error) {
	in, args, err := t.keyIn(keys)
	if err != nil {
		return "", nil, err
	}
	s := "SELECT " + t.selectList() + "," + t.rowHash(fn) + " FROM " + t.quoted() + " WHERE " + in
	if lock {
		// Locking reads see the latest committed rows and keep writers off
		// them (and off the gaps of absent keys) until the transaction ends.
		s += " LOCK IN SHARE MODE"
	}
	return s, args, nil
}

func (t *Table) selectList() string {
	s := make([]string, len(t.cols))
	for i, c := range t.cols {
		s[i] = c.value()
	}
	return strings.Join(s, ",")
}

// upsertSQL writes rows (each the values of every stored column) over the
// replica's: an insert that updates the row already holding the key.
func (t *Table) upsertSQL(rows [][][]byte) (string, []any, error) {
	names := make([]string, len(t.cols))
	set := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = qi(c.Name)
		set[i] = qi(c.Name) + "=VALUES(" + qi(c.Name) + ")"
	}
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", len(t.cols)), ",") + ")"
	tuples := make([]string, len(rows))
	args := make([]any, 0, len(rows)*len(t.cols))
	for i, r := range rows {
		tuples[i] = one
		for j, c := range t.cols {
			a, err := c.arg(r[j])
			if err != nil {
				return "", nil, err
			}
			args = append(args, a)
		}
	}
	return "INSERT INTO " + t.quoted() + " (" + strings.Join(names, ",") + ") VALUES " + strings.Join(tuples, ",") +
		" ON DUPLICATE KEY UPDATE " + strings.Join(set, ","), args, nil
}

// deleteSQL removes the rows of the given keys.
func (t *Table) deleteSQL(keys []keyVals) (string, []any, error) {
	in, args, err := t.keyIn(keys)
	if err != nil {
		return "", nil, err
	}
	return "DELETE FROM " + t.quoted() + " WHERE " + in, args, nil
}

// wholeSQL sums up a whole table in one statement, as a chunk when keyed
// (the table's rows are known to differ from each other).
func (t *Table) wholeSQL(fn string, keyed, lock bool) string {
	s := "SELECT " + t.aggregates(fn, keyed) + " FROM " + t.quoted()
	if lock {
		s += " LOCK IN SHARE MODE"
	}
	return s
}
