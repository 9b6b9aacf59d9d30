package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// chURL is the local ClickHouse's HTTP interface.
func chURL() string { return testenv.ClickHouseURL() + "/" }

// chQuery runs a ClickHouse statement; a SELECT's rows come back from
// JSONCompact with numbers as their exact text.
func chQuery(q string) ([][]any, error) {
	if strings.HasPrefix(q, "SELECT") {
		q += " FORMAT JSONCompact"
	}
	resp, err := http.Post(chURL(), "text/plain", strings.NewReader(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("clickhouse: %s", bytes.TrimSpace(body))
	}
	if !strings.Contains(q, "FORMAT JSONCompact") {
		return nil, nil
	}
	var out struct{ Data [][]any }
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// olapCluster is a config whose only replica is the local ClickHouse
// (olap), replicating one database of its own; the ClickHouse database and
// the topic's checkpoint rows are dropped at cleanup.
func olapCluster(t *testing.T) replication { return olapClusterFrom(t, "current") }

// olapClusterFrom is olapCluster whose reader starts at source.start.
func olapClusterFrom(t *testing.T, start string) replication {
	t.Helper()
	testenv.Need(t, "clickhouse_http")
	r := replication{topic: testenv.CreateTopic(t, 1), database: testenv.UniqueName(t, "rc")}
	text := fmt.Sprintf(`cluster: e2e
master: db1
nodes:
  - {name: db1, dsn: "root@tcp(%s)/"}
  - {name: olap, kind: clickhouse, dsn: %q}
replicas: [olap]
kafka:
  brokers: [%q]
  topic: %s
source:
  include: ['^%s\.']
  heartbeat_interval: 1s
  start: %s
  server_id: %d
http: "off"
`, testenv.Addr("db1"), chURL(), testenv.Addr("kafka"), r.topic, r.database, start, 100000+rand.IntN(1<<30))
	r.cfg = filepath.Join(t.TempDir(), "rowcast.yaml")
	if err := os.WriteFile(r.cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		chQuery("DROP DATABASE IF EXISTS `" + r.database + "`")
		for _, tbl := range []string{"checkpoints", "bootstrap"} {
			chQuery("ALTER TABLE rowcast." + tbl + " DELETE WHERE topic = '" + r.topic + "'")
		}
	})
	return r
}

// createOnMaster creates the test's database on the master once the reader
// runs.
func createOnMaster(t *testing.T, database string) *sql.DB {
	t.Helper()
	master := testenv.DB(t, testenv.Master)
	testenv.Exec(t, master, "CREATE DATABASE `"+database+"`")
	t.Cleanup(func() { master.Exec("DROP DATABASE IF EXISTS `" + database + "`") })
	return testenv.DBAt(t, testenv.Master, database)
}

// matrixExpr is how a type matrix column is compared: binary values as hex
// on both sides, BIT and YEAR as numbers, floats parsed.
func matrixExpr(c testenv.TypeColumn) (master, ch string, float bool) {
	name := "`" + c.Name + "`"
	def := strings.ToUpper(c.Def)
	switch {
	case strings.Contains(def, "BINARY") || strings.Contains(def, "BLOB") || isSpatial(def):
		return "HEX(" + name + ")", "hex(" + name + ")", false
	case strings.HasPrefix(def, "BIT") || def == "YEAR":
		return name + "+0", name, false
	case def == "FLOAT" || def == "DOUBLE": // the master prints FLOAT with 6 digits: widen it exactly
		return "CAST(" + name + " AS DOUBLE)", name, true
	}
	return name, name, false
}

func isSpatial(def string) bool {
	for _, g := range []string{"GEOMETRY", "POINT", "POLYGON", "LINESTRING"} {
		if strings.Contains(def, g) {
			return true
		}
	}
	return false
}

// TestClickHouseTypeMatrix replicates every MariaDB column type with edge
// values (inserted, updated, deleted, NULL, a key change) into ClickHouse
// with `rowcast run`, and compares every value with the master's.
func TestClickHouseTypeMatrix(t *testing.T) {
	r := olapCluster(t)
	p := startPublishing(t, "run", r.cfg, r.topic)
	db := createOnMaster(t, r.database)
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
	testenv.Exec(t, db, "INSERT INTO tm (id) VALUES (5)", "BEGIN",
		"UPDATE tm t1 JOIN tm t2 ON t1.id = 3 AND t2.id = 2 SET "+setFrom("t1", "t2"),
		"DELETE FROM tm WHERE id = 4", "COMMIT", "UPDATE tm SET id = 40 WHERE id = 1")
	want := masterMatrix(t, db)
	diff := "not read yet"
	for deadline := time.Now().Add(2 * time.Minute); diff != ""; time.Sleep(500 * time.Millisecond) {
		if diff = compareMatrix(want, chMatrix(r.database)); diff != "" && time.Now().After(deadline) {
			t.Fatalf("ClickHouse does not hold the master's type matrix: %s\nrowcast run output:\n%s", diff, lastLines(p.out.String(), 30))
		}
	}
	p.stop(t)
}

// lastLines is the end of a process's output.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func masterMatrix(t *testing.T, db *sql.DB) [][]string {
	t.Helper()
	exprs := []string{"id"}
	for _, c := range testenv.TypeMatrix {
		m, _, _ := matrixExpr(c)
		exprs = append(exprs, m)
	}
	rows, err := db.Query("SELECT " + strings.Join(exprs, ", ") + " FROM tm ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(exprs))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = map[bool]string{true: v.String, false: "NULL"}[v.Valid]
		}
		out = append(out, row)
	}
	return out
}

