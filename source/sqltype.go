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
	uns := ""
	if s.unsigned {
		uns = " unsigned"
	}
	chars := func(n int) string {
		if w := mbMaxLen[s.charset]; w > 0 {
			return fmt.Sprintf("(%d)", n/w)
		}
		return ""
	}
	bin := s.charset == "binary"
	switch rt {
	case mysql.MYSQL_TYPE_TINY:
		return "tinyint" + uns
	case mysql.MYSQL_TYPE_SHORT:
		return "smallint" + uns
	case mysql.MYSQL_TYPE_INT24:
		return "mediumint" + uns
	case mysql.MYSQL_TYPE_LONG:
		return "int" + uns
	case mysql.MYSQL_TYPE_LONGLONG:
		return "bigint" + uns
	case mysql.MYSQL_TYPE_NEWDECIMAL:
		return fmt.Sprintf("decimal(%d,%d)%s", s.meta>>8, s.meta&0xff, uns)
	case mysql.MYSQL_TYPE_FLOAT:
		return "float" + uns
	case mysql.MYSQL_TYPE_DOUBLE:
		return "double" + uns
	case mysql.MYSQL_TYPE_BIT:
		return fmt.Sprintf("bit(%d)", (s.meta>>8)*8+s.meta&0xff)
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_TIME,
		mysql.MYSQL_TYPE_TIMESTAMP2, mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_TIME2:
		name := dataTypes[rt][0]
		if fsp := s.meta; fsp > 0 && rt >= mysql.MYSQL_TYPE_TIMESTAMP2 {
			return fmt.Sprintf("%s(%d)", name, fsp)
		}
		return name
	case mysql.MYSQL_TYPE_NEWDATE:
		return "date"
	case mysql.MYSQL_TYPE_YEAR:
		return "year(4)"
	case mysql.MYSQL_TYPE_ENUM, mysql.MYSQL_TYPE_SET:
		q := make([]string, len(s.members))
		for i, m := range s.members {
			q[i] = "'" + strings.ReplaceAll(m, "'", "''") + "'"
		}
		return map[byte]string{mysql.MYSQL_TYPE_ENUM: "enum", mysql.MYSQL_TYPE_SET: "set"}[rt] + "(" + strings.Join(q, ",") + ")"
	case mysql.MYSQL_TYPE_STRING:
		if bin {
			return fmt.Sprintf("binary(%d)", length)
		}
		return "char" + chars(length)
	case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING:
		if bin {
			return fmt.Sprintf("varbinary(%d)", s.meta)
		}
		return "varchar" + chars(int(s.meta))
	case mysql.MYSQL_TYPE_BLOB:
		sizes := []string{"", "tiny", "", "medium", "long"}
		prefix := ""
		if int(s.meta) < len(sizes) {
			prefix = sizes[s.meta]
		}
		if bin {
			return prefix + "blob"
		}
		return prefix + "text"
	case mysql.MYSQL_TYPE_JSON:
		return "json"
	case mysql.MYSQL_TYPE_GEOMETRY:
		if s.geometry < uint64(len(geometryNames)) {
			return geometryNames[s.geometry]
		}
		return "geometry"
	}
	return fmt.Sprintf("type%d", rt)
}
