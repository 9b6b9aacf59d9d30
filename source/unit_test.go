package source

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

func TestFormatInet6(t *testing.T) {
	// Expected text is what MariaDB 10.11 returns for CAST(CAST(x AS INET6) AS CHAR).
	cases := map[string]string{
		"00000000000000000000000000000000": "::",
		"00000000000000000000000000000001": "::1",
		"00000000000000000000000001020304": "::1.2.3.4",
		"00000000000000000000ffff01020304": "::ffff:1.2.3.4",
		"000000000000000000000000ffff0102": "::255.255.1.2",
		"0000000000000000ffff000001020304": "::ffff:0:102:304",
		"20010db8000000010001000100010001": "2001:db8::1:1:1:1:1",
		"00010000000000010000000000000001": "1:0:0:1::1",
		"00010000000000000000000000000000": "1::",
		"fe800000000000000001000000000000": "fe80::1:0:0:0",
		"00000000000000000000000100000000": "::1:0:0",
		"00000000000000000000000001020000": "::1.2.0.0",
		"ffffffffffffffffffffffffffffffff": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	}
	for in, want := range cases {
		b, _ := hex.DecodeString(in)
		if got, err := formatInet6(b); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	if _, err := formatInet6([]byte{1}); err == nil {
		t.Error("short INET6 accepted")
	}
	if got, _ := formatUUID(mustHex("6ccd780cbaba102695645b8c656024db")); got != "6ccd780c-baba-1026-9564-5b8c656024db" {
		t.Errorf("uuid %q", got)
	}
	if got, _ := formatInet4([]byte{10, 0, 0, 255}); got != "10.0.0.255" {
		t.Errorf("inet4 %q", got)
	}
}

func mustHex(s string) []byte { b, _ := hex.DecodeString(s); return b }

func TestLatin1(t *testing.T) {
	cases := map[string]string{
		"plain":               "plain",
		"\xe9":                "é",
		"\x80\x81\x8d\x9f":    "€\u0081\u008dŸ",
		"\xc6r\xf8sk\xf8bing": "Ærøskøbing",
		"\x00\xff":            "\x00ÿ",
	}
	for in, want := range cases {
		if got := decodeLatin1(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
	if decoderFor("utf16") != nil || decoderFor("utf8mb4") == nil {
		t.Error("decoderFor")
	}
}

func TestConverters(t *testing.T) {
	checkConv(t, "BIGINT UNSIGNED from -1", uintConv(mysql.MYSQL_TYPE_LONGLONG), int64(-1), uint64(18446744073709551615))
	checkConv(t, "MEDIUMINT UNSIGNED from -1", uintConv(mysql.MYSQL_TYPE_INT24), int32(-1), uint64(16777215))
	checkConv(t, "TINYINT UNSIGNED", uintConv(mysql.MYSQL_TYPE_TINY), uint8(255), uint64(255))
	set := setConv([]string{"a", "b", "c"})
	checkConv(t, "SET 5", set, int64(5), "a,c")
	checkConvRefuses(t, "SET bit outside members", set, int64(8))
	enum := enumConv([]string{"x", "y"})
	checkConv(t, "ENUM 0", enum, int64(0), "")
	checkConvRefuses(t, "ENUM index outside members", enum, int64(3))
	for in, want := range map[string]string{"12:34:56": "12:34:56", "1676:72:16": "-01:00:00", "1677:72:15": "-00:00:01", "838:59:59": "838:59:59"} {
		if got := fixOldTime(in); got != want {
			t.Errorf("old TIME %q: %q, want %q", in, got, want)
		}
	}
	checkConv(t, "TIME(3)", timeConv(3), "-00:00:00", "-00:00:00.000")
	checkUnsupportedColumns(t)
}

// checkConv checks that fn converts in to want.
func checkConv(t *testing.T, what string, fn convFn, in, want any) {
	t.Helper()
	if got, _ := fn(in); got != want {
		t.Errorf("%s: %v", what, got)
	}
}

// checkConvRefuses checks that fn refuses in.
func checkConvRefuses(t *testing.T, what string, fn convFn, in any) {
	t.Helper()
	if _, err := fn(in); err == nil {
		t.Errorf("%s accepted", what)
	}
}

// checkUnsupportedColumns checks the columns buildColumn refuses.
func checkUnsupportedColumns(t *testing.T) {
	t.Helper()
	if _, _, err := buildColumn(colSpec{name: "v", typ: mysql.MYSQL_TYPE_VECTOR}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("VECTOR: %v", err)
	}
	if _, _, err := buildColumn(colSpec{name: "x", typ: 0x99}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "unknown column type") {
		t.Errorf("unknown type: %v", err)
	}
	checkUnsupportedCharset(t)
}

// checkUnsupportedCharset checks that a column in a charset rowcast cannot
// convert is refused, or published as its bytes when RawUnsupportedCharsets
// asks for them.
func checkUnsupportedCharset(t *testing.T) {
	t.Helper()
	_, _, err := buildColumn(colSpec{name: "t", typ: mysql.MYSQL_TYPE_VARCHAR, meta: 40, charset: "sjis"})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), `"sjis"`) {
		t.Errorf("sjis: %v", err)
	}
	col, fn, err := buildColumn(colSpec{name: "t", typ: mysql.MYSQL_TYPE_VARCHAR, meta: 40, charset: "sjis", rawBytes: true})
	if err != nil || col.Kind.String() != "bytes" || col.SQLType != "varchar" {
		t.Errorf("sjis raw: %+v %v", col, err)
	} else if v, _ := fn("\x82\xa0"); string(v.([]byte)) != "\x82\xa0" {
		t.Errorf("sjis raw value %v", v)
	}
}

func TestClassifyAndDDLTarget(t *testing.T) {
	classes := map[string]stmtClass{
		"BEGIN": stmtBegin, "COMMIT": stmtCommit, "ROLLBACK": stmtRollback, "ROLLBACK TO `s1`": stmtRollbackTo,
		"SAVEPOINT `s1`": stmtSavepoint, "XA START 'x'": stmtXA, "insert into t values (1)": stmtDML,
		"/* c */ DELETE FROM t": stmtDML, "CREATE TABLE t (id int)": stmtDDL, "/*!40000 ALTER TABLE t DISABLE KEYS */": stmtDDL,
		"-- x\nUPDATE t SET a=1": stmtDML, "GRANT SELECT ON *.* TO x": stmtDDL,
	}
	for stmt, want := range classes {
		if got := classify(stmt); got != want {
			t.Errorf("classify(%q) = %d, want %d", stmt, got, want)
		}
	}
	targets := []struct{ schema, stmt, db, table string }{
		{"app", "CREATE TABLE t (id int)", "app", "t"},
		{"app", "create table if not exists `o``dd`.`x y` (id int)", "o`dd", "x y"},
		{"app", "ALTER TABLE other.t ADD c INT", "other", "t"},
		{"app", "DROP TABLE IF EXISTS `t` /* generated by server */", "app", "t"},
		{"app", "TRUNCATE t", "app", "t"},
		{"app", "RENAME TABLE a TO b", "app", "a"},
		{"app", "CREATE UNIQUE INDEX i ON s.t (c)", "s", "t"},
		{"app", "DROP INDEX i ON t", "app", "t"},
		{"", "CREATE DATABASE `newdb`", "newdb", ""},
		{"app", "DROP SCHEMA IF EXISTS gone", "gone", ""},
		{"app", "CREATE VIEW v AS SELECT 1", "app", ""},
		{"", "GRANT SELECT ON *.* TO u", "", ""},
		{"app", `CREATE TABLE "s"."x ""y""" ("id" INT)`, "s", `x "y"`}, // ANSI_QUOTES
	}
	for _, tc := range targets {
		if db, table := ddlTarget(tc.schema, tc.stmt); db != tc.db || table != tc.table {
			t.Errorf("ddlTarget(%q, %q) = %q, %q; want %q, %q", tc.schema, tc.stmt, db, table, tc.db, tc.table)
		}
	}
	checkFilter(t)
}

// checkFilter checks which tables and DDL a filter with Include and
// Exclude publishes.
func checkFilter(t *testing.T) {
	t.Helper()
	cfg := Config{Include: []string{`^app\.`, `^other\.keep$`}, Exclude: []string{`\.tmp_`}}
	cfg.setDefaults()
	f, _ := newFilter(&cfg)
	for key, want := range map[[2]string]bool{
		{"app", "t"}: true, {"app", "tmp_x"}: false, {"other", "keep"}: true, {"other", "t"}: false,
		{"rowcast", "t"}: false, {"zzz", "t"}: false,
	} {
		if got := f.table(key[0], key[1]); got != want {
			t.Errorf("filter %v = %v", key, got)
		}
	}
	if !f.ddl("app", "CREATE DATABASE app") || f.ddl("rowcast", "CREATE TABLE ck (id int)") || f.ddl("app", "ALTER TABLE tmp_1 ADD c INT") {
		t.Error("DDL filter")
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config { c := Config{}; c.setDefaults(); return c }
	if c := good(); c.Validate() != nil || c.ServerID != DefaultServerID || c.HeartbeatPeriod != time.Second || c.BookkeepingSchema != "rowcast" {
		t.Errorf("defaults: %+v %v", c, c.Validate())
	}
	cases := map[string]func(*Config){
		"Addr":            func(c *Config) { c.Addr = "nohostport" },
		"port":            func(c *Config) { c.Addr = "h:99999" },
		"ServerID":        func(c *Config) { c.ServerID = 0 },
		"Flavor":          func(c *Config) { c.Flavor = "oracle" },
		"Include[0]":      func(c *Config) { c.Include = []string{"("} },
		"ReadTimeout":     func(c *Config) { c.ReadTimeout = c.HeartbeatPeriod },
		"HeartbeatPeriod": func(c *Config) { c.HeartbeatPeriod = -1 },
		"EventBuffer":     func(c *Config) { c.EventBuffer = -1 },
	}
	for field, edit := range cases {
		c := good()
		edit(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
}