// chMatrix reads the current rows of tm from ClickHouse; nil until it can.
func chMatrix(database string) [][]string {
	exprs := []string{"toString(id)"}
	for _, c := range testenv.TypeMatrix {
		_, e, _ := matrixExpr(c)
		exprs = append(exprs, e)
	}
	data, err := chQuery("SELECT " + strings.Join(exprs, ", ") + " FROM `" + database + "`.tm FINAL WHERE _deleted = 0 ORDER BY id")
	if err != nil {
		return nil
	}
	out := make([][]string, len(data))
	for i, r := range data {
		out[i] = make([]string, len(r))
		for j, v := range r {
			out[i][j] = "NULL"
			if v != nil {
				out[i][j] = fmt.Sprint(v)
			}
		}
	}
	return out
}

// compareMatrix names the first value that differs, "" when none does.
func compareMatrix(want, got [][]string) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		for j := range want[i] {
			if !sameValue(j, want[i][j], got[i][j]) {
				return fmt.Sprintf("row %s column %d: %.80q, want %.80q", want[i][0], j, got[i][j], want[i][j])
			}
		}
	}
	return ""
}

func sameValue(col int, want, got string) bool {
	if want == got {
		return true
	}
	if col == 0 || want == "NULL" || got == "NULL" {
		return false
	}
	if _, _, float := matrixExpr(testenv.TypeMatrix[col-1]); !float {
		return false
	}
	a, err1 := strconv.ParseFloat(want, 64)
	b, err2 := strconv.ParseFloat(got, 64)
	if testenv.TypeMatrix[col-1].Def == "FLOAT" {
		return err1 == nil && err2 == nil && float32(a) == float32(b)
	}
	return err1 == nil && err2 == nil && a == b
}

// chTotal reads the bank's accounts and total from ClickHouse's current rows.
func chTotal(database string) (count, sum int64, err error) {
	data, err := chQuery("SELECT toString(count()), toString(sum(balance)) FROM `" + database + "`.accounts FINAL WHERE _deleted = 0")
	if err != nil || len(data) == 0 {
		return 0, 0, err
	}
	count, _ = strconv.ParseInt(fmt.Sprint(data[0][0]), 10, 64)
	sum, _ = strconv.ParseInt(fmt.Sprint(data[0][1]), 10, 64)
	return count, sum, nil
}

