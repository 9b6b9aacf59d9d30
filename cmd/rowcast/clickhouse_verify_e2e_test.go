package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// TestClickHouseVerify replicates the type matrix and a 300-row table into
// ClickHouse with `rowcast run`, then runs `rowcast verify --replica olap`:
// the equal replica passes (exit 0, every type's value compared), and rows
// changed, deleted and added directly in ClickHouse are found by key
// (exit 1).
func TestClickHouseVerify(t *testing.T) {
	r := olapCluster(t)
	p := startPublishing(t, "run", r.cfg, r.topic)
	db := createOnMaster(t, r.database)
	fillTypeMatrix(t, r.database)
	testenv.Exec(t, db,
		"CREATE TABLE acc (id BIGINT UNSIGNED PRIMARY KEY, balance BIGINT NOT NULL, note VARCHAR(20) NULL, f FLOAT NULL, d DATETIME(6) NULL)",
		"INSERT INTO acc SELECT seq, seq * 10, IF(seq % 3 = 0, NULL, CONCAT('n', seq)), seq / 7, '2024-02-29 12:00:00.5' + INTERVAL seq MINUTE FROM seq_1_to_300",
		"CREATE TABLE pairs (a INT NOT NULL, b VARBINARY(8) NOT NULL, at DATETIME NOT NULL, v INT NULL, PRIMARY KEY (a, b, at))",
		"INSERT INTO pairs SELECT seq % 3, UNHEX(LPAD(HEX(seq % 7), 4, '0')), '2024-01-01' + INTERVAL seq HOUR, seq FROM seq_1_to_120")
	waitFor(t, 2*time.Minute, "ClickHouse to hold the master's rows", func() bool {
		data, err := chQuery("SELECT toString(count()) FROM `" + r.database + "`.acc FINAL WHERE _deleted = 0")
		return err == nil && len(data) == 1 && fmt.Sprint(data[0][0]) == "300" && chCount(r.database, "pairs") == "120" &&
			compareMatrix(masterMatrix(t, testenv.DBAt(t, testenv.Master, r.database)), chMatrix(r.database)) == ""
	})

	code, out, errs := runVerifyCmd(t, "--config", r.cfg, "--replica", "olap", "--chunk-rows", "50")
	if code != 0 {
		t.Fatalf("equal replica: exit %d\n%s\n%s\nrowcast run:\n%s", code, out, errs, lastLines(p.out.String(), 20))
	}
	wantLines(t, out, r.database+".acc: equal  rows 300, chunks 7", r.database+".tm: equal  rows 4", r.database+".pairs: equal  rows 120, chunks 3", "EQUAL: replica olap vs master db1")

	const later = "4611686018427387904" // a _version above every one the sink wrote
	for _, q := range []string{
		"INSERT INTO `" + r.database + "`.acc (id, balance, note, f, d, _version, _deleted) VALUES (7, 71, 'n7', 1, '2024-02-29 12:07:00.500000', " + later + ", 0)",
		"INSERT INTO `" + r.database + "`.acc (id, balance, _version, _deleted) VALUES (250, 2500, " + later + ", 1)",
		"INSERT INTO `" + r.database + "`.acc (id, balance, _version, _deleted) VALUES (5000, 1, " + later + ", 0)",
	} {
		if _, err := chQuery(q); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs = runVerifyCmd(t, "--config", r.cfg, "--replica", "olap", "--chunk-rows", "50")
	if code != 1 {
		t.Fatalf("tampered replica: exit %d, want 1\n%s\n%s", code, out, errs)
	}
	wantLines(t, out, r.database+".acc: 3 difference(s)", "changed id=7", "missing id=250", "extra   id=5000",
		"master:  id=7, balance=70,", "replica: id=7, balance=71,", r.database+".tm: equal", "DIFFERENT: replica olap vs master db1")
	t.Logf("the report on the tampered replica:\n%s", out)
	if code, out, _ = runVerifyCmd(t, "--config", r.cfg, "--replica", "olap", "--repair"); code != 2 {
		t.Fatalf("--repair on ClickHouse: exit %d, want 2\n%s", code, out)
	}
	p.stop(t)
}

// fillTypeMatrix creates the table tm of every type of the matrix on the
// master, as TestClickHouseTypeMatrix does, with four rows of edge values.
func fillTypeMatrix(t *testing.T, database string) {
	t.Helper()
	db := testenv.DBAt(t, testenv.Master, database)
	defs, names := []string{"id INT PRIMARY KEY"}, []string{"id"}
	for _, c := range testenv.TypeMatrix {
		defs = append(defs, fmt.Sprintf("`%s` %s NULL", c.Name, strings.TrimSuffix(c.Def, " NULL")))
		names = append(names, "`"+c.Name+"`")
	}
	testenv.Exec(t, db, "SET SESSION sql_mode = ''", "CREATE TABLE tm ("+strings.Join(defs, ", ")+")")
	for row := 0; row < 4; row++ {
		vals := []string{fmt.Sprint(row + 1)}
		for _, c := range testenv.TypeMatrix {
			vals = append(vals, c.Values[row])
		}
		testenv.Exec(t, db, "INSERT INTO tm ("+strings.Join(names, ", ")+") VALUES ("+strings.Join(vals, ", ")+")")
	}
}

// chCount is the number of current rows of a ClickHouse table, as text.
func chCount(database, table string) string {
	data, err := chQuery("SELECT toString(count()) FROM `" + database + "`." + table + " FINAL WHERE _deleted = 0")
	if err != nil || len(data) != 1 {
		return ""
	}
	return fmt.Sprint(data[0][0])
}
