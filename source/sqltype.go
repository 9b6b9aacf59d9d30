package source

import (
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// dataTypes lists, per binlog type, the information_schema DATA_TYPE values a
// column of that type can have. A column's information_schema row is used only
// when its name and its type family both match the TABLE_MAP event; otherwise
// the table changed since the event was written and the event is the truth.
var dataTypes = map[byte][]string{
	mysql.MYSQL_TYPE_TINY:       {"tinyint"},
	mysql.MYSQL_TYPE_SHORT:      {"smallint"},
	mysql.MYSQL_TYPE_INT24:      {"mediumint"},
	mysql.MYSQL_TYPE_LONG:       {"int"},
	mysql.MYSQL_TYPE_LONGLONG:   {"bigint"},
	mysql.MYSQL_TYPE_NEWDECIMAL: {"decimal"},
	mysql.MYSQL_TYPE_FLOAT:      {"float"},
	mysql.MYSQL_TYPE_DOUBLE:     {"double"},
	mysql.MYSQL_TYPE_BIT:        {"bit"},
	mysql.MYSQL_TYPE_TIMESTAMP:  {"timestamp"},
	mysql.MYSQL_TYPE_TIMESTAMP2: {"timestamp"},
	mysql.MYSQL_TYPE_DATETIME:   {"datetime"},
	mysql.MYSQL_TYPE_DATETIME2:  {"datetime"},
	mysql.MYSQL_TYPE_NEWDATE:    {"date"},
	mysql.MYSQL_TYPE_TIME:       {"time"},
	mysql.MYSQL_TYPE_TIME2:      {"time"},
	mysql.MYSQL_TYPE_YEAR:       {"year"},
	mysql.MYSQL_TYPE_ENUM:       {"enum"},
	mysql.MYSQL_TYPE_SET:        {"set"},
	mysql.MYSQL_TYPE_STRING:     {"char", "binary", "inet4", "inet6", "uuid"},
	mysql.MYSQL_TYPE_VARCHAR:    {"varchar", "varbinary"},
	mysql.MYSQL_TYPE_VAR_STRING: {"varchar", "varbinary"},
	mysql.MYSQL_TYPE_BLOB: {"tinyblob", "blob", "mediumblob", "longblob",
		"tinytext", "text", "mediumtext", "longtext", "json"},
	mysql.MYSQL_TYPE_JSON: {"json"},
	mysql.MYSQL_TYPE_GEOMETRY: {"geometry", "point", "linestring", "polygon", "multipoint",
		"multilinestring", "multipolygon", "geometrycollection", "geomcollection"},
}

func compatible(rt byte, dataType string) bool {
	for _, t := range dataTypes[rt] {
		if t == dataType {
			return true
		}
	}
	return false
}

var geometryNames = []string{"geometry", "point", "linestring", "polygon", "multipoint",
	"multilinestring", "multipolygon", "geometrycollection"}

// mbMaxLen is the longest character of the character sets whose declared
// lengths synthType can give in characters.
var mbMaxLen = map[string]int{"utf8mb4": 4, "utf8mb3": 3, "utf8": 3, "latin1": 1, "ascii": 1, "binary": 1}

// synthType spells a column type from the TABLE_MAP event alone, for columns
// information_schema does not describe (the table changed or was dropped since
// the event was written). Lengths are exact for binary strings and derived
// from the character set's widest character for text.
func synthType(s colSpec, rt byte, length int) string {
	if name, ok := numericNames[rt]; ok {
		if s.unsigned {
			return name + " unsigned"
		}
		return name
	}
	if name, ok := plainNames[rt]; ok {
		return name
	}
	switch rt {
	case mysql.MYSQL_TYPE_NEWDECIMAL:
		return fmt.Sprintf("decimal(%d,%d)%s", s.meta>>8, s.meta&0xff, unsignedSuffix(s))
	case mysql.MYSQL_TYPE_BIT:
		return fmt.Sprintf("bit(%d)", (s.meta>>8)*8+s.meta&0xff)
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_TIME,
		mysql.MYSQL_TYPE_TIMESTAMP2, mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_TIME2:
		return temporalType(rt, s.meta)
	case mysql.MYSQL_TYPE_ENUM, mysql.MYSQL_TYPE_SET:
		return membersType(rt, s.members)
	case mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_BLOB:
		return stringType(s, rt, length)
	case mysql.MYSQL_TYPE_GEOMETRY:
		if s.geometry < uint64(len(geometryNames)) {
			return geometryNames[s.geometry]
		}
		return "geometry"
	}
	return fmt.Sprintf("type%d", rt)
}

// numericNames are the numeric types that take " unsigned" as they are.
var numericNames = map[byte]string{
	mysql.MYSQL_TYPE_TINY:     "tinyint",
	mysql.MYSQL_TYPE_SHORT:    "smallint",
	mysql.MYSQL_TYPE_INT24:    "mediumint",
	mysql.MYSQL_TYPE_LONG:     "int",
	mysql.MYSQL_TYPE_LONGLONG: "bigint",
	mysql.MYSQL_TYPE_FLOAT:    "float",
	mysql.MYSQL_TYPE_DOUBLE:   "double",
}

// plainNames are the types whose name the TABLE_MAP does not refine.
var plainNames = map[byte]string{
	mysql.MYSQL_TYPE_NEWDATE: "date",
	mysql.MYSQL_TYPE_YEAR:    "year(4)",
	mysql.MYSQL_TYPE_JSON:    "json",
}

func unsignedSuffix(s colSpec) string {
	if s.unsigned {
		return " unsigned"
	}
	return ""
}

// temporalType spells TIMESTAMP, DATETIME and TIME, with the fractional
// digits of the newer forms.
func temporalType(rt byte, fsp uint16) string {
	name := dataTypes[rt][0]
	if fsp > 0 && rt >= mysql.MYSQL_TYPE_TIMESTAMP2 {
		return fmt.Sprintf("%s(%d)", name, fsp)
	}
	return name
}

// membersType spells ENUM or SET with its members.
func membersType(rt byte, members []string) string {
	q := make([]string, len(members))
	for i, m := range members {
		q[i] = "'" + strings.ReplaceAll(m, "'", "''") + "'"
	}
	return map[byte]string{mysql.MYSQL_TYPE_ENUM: "enum", mysql.MYSQL_TYPE_SET: "set"}[rt] + "(" + strings.Join(q, ",") + ")"
}

// stringType spells CHAR, VARCHAR, TEXT and their binary forms.
func stringType(s colSpec, rt byte, length int) string {
	bin := s.charset == "binary"
	switch {
	case rt == mysql.MYSQL_TYPE_STRING && bin:
		return fmt.Sprintf("binary(%d)", length)
	case rt == mysql.MYSQL_TYPE_STRING:
		return "char" + charLength(s.charset, length)
	case rt == mysql.MYSQL_TYPE_BLOB:
		return blobType(s.meta, bin)
	case bin:
		return fmt.Sprintf("varbinary(%d)", s.meta)
	}
	return "varchar" + charLength(s.charset, int(s.meta))
}

// charLength spells a length of n bytes in characters of charset, "" for a
// character set whose widest character is unknown.
func charLength(charset string, n int) string {
	if w := mbMaxLen[charset]; w > 0 {
		return fmt.Sprintf("(%d)", n/w)
	}
	return ""
}

// blobType spells a BLOB or TEXT by the length of its length (meta).
func blobType(meta uint16, bin bool) string {
	sizes := []string{"", "tiny", "", "medium", "long"}
	prefix := ""
	if int(meta) < len(sizes) {
		prefix = sizes[meta]
	}
	if bin {
		return prefix + "blob"
	}
	return prefix + "text"
}