// watchCHTotals reads the bank total on ClickHouse at random moments until
// ctx ends: no accounts yet, or all of them with the opening total.
func watchCHTotals(ctx context.Context, t *testing.T, database string, accounts int, total int64) (*int64, *sync.WaitGroup) {
	var n int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
		for ctx.Err() == nil {
			time.Sleep(time.Duration(r.IntN(50)) * time.Millisecond)
			count, sum, err := chTotal(database)
			if err != nil || count == 0 {
				continue // not created yet
			}
			if count != int64(accounts) || sum != total {
				t.Errorf("ClickHouse shows %d accounts holding %d; want %d accounts holding %d", count, sum, accounts, total)
				return
			}
			n++
		}
	}()
	return &n, &wg
}

// waitCHConverged waits until ClickHouse's current accounts equal the
// master's, row by row.
func waitCHConverged(t *testing.T, database string, timeout time.Duration) {
	t.Helper()
	master := testenv.DBAt(t, testenv.Master, database)
	var want []string
	rows, err := master.Query("SELECT CONCAT(id, ':', balance) FROM accounts ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		want = append(want, s)
	}
	rows.Close()
	var got string
	waitFor(t, timeout, "ClickHouse to equal the master", func() bool {
		data, err := chQuery("SELECT concat(toString(id), ':', toString(balance)) FROM `" + database + "`.accounts FINAL WHERE _deleted = 0 ORDER BY id")
		if err != nil {
			got = err.Error()
			return false
		}
		var rows []string
		for _, r := range data {
			rows = append(rows, fmt.Sprint(r[0]))
		}
		got = strings.Join(rows, ",")
		return got == strings.Join(want, ",")
	})
}

// TestClickHouseSinkCrash SIGKILLs the ClickHouse sink worker six times at
// random moments during a transfer load. Read at random moments with FINAL,
// the total never changes; afterwards ClickHouse equals the master: no row
// lost or doubled in what queries see.
func TestClickHouseSinkCrash(t *testing.T) {
	r := olapCluster(t)
	pub := startPublishing(t, "pipeline", r.cfg, r.topic)
	createOnMaster(t, r.database)
	olap := startRowcast(t, "sink", "--config", r.cfg, "--replica", "olap")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bank := newBank(ctx, t, r.database, 100, 500)
	wctx, stopWatch := context.WithCancel(ctx)
	reads, wg := watchCHTotals(wctx, t, r.database, bank.Accounts, int64(bank.Accounts)*bank.Initial)
	lctx, stopLoad := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bank.Run(lctx, 4, 0) }()
	rnd := rand.New(rand.NewPCG(11, uint64(time.Now().UnixNano())))
	const kills = 6
	for i := 0; i < kills; i++ {
		time.Sleep(time.Duration(500+rnd.IntN(1500)) * time.Millisecond)
		olap.kill(t)
		olap = startRowcast(t, "sink", "--config", r.cfg, "--replica", "olap")
	}
	time.Sleep(5 * time.Second) // the last worker applies under load too, while totals are read
	stopLoad()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitCHConverged(t, r.database, 90*time.Second)
	stopWatch()
	wg.Wait()
	olap.stop(t)
	checkOLAPStatus(t, r)
	pub.stop(t)
	if *reads < 10 {
		t.Fatalf("only %d consistent reads of ClickHouse; the check saw too little", *reads)
	}
	t.Logf("%d transfers across %d kills of the ClickHouse sink; %d reads with the opening total", bank.Transfers.Load(), kills, *reads)
}

