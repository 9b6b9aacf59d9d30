package testenv

// TypeColumn is one column of the type matrix: its name, its definition, and
// four edge values as SQL expressions (row ids 1 to 4; row 5 is all NULL).
type TypeColumn struct {
	Name, Def string
	Values    [4]string
}

// BigJSON is a JSON document of about 1 MB, as an SQL expression.
const BigJSON = `CONCAT('{"k": "', REPEAT('x', 1000000), '", "n": [1, 2.5, -3e10]}')`

// TypeMatrix covers every column type MariaDB 10.11 offers, with edge values:
// minima and maxima, unsigned maxima, zero and fractional dates, negative
// TIME, 4-byte UTF-8, latin1, large JSON and BLOB, BIT, ENUM, SET, spatial,
// INET4/INET6/UUID. The source tests decode it; the end-to-end tests
// replicate it and compare checksums.
var TypeMatrix = []TypeColumn{
	{"ti", "TINYINT", [4]string{"-128", "127", "5", "0"}},
	{"tiu", "TINYINT UNSIGNED", [4]string{"0", "255", "7", "128"}},
	{"bo", "BOOL", [4]string{"0", "1", "TRUE", "-1"}},
	{"si", "SMALLINT", [4]string{"-32768", "32767", "-2", "0"}},
	{"siu", "SMALLINT UNSIGNED", [4]string{"0", "65535", "2", "32768"}},
	{"mi", "MEDIUMINT", [4]string{"-8388608", "8388607", "-3", "0"}},
	{"miu", "MEDIUMINT UNSIGNED", [4]string{"0", "16777215", "3", "8388608"}},
	{"i", "INT", [4]string{"-2147483648", "2147483647", "-4", "0"}},
	{"iu", "INT UNSIGNED", [4]string{"0", "4294967295", "4", "2147483648"}},
	{"bi", "BIGINT", [4]string{"-9223372036854775808", "9223372036854775807", "-5", "0"}},
	{"biu", "BIGINT UNSIGNED", [4]string{"0", "18446744073709551615", "5", "9223372036854775808"}},
	{"dec1", "DECIMAL(10,4)", [4]string{"-999999.9999", "999999.9999", "-12.34", "0"}},
	{"dec2", "DECIMAL(65,30)", [4]string{
		"-99999999999999999999999999999999999.999999999999999999999999999999",
		"99999999999999999999999999999999999.999999999999999999999999999999", "0.000000000000000000000000000001", "-0.5"}},
	{"dec3", "DECIMAL(5,0) UNSIGNED", [4]string{"0", "99999", "42", "1"}},
	{"dec4", "NUMERIC(3,3)", [4]string{"-0.999", "0.999", "0.001", "0"}},
	{"f", "FLOAT", [4]string{"-1.5", "16777216", "0.1", "1.1754943508222875e-38"}},
	{"d", "DOUBLE", [4]string{"-1.7976931348623157e308", "1.7976931348623157e308", "0.1", "5e-324"}},
	{"b1", "BIT(1)", [4]string{"b'0'", "b'1'", "1", "0"}},
	{"b10", "BIT(10)", [4]string{"0", "b'1111111111'", "b'1010'", "512"}},
	{"b64", "BIT(64)", [4]string{"0", "b'1111111111111111111111111111111111111111111111111111111111111111'", "1", "b'1000000000000000000000000000000000000000000000000000000000000000'"}},
	{"dt", "DATE", [4]string{"'0000-00-00'", "'9999-12-31'", "'2024-02-29'", "'1000-01-01'"}},
	{"dtm", "DATETIME", [4]string{"'0000-00-00 00:00:00'", "'9999-12-31 23:59:59'", "'2024-05-06 07:08:09'", "'1000-01-01 00:00:00'"}},
	{"dtm3", "DATETIME(3)", [4]string{"'0000-00-00 00:00:00.000'", "'9999-12-31 23:59:59.999'", "'2020-02-29 12:34:56.789'", "'2001-01-01 00:00:00'"}},
	{"dtm6", "DATETIME(6)", [4]string{"'0000-00-00 00:00:00'", "'9999-12-31 23:59:59.999999'", "'2024-05-06 07:08:09.123456'", "'2024-05-06 07:08:09.000001'"}},
	{"ts", "TIMESTAMP NULL", [4]string{"'1970-01-01 00:00:01'", "'2038-01-19 03:14:07'", "'2024-05-06 07:08:09'", "'0000-00-00 00:00:00'"}},
	{"ts6", "TIMESTAMP(6) NULL", [4]string{"'0000-00-00 00:00:00'", "'2038-01-19 03:14:07.999999'", "'2024-05-06 07:08:09.000001'", "'2001-09-09 01:46:40.5'"}},
	{"tm", "TIME", [4]string{"'-838:59:59'", "'838:59:59'", "'-01:02:03'", "'00:00:00'"}},
	{"tm2", "TIME(2)", [4]string{"'-00:00:00.50'", "'12:00:00'", "'100:00:00.99'", "'-00:00:01.01'"}},
	{"tm6", "TIME(6)", [4]string{"'-838:59:59.000000'", "'838:59:59.000000'", "'-00:00:00.000001'", "'00:00:00'"}},
	{"yr", "YEAR", [4]string{"0", "2155", "2024", "1901"}},
	{"ch", "CHAR(10)", [4]string{"''", "'abc   '", "'  lead'", "'😀x'"}},
	{"vc", "VARCHAR(100)", [4]string{"''", "'😀 4-byte 𝄞 ñ'", "'trail   '", "'a''b\\\\c'"}},
	{"vcl", "VARCHAR(50) CHARACTER SET latin1", [4]string{"''", "'é€‚ÿ'", "'plain'", "'Ærøskøbing'"}},
	{"chl", "CHAR(5) CHARACTER SET latin1", [4]string{"''", "'ÿé  '", "'abc'", "'ß'"}},
	{"asc", "VARCHAR(10) CHARACTER SET ascii", [4]string{"''", "'~!@'", "'x'", "' '"}},
	{"u3", "VARCHAR(10) CHARACTER SET utf8mb3", [4]string{"''", "'ñ中'", "'y'", "'€'"}},
	{"tt", "TINYTEXT", [4]string{"''", "REPEAT('t', 255)", "'x'", "'é'"}},
	{"tx", "TEXT", [4]string{"''", "'trailing spaces   '", "'😀'", "REPEAT('ab', 1000)"}},
	{"mt", "MEDIUMTEXT", [4]string{"''", "'m'", "'mm'", "REPEAT('m', 70000)"}},
	{"lt", "LONGTEXT", [4]string{"''", "'l'", "'ll'", "'𝄞'"}},
	{"txl", "TEXT CHARACTER SET latin1", [4]string{"''", "'Ærøskøbing €'", "'é'", "'\\0x'"}},
	{"bn", "BINARY(8)", [4]string{"''", "0x0102", "0x0000000000000001", "0x0100000000000000"}},
	{"vb", "VARBINARY(20)", [4]string{"''", "0x00FF00", "0xDEADBEEF", "0x00"}},
	{"tb", "TINYBLOB", [4]string{"''", "0x00", "0x01", "REPEAT(0xFF, 255)"}},
	{"bl", "BLOB", [4]string{"''", "0xDEADBEEF00", "0x00", "REPEAT(0x7F, 65535)"}},
	{"mb", "MEDIUMBLOB", [4]string{"''", "0x00", "0x80", "REPEAT(0x00, 70000)"}},
	{"lb", "LONGBLOB", [4]string{"''", "0x01", "0x0203", "REPEAT(UNHEX('00FF7F80'), 262144)"}},
	{"en", "ENUM('a','b','ç')", [4]string{"'a'", "'ç'", "'b'", "'not a member'"}},
	{"st", "SET('x','y','z')", [4]string{"''", "'x,y,z'", "'z,x'", "'y'"}},
	{"js", "JSON", [4]string{"'{}'", `'{"a": [1, 2.5, "é", null, true], "b": {"c": "😀"}}'`, "'[]'", BigJSON}},
	{"g", "GEOMETRY", [4]string{"ST_GeomFromText('POINT(0 0)')", "ST_GeomFromText('LINESTRING(0 0,1 1)', 4326)", "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')", "ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 2))')"}},
	{"pt", "POINT", [4]string{"POINT(0, 0)", "POINT(-1.7976931348623157e308, 1e-300)", "POINT(1.5, 2.5)", "ST_GeomFromText('POINT(3 4)', 3857)"}},
	{"pg", "POLYGON", [4]string{"ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))')", "ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,3 2,3 3,2 2))')", "ST_GeomFromText('POLYGON((1 1,2 1,2 2,1 1))')", "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')"}},
	{"ls", "LINESTRING", [4]string{"ST_GeomFromText('LINESTRING(0 0,1 1)')", "ST_GeomFromText('LINESTRING(0 0,1 1,2 2)')", "ST_GeomFromText('LINESTRING(5 5,6 6)')", "ST_GeomFromText('LINESTRING(0 0,0 1)')"}},
	{"mpg", "MULTIPOLYGON", [4]string{"ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))')", "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)),((5 5,6 5,6 6,5 5)))')", "ST_GeomFromText('MULTIPOLYGON(((0 0,2 0,2 2,0 0)))')", "ST_GeomFromText('MULTIPOLYGON(((0 0,3 0,3 3,0 0)))')"}},
	{"gc", "GEOMETRYCOLLECTION", [4]string{"ST_GeomFromText('GEOMETRYCOLLECTION(POINT(0 0))')", "ST_GeomFromText('GEOMETRYCOLLECTION(POINT(0 0),LINESTRING(0 0,1 1))')", "ST_GeomFromText('GEOMETRYCOLLECTION EMPTY')", "ST_GeomFromText('GEOMETRYCOLLECTION(POINT(9 9))')"}},
	{"i6", "INET6", [4]string{"'::'", "'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'", "'2001:db8:0:1:1:1:1:1'", "'1::'"}},
	{"i6b", "INET6", [4]string{"'::1.2.3.4'", "'::ffff:1.2.3.4'", "'fe80::1:0:0:0'", "'1:0:0:1:0:0:0:1'"}},
	{"i4", "INET4", [4]string{"'0.0.0.0'", "'255.255.255.255'", "'192.168.1.1'", "'10.0.0.0'"}},
	{"u", "UUID", [4]string{"'00000000-0000-0000-0000-000000000000'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'", "'6ccd780c-baba-1026-9564-5b8c656024db'", "'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c00'"}},
	{"u7", "UUID", [4]string{"'0192d4e6-2f2b-7c6e-8a1f-9b1c1d1e1f20'", "'123e4567-e89b-12d3-a456-426614174000'", "'f81d4fae-7dec-11d0-a765-00a0c91e6bf6'", "'00000000-0000-1000-8000-000000000000'"}},
}