// checkOLAPStatus checks that `rowcast status` reads the ClickHouse
// replica's checkpoint.
func checkOLAPStatus(t *testing.T, r replication) {
	t.Helper()
	code, out, errs := runCLIProcess(t, "status", "--config", r.cfg, "--json")
	if code != 0 || !strings.Contains(out, `"node": "olap"`) || !strings.Contains(out, `"kind": "clickhouse"`) ||
		strings.Contains(out, "unsupported") || strings.Contains(out, "no-checkpoint") {
		t.Fatalf("rowcast status: code %d\n%s\n%s", code, out, errs)
	}
}

// TestClickHouseSnapshot replicates a table that existed before rowcast:
// the reader starts with a snapshot, which the ClickHouse sink loads (the
// table created from the snapshot's columns), then the changes after it.
func TestClickHouseSnapshot(t *testing.T) {
	r := olapClusterFrom(t, "snapshot")
	master := testenv.DB(t, testenv.Master)
	testenv.Exec(t, master, "CREATE DATABASE `"+r.database+"`")
	t.Cleanup(func() { master.Exec("DROP DATABASE IF EXISTS `" + r.database + "`") })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bank := newBank(ctx, t, r.database, 2500, 100)
	p := startPublishing(t, "run", r.cfg, r.topic)
	waitCHConverged(t, r.database, time.Minute)
	if err := bank.Run(ctx, 2, 300); err != nil {
		t.Fatal(err)
	}
	testenv.Exec(t, master, "DELETE FROM `"+r.database+"`.accounts WHERE id < 10")
	waitCHConverged(t, r.database, time.Minute)
	p.stop(t)
}

// TestClickHouseDDLUnderLoad runs DDL on the master while transfers write
// the table it changes: ClickHouse ends with the master's rows and columns.
func TestClickHouseDDLUnderLoad(t *testing.T) {
	r := olapCluster(t)
	p := startPublishing(t, "run", r.cfg, r.topic)
	createOnMaster(t, r.database)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bank := newBank(ctx, t, r.database, 200, 1000)
	lctx, stopLoad := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bank.Run(lctx, 3, 0) }()
	db := testenv.DBAt(t, testenv.Master, r.database)
	for _, stmt := range []string{
		"ALTER TABLE accounts ADD COLUMN tag VARCHAR(10) NULL",
		"UPDATE accounts SET tag = CONCAT('t', id % 7) WHERE id < 50",
		"ALTER TABLE accounts MODIFY COLUMN tag VARCHAR(20) NULL, ADD INDEX itag (tag)",
		"CREATE TABLE side (k INT PRIMARY KEY, v DECIMAL(8,3))",
		"INSERT INTO side VALUES (1, 1.5), (2, -2.25)",
		"RENAME TABLE side TO side2",
		"ALTER TABLE accounts DROP COLUMN note",
	} {
		time.Sleep(500 * time.Millisecond)
		testenv.Exec(t, db, stmt)
	}
	time.Sleep(time.Second)
	stopLoad()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitCHConverged(t, r.database, time.Minute)
	waitFor(t, 30*time.Second, "ClickHouse's tag values and side2", func() bool {
		tags, err1 := chQuery("SELECT toString(count()) FROM `" + r.database + "`.accounts FINAL WHERE _deleted = 0 AND tag != ''")
		side, err2 := chQuery("SELECT toString(k), toString(v) FROM `" + r.database + "`.side2 FINAL WHERE _deleted = 0 ORDER BY k")
		return err1 == nil && err2 == nil && fmt.Sprint(tags) == "[[50]]" && fmt.Sprint(side) == "[[1 1.500] [2 -2.250]]"
	})
	cols, err := chQuery("SELECT name, type FROM system.columns WHERE database = '" + r.database + "' AND table = 'accounts'")
	if err != nil || strings.Contains(fmt.Sprint(cols), "note") || !strings.Contains(fmt.Sprint(cols), "[tag Nullable(String)]") {
		t.Fatalf("accounts columns in ClickHouse: %v, %v; want tag, not note", cols, err)
	}
	p.stop(t)
}
