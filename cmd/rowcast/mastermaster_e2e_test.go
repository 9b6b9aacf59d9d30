package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/service"
)

// masterSet is three MariaDB nodes of the test's own (the stack's settings,
// ports 120 above the stack's), set up as the masters of a master-master
// topology: GTID domains 1 to 3, strict GTID mode, auto_increment offsets
// of their own. The stack's nodes keep their single GTID domain.
type masterSet struct {
	env   []string // scripts/stack's environment for the private nodes
	names []string
	addrs map[string]string
	dbs   map[string]*sql.DB
}

func startMasterSet(t *testing.T, names ...string) *masterSet {
	t.Helper()
	state := os.Getenv("ROWCAST_STATE_DIR")
	if state == "" {
		state = "../../.stack"
	}
	env := []string{"ROWCAST_STATE_DIR=" + filepath.Join(state, "master-master")}
	s := &masterSet{names: names, addrs: map[string]string{}, dbs: map[string]*sql.DB{}}
	defer func() { s.env = env }()
	for _, n := range s.names {
		base, _ := strconv.Atoi(strings.TrimPrefix(testenv.Addr(n)[strings.LastIndex(testenv.Addr(n), ":"):], ":"))
		port := strconv.Itoa(base + 120)
		env = append(env, "ROWCAST_"+strings.ToUpper(n)+"_PORT="+port)
		s.addrs[n] = "127.0.0.1:" + port
	}
	for i, n := range s.names {
		stackWith(t, env, "start", n)
		t.Cleanup(func() { stackWith(t, env, "stop", n) })
		s.admin(t, n, fmt.Sprintf("SET GLOBAL gtid_domain_id=%d, GLOBAL gtid_strict_mode=ON, GLOBAL auto_increment_increment=%d, GLOBAL auto_increment_offset=%d, GLOBAL read_only=OFF", i+1, len(names), i+1))
		// Opened after the global settings, so that every session has them.
		db, err := sql.Open("mysql", "root@tcp("+s.addrs[n]+")/")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s.dbs[n] = db
	}
	return s
}

// admin runs statements on node in a session of their own (session
// settings such as sql_log_bin=0 must not reach the pool the writers use).
func (s *masterSet) admin(t *testing.T, node, q string) {
	t.Helper()
	db, err := sql.Open("mysql", "root@tcp("+s.addrs[node]+")/?multiStatements=true")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	mustExec(t, db, q)
}

func stackWith(t *testing.T, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("../../scripts/stack", args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/stack %v: %v\n%s", args, err, out)
	}
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// config writes a master-master config of the set replicating database.
func (s *masterSet) config(t *testing.T, database, topic string, http map[string]string) string {
	return s.configWith(t, database, topic, http, "")
}

// replicate creates a database of the test's with the tables of ddl
// (statements in which {db} is the database) on every master, out of their
// binlogs, writes a config with extra top-level YAML, and starts every
// master's unit.
func (s *masterSet) replicate(t *testing.T, ddl, extra string) (database, cfg string, units map[string]*proc) {
	t.Helper()
	database = testenv.UniqueName(t, "mm")
	topic := testenv.UniqueName(t, "rc")
	http := map[string]string{}
	for _, n := range s.names {
		s.admin(t, n, "SET SESSION sql_log_bin=0; CREATE DATABASE `"+database+"`; "+strings.ReplaceAll(ddl, "{db}", "`"+database+"`"))
		http[n] = freeAddr(t)
	}
	cfg = s.configWith(t, database, topic, http, strings.ReplaceAll(extra, "{db}", database))
	return database, cfg, s.startUnits(t, cfg, topic)
}

// configWith is config with extra top-level YAML.
func (s *masterSet) configWith(t *testing.T, database, topic string, http map[string]string, extra string) string {
	var nodes strings.Builder
	for i, n := range s.names {
		fmt.Fprintf(&nodes, "  - {name: %s, dsn: \"root@tcp(%s)/\", gtid_domain_id: %d, http: %q}\n", n, s.addrs[n], i+1, http[n])
	}
	text := fmt.Sprintf(`cluster: mm
topology: master-master
masters: [%s]
nodes:
%skafka:
  brokers: [%q]
  topic: %s
source:
  include: ['^%s\.']
  heartbeat_interval: 1s
  start: current
  server_id: %d
verify:
  interval: "off"
%s`, strings.Join(s.names, ", "), nodes.String(), testenv.Addr("kafka"), topic, database, 200000+time.Now().UnixNano()%(1<<29), extra)
	path := filepath.Join(t.TempDir(), "rowcast.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mmWriter inserts rows on one master (keys from its auto_increment
// offset) and updates its own rows, counting what was acknowledged.
type mmWriter struct {
	node     string
	db       *sql.DB
	database string
	mu       sync.Mutex
	inserted map[int64]int // id -> last acknowledged value
}

// run writes until ctx ends; a statement in flight then ends normally, so
// that what was acknowledged is known exactly.
func (w *mmWriter) run(stop context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	ctx := context.Background()
	var ids []int64
	for i := 0; stop.Err() == nil; i++ {
		if i%3 == 2 && len(ids) > 0 {
			id := ids[i%len(ids)]
			if _, err := w.db.ExecContext(ctx, "UPDATE `"+w.database+"`.t SET n = ? WHERE id = ?", i, id); err == nil {
				w.mu.Lock()
				w.inserted[id] = i
				w.mu.Unlock()
			}
			continue
		}
		res, err := w.db.ExecContext(ctx, "INSERT INTO `"+w.database+"`.t (origin, n) VALUES (?, ?)", w.node, i)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		id, _ := res.LastInsertId()
		ids = append(ids, id)
		w.mu.Lock()
		w.inserted[id] = i
		w.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

// TestDisruptiveMasterMasterDisjoint: three masters take writes at once on
// keys of their own (auto_increment offsets) while each runs the unit of
// its topic (`rowcast run --master`); the units are SIGKILLed and restarted
// under load, and db3's is stopped for 30 s (a partition: its writes reach
// no other master meanwhile). Every acknowledged row ends on every master, the three are
// equal, each holds every master's transactions exactly once (the same
// GTID position in every domain: nothing came back to its origin, nothing
// was applied twice), and `rowcast status` shows no master behind.
func TestDisruptiveMasterMasterDisjoint(t *testing.T) {
	needDisruptive(t)
	s := startMasterSet(t, "db1", "db2", "db3")
	database := testenv.UniqueName(t, "mm")
	topic := testenv.UniqueName(t, "rc")
	for _, n := range s.names {
		s.admin(t, n, "SET SESSION sql_log_bin=0; CREATE DATABASE `"+database+"`; CREATE TABLE `"+database+"`.t (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, origin VARCHAR(8) NOT NULL, n INT NOT NULL) ENGINE=InnoDB")
	}
	http := map[string]string{}
	for _, n := range s.names {
		http[n] = freeAddr(t)
	}
	cfg := s.config(t, database, topic, http)
	units := s.startUnits(t, cfg, topic)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	writers := map[string]*mmWriter{}
	for _, n := range s.names {
		writers[n] = &mmWriter{node: n, db: s.dbs[n], database: database, inserted: map[int64]int{}}
		wg.Add(1)
		go writers[n].run(ctx, &wg)
	}
	// SIGKILL each unit in turn under load, and start it again; a DDL on
	// db2 meanwhile.
	for i, n := range s.names {
		time.Sleep(3 * time.Second)
		units[n].kill(t)
		if i == 1 {
			mustExec(t, s.dbs["db2"], "ALTER TABLE `"+database+"`.t ADD COLUMN note VARCHAR(16) NULL")
		}
		time.Sleep(time.Second)
		units[n] = startMasterUnit(t, cfg, n)
	}
	// A partition: db3's unit stopped for 30 s while all three take
	// writes; db3 still gets the others' writes, they do not get its own.
	time.Sleep(3 * time.Second) // the unit started just now handles SIGTERM
	units["db3"].stop(t)
	time.Sleep(30 * time.Second)
	units["db3"] = startMasterUnit(t, cfg, "db3")
	time.Sleep(3 * time.Second)
	stop()
	wg.Wait()
	for n, p := range units {
		dumpOnFailure(t, []string{"unit " + n}, p)
	}

	want := map[int64]int{}
	for _, w := range writers {
		for id, v := range w.inserted {
			want[id] = v
		}
		t.Logf("%s: %d rows acknowledged", w.node, len(w.inserted))
	}
	for _, n := range s.names {
		waitMasterHolds(t, s.dbs[n], n, database, want)
	}
	checkOnceEverywhere(t, s)
	waitFor(t, 30*time.Second, "rowcast status to show every master caught up", func() bool {
		out := mustRowcast(t, "status", "--config", cfg, "--json")
		var rep service.MastersReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		for _, m := range rep.Masters {
			for _, o := range rep.Masters {
				if m.Error != "" || o.Own == 0 || (m.Name != o.Name && m.Applied[o.Name] != o.Own) {
					return false
				}
			}
		}
		return true
	})
	t.Logf("rowcast status:\n%s", mustRowcast(t, "status", "--config", cfg))
	for _, pair := range [][2]string{{"db1", "db2"}, {"db1", "db3"}, {"db2", "db3"}} {
		out := mustRowcast(t, "verify", "--config", cfg, "--master", pair[0], "--replica", pair[1], "--tables", database+".t")
		t.Logf("verify --master %s --replica %s:\n%s", pair[0], pair[1], out)
	}
}

// startUnits starts every master's unit and waits until each has published
// (its first heartbeat): a reader that starts at the master's current
// position then has every later write.
func (s *masterSet) startUnits(t *testing.T, cfg, topic string) map[string]*proc {
	t.Helper()
	units := map[string]*proc{}
	for _, n := range s.names {
		units[n] = startMasterUnit(t, cfg, n)
	}
	for _, n := range s.names {
		waitFor(t, 60*time.Second, "the first heartbeat in "+topic+"."+n, func() bool {
			evs, _, err := readTopicFrom(topic+"."+n, 0)
			return err == nil && len(evs) > 0
		})
	}
	return units
}

// startMasterUnit starts `rowcast run --master node`.
func startMasterUnit(t *testing.T, cfg, node string) *proc {
	t.Helper()
	return startRowcast(t, "run", "--config", cfg, "--master", node)
}

// waitMasterHolds waits until the master's table holds exactly the rows
// acknowledged anywhere, with their last acknowledged values.
func waitMasterHolds(t *testing.T, db *sql.DB, node, database string, want map[int64]int) {
	t.Helper()
	var last string
	ok := func() bool {
		rows, err := db.Query("SELECT id, n FROM `" + database + "`.t")
		if err != nil {
			last = err.Error()
			return false
		}
		defer rows.Close()
		got := map[int64]int{}
		for rows.Next() {
			var id int64
			var n int
			rows.Scan(&id, &n)
			got[id] = n
		}
		missing, wrong := 0, 0
		for id, v := range want {
			g, ok := got[id]
			switch {
			case !ok:
				missing++
			case g != v:
				wrong++
			}
		}
		last = fmt.Sprintf("%d rows, %d acknowledged rows missing, %d with another value, %d not acknowledged", len(got), missing, wrong, len(got)-len(want)+missing)
		return missing == 0 && wrong == 0
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", node, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%s: %s", node, last)
}

// checkOnceEverywhere: in every master's binlog, every other master's
// GTID domain stands at the same seq_no, no further than its origin's: each
// transaction was applied once on every other master, under its origin
// GTID, and none came back to its origin (its bookkeeping, which is never
// published, is the origin's own further seq_nos).
func checkOnceEverywhere(t *testing.T, s *masterSet) {
	t.Helper()
	pos := map[string]map[string]uint64{} // node -> domain -> seq
	for _, n := range s.names {
		var p string
		if err := s.dbs[n].QueryRow("SELECT @@GLOBAL.gtid_binlog_pos").Scan(&p); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: gtid_binlog_pos %s", n, p)
		pos[n] = map[string]uint64{}
		for _, g := range strings.Split(p, ",") {
			parts := strings.Split(g, "-")
			seq, _ := strconv.ParseUint(parts[2], 10, 64)
			pos[n][parts[0]] = seq
		}
	}
	for i, origin := range s.names {
		domain := strconv.Itoa(i + 1)
		var seen uint64
		for _, n := range s.names {
			if n == origin {
				continue
			}
			if seen != 0 && pos[n][domain] != seen || pos[n][domain] > pos[origin][domain] || pos[n][domain] == 0 {
				t.Errorf("domain %s (%s's): %s holds %d, %s %d, the other %d", domain, origin, n, pos[n][domain], origin, pos[origin][domain], seen)
			}
			seen = pos[n][domain]
		}
	}
}

// TestDisruptiveMasterMasterConflict: with both units stopped, two masters
// update the same row; started again, each master's sink of the other's
// topic finds the row it would change already changed: it records the
// conflict with both versions and stops (policy stop), leaving each row as
// its master wrote it rather than overwriting it, and `rowcast conflicts`
// lists both.
func TestDisruptiveMasterMasterConflict(t *testing.T) {
	needDisruptive(t)
	s := startMasterSet(t, "db1", "db2")
	database := testenv.UniqueName(t, "mm")
	topic := testenv.UniqueName(t, "rc")
	for _, n := range s.names {
		s.admin(t, n, "SET SESSION sql_log_bin=0; CREATE DATABASE `"+database+"`; CREATE TABLE `"+database+"`.t (id INT NOT NULL PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB; CREATE TABLE `"+database+"`.u (id INT NOT NULL PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
	}
	cfg := s.config(t, database, topic, map[string]string{})
	units := s.startUnits(t, cfg, topic)
	mustExec(t, s.dbs["db1"], "INSERT INTO `"+database+"`.t VALUES (1, 0)")
	waitMasterHolds(t, s.dbs["db2"], "db2", database, map[int64]int{1: 0})
	for _, p := range units {
		p.stop(t)
	}
	// db2 meets db1's update first, db1 meets db2's insert first (as a row
	// event, which an existing key fails, then as SQL).
	mustExec(t, s.dbs["db1"], "UPDATE `"+database+"`.t SET n = 1 WHERE id = 1")
	mustExec(t, s.dbs["db1"], "INSERT INTO `"+database+"`.u VALUES (5, 1)")
	mustExec(t, s.dbs["db2"], "INSERT INTO `"+database+"`.u VALUES (5, 2)")
	mustExec(t, s.dbs["db2"], "UPDATE `"+database+"`.t SET n = 2 WHERE id = 1")
	mustExec(t, s.dbs["db1"], "INSERT INTO `"+database+"`.t VALUES (10, 10)")
	for _, n := range s.names {
		units[n] = startMasterUnit(t, cfg, n)
		dumpOnFailure(t, []string{"unit " + n}, units[n])
	}
	var mine []service.Conflict // the nodes keep earlier runs' conflicts
	waitFor(t, time.Minute, "both conflicts recorded", func() bool {
		out := mustRowcast(t, "conflicts", "--config", cfg, "--json")
		var rep service.ConflictsReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("conflicts --json: %v\n%s", err, out)
		}
		mine = mine[:0]
		for _, c := range rep.Conflicts {
			if strings.HasPrefix(c.Topic, topic+".") {
				mine = append(mine, c)
			}
		}
		return len(mine) == 2
	})
	want := map[string]service.Conflict{
		"db2": {Table: database + ".t", Key: "(id=1)", Op: "update", Topic: topic + ".db1", Incoming: "(id=1, n=0) into (id=1, n=1)", Current: "(id=1, n=2)"},
		"db1": {Table: database + ".u", Key: "(id=5)", Op: "insert", Topic: topic + ".db2", Incoming: "nothing into (id=5, n=2)", Current: "(id=5, n=1)"},
	}
	for _, c := range mine {
		w := want[c.Node]
		if c.Table != w.Table || c.Key != w.Key || c.Op != w.Op || c.Topic != w.Topic || c.Incoming != w.Incoming || c.Current != w.Current || c.Policy != "stop" {
			t.Errorf("conflict on %s: %+v, want %+v", c.Node, c, w)
		}
	}
	for n, p := range units {
		waitFor(t, 30*time.Second, n+"'s unit to report the stopped sink", func() bool {
			return strings.Contains(p.out.String(), "master-master conflict")
		})
	}
	// Nothing overwritten, and nothing after the conflict applied.
	for _, n := range s.names {
		for _, tbl := range []string{"t", "u"} {
			var v int
			err := s.dbs[n].QueryRow("SELECT n FROM `" + database + "`." + tbl + " WHERE id IN (1, 5)").Scan(&v)
			if mine := map[string]int{"db1": 1, "db2": 2}[n]; err != nil || v != mine {
				t.Errorf("%s: %s has n=%d (%v), want %d as its master wrote it", n, tbl, v, err, mine)
			}
		}
	}
	var later int
	s.dbs["db2"].QueryRow("SELECT COUNT(*) FROM `" + database + "`.t WHERE id = 10").Scan(&later)
	if later != 0 {
		t.Error("db2 applied db1's insert that came after the conflicting update")
	}
	t.Logf("rowcast conflicts:\n%s", mustRowcast(t, "conflicts", "--config", cfg))
}

// TestDisruptiveMasterMasterDomainLost restarts db1's mariadbd, whose
// my.cnf does not set gtid_domain_id (only a SET GLOBAL did): what db1
// acknowledges afterwards carries domain 0. The sink applying db1's topic
// to db2 stops on it, naming the domain and the fix, instead of skipping it
// as another master's (which would lose it on db2 for good). With the
// domain set back and db1's unit started with --adopt-domain 0, db2 gets
// those rows and the later ones, each once.
func TestDisruptiveMasterMasterDomainLost(t *testing.T) {
	needDisruptive(t)
	s := startMasterSet(t, "db1", "db2")
	database, cfg, units := s.replicate(t, "CREATE TABLE {db}.t (id BIGINT NOT NULL PRIMARY KEY, origin VARCHAR(8) NOT NULL, n INT NOT NULL) ENGINE=InnoDB", "")
	insert := func(id int64) {
		t.Helper()
		s.admin(t, "db1", fmt.Sprintf("INSERT INTO `%s`.t VALUES (%d, 'db1', %d)", database, id, id))
	}
	want := map[int64]int{}
	for id := int64(1); id <= 3; id++ {
		insert(id)
		want[id] = int(id)
	}
	waitMasterHolds(t, s.dbs["db2"], "db2", database, want)

	stackWith(t, s.env, "stop", "db1")
	stackWith(t, s.env, "start", "db1")
	s.admin(t, "db1", "SET GLOBAL gtid_strict_mode=ON, GLOBAL auto_increment_increment=2, GLOBAL auto_increment_offset=1, GLOBAL read_only=OFF")
	for id := int64(4); id <= 8; id++ {
		insert(id) // under domain 0
		want[id] = int(id)
	}
	waitFor(t, time.Minute, "db1's unit to stop its sink on the domain-0 transactions", func() bool {
		return strings.Contains(units["db1"].out.String(), "carries GTID domain 0")
	})
	out := units["db1"].out.String()
	if !strings.Contains(out, "--adopt-domain") {
		t.Fatalf("the stop does not name the fix:\n%s", lastLines(out, 20))
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "carries GTID domain 0") {
			t.Logf("db1's unit: %s", l)
			break
		}
	}
	var n int
	if err := s.dbs["db2"].QueryRow("SELECT COUNT(*) FROM `" + database + "`.t WHERE id > 3").Scan(&n); err != nil || n != 0 {
		t.Fatalf("db2 holds %d of db1's domain-0 rows (%v): they were applied without --adopt-domain", n, err)
	}

	s.admin(t, "db1", "SET GLOBAL gtid_domain_id=1")
	units["db1"].stop(t)
	units["db1"] = startRowcast(t, "run", "--config", cfg, "--master", "db1", "--adopt-domain", "0")
	for id := int64(9); id <= 10; id++ {
		insert(id) // under domain 1 again
		want[id] = int(id)
	}
	waitMasterHolds(t, s.dbs["db2"], "db2", database, want)
	var p1, p2 string
	s.dbs["db1"].QueryRow("SELECT @@GLOBAL.gtid_binlog_pos").Scan(&p1)
	s.dbs["db2"].QueryRow("SELECT @@GLOBAL.gtid_binlog_pos").Scan(&p2)
	t.Logf("db1 gtid_binlog_pos %s; db2 %s", p1, p2)
	if !strings.Contains(p2, domainPos(p1, "0")) {
		t.Fatalf("db2 (%s) does not stand where db1 (%s) does in domain 0", p2, p1)
	}
	for _, u := range units {
		u.stop(t)
	}
}

// domainPos is the GTID of domain d in a gtid_binlog_pos, "" when none.
func domainPos(pos, d string) string {
	for _, g := range strings.Split(pos, ",") {
		if strings.HasPrefix(g, d+"-") {
			return g
		}
	}
	return "\x00" // matches nothing
}

// TestDisruptiveMasterMasterLastWriterWins: three masters, their units
// stopped (a partition), change the same rows: updates, a delete against
// an update, two inserts of one key. Table t resolves by last-writer-wins,
// table p by priority (db2). Started again, all three converge to the
// winners whatever order the changes reach them in, record the conflicts,
// and a later write on any master reaches the others.
func TestDisruptiveMasterMasterLastWriterWins(t *testing.T) {
	needDisruptive(t)
	s := startMasterSet(t, "db1", "db2", "db3")
	database, cfg, units := s.replicate(t, "CREATE TABLE {db}.t (id INT NOT NULL PRIMARY KEY, v VARCHAR(16) NOT NULL) ENGINE=InnoDB; "+
		"CREATE TABLE {db}.p (id INT NOT NULL PRIMARY KEY, v VARCHAR(16) NOT NULL) ENGINE=InnoDB",
		"conflicts:\n  policy: last-writer-wins\n  tables:\n    {db}.p: {policy: priority, priority: db2}\n")
	w := func(node, q string) {
		t.Helper()
		mustExec(t, s.dbs[node], strings.ReplaceAll(q, "{db}", "`"+database+"`"))
		time.Sleep(30 * time.Millisecond) // the next write is later by the masters' clock
	}
	w("db1", "INSERT INTO {db}.t VALUES (1,'s1'),(2,'s2'),(3,'s3'),(4,'s4'),(5,'s5')")
	w("db1", "INSERT INTO {db}.p VALUES (1,'s1'),(2,'s2')")
	seed := map[string]string{"t": "1=s1,2=s2,3=s3,4=s4,5=s5", "p": "1=s1,2=s2"}
	for _, n := range s.names {
		waitRows(t, s.dbs[n], n, database, seed)
	}
	for _, n := range s.names {
		units[n].stop(t)
	}
	w("db1", "UPDATE {db}.t SET v='a1' WHERE id=1")
	w("db2", "UPDATE {db}.t SET v='b1' WHERE id=1")
	w("db3", "UPDATE {db}.t SET v='c1' WHERE id=1") // the last writer of 1
	w("db3", "UPDATE {db}.t SET v='c2' WHERE id=2")
	w("db1", "UPDATE {db}.t SET v='a2' WHERE id=2") // the last writer of 2
	w("db1", "DELETE FROM {db}.t WHERE id=3")
	w("db2", "UPDATE {db}.t SET v='b3' WHERE id=3") // a later update beats the delete
	w("db2", "UPDATE {db}.t SET v='b4' WHERE id=4")
	w("db3", "DELETE FROM {db}.t WHERE id=4") // a later delete beats the update
	w("db1", "INSERT INTO {db}.t VALUES (100,'a100')")
	w("db3", "INSERT INTO {db}.t VALUES (100,'c100')") // the later of two inserts of one key
	w("db2", "UPDATE {db}.p SET v='b1' WHERE id=1")    // the priority node's, though the earliest
	w("db1", "UPDATE {db}.p SET v='a1' WHERE id=1")
	w("db3", "UPDATE {db}.p SET v='c1' WHERE id=1")
	w("db1", "UPDATE {db}.p SET v='a2' WHERE id=2") // no conflict
	for _, n := range s.names {
		units[n] = startMasterUnit(t, cfg, n)
	}
	want := map[string]string{"t": "1=c1,2=a2,3=b3,5=s5,100=c100", "p": "1=b1,2=a2"}
	for _, n := range s.names {
		waitRows(t, s.dbs[n], n, database, want)
	}
	total := s.resolvedConflicts(t, database)
	if total < 6 {
		t.Errorf("%d conflicts recorded on the three masters; want at least one per conflicting row (6)", total)
	}
	t.Logf("%d conflicts recorded; rowcast conflicts:\n%s", total, mustRowcast(t, "conflicts", "--config", cfg))

	// After the conflicts, a write anywhere reaches every master.
	w("db2", "UPDATE {db}.t SET v='b1x' WHERE id=1")
	w("db3", "DELETE FROM {db}.t WHERE id=100")
	want["t"] = "1=b1x,2=a2,3=b3,5=s5"
	for _, n := range s.names {
		waitRows(t, s.dbs[n], n, database, want)
	}
	for n, p := range units {
		dumpOnFailure(t, []string{"unit " + n}, p)
	}
}

// waitRows waits until each table of database holds exactly the rows
// want gives ("id=v,..." in id order).
func waitRows(t *testing.T, db *sql.DB, node, database string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	waitFor(t, 90*time.Second, node+" to hold "+fmt.Sprint(want), func() bool {
		for table, w := range want {
			var s sql.NullString
			if err := db.QueryRow("SELECT GROUP_CONCAT(CONCAT(id, '=', v) ORDER BY id) FROM `" + database + "`." + table).Scan(&s); err != nil {
				got[table] = err.Error()
				return false
			}
			got[table] = s.String
			if s.String != w {
				return false
			}
		}
		return true
	})
}

// TestDisruptiveMasterMasterPartitionConflicts: under last-writer-wins,
// three masters update, delete and insert the same 20 keys at once for 40
// s, while db3's unit is stopped for 30 s (a partition: its writes reach no
// other master meanwhile, and it gets theirs). Once the writers stop, the
// three hold the same rows, and conflicts were resolved and recorded.
func TestDisruptiveMasterMasterPartitionConflicts(t *testing.T) {
	needDisruptive(t)
	s := startMasterSet(t, "db1", "db2", "db3")
	database, cfg, units := s.replicate(t, "CREATE TABLE {db}.t (id INT NOT NULL PRIMARY KEY, v VARCHAR(24) NOT NULL) ENGINE=InnoDB",
		"conflicts:\n  policy: last-writer-wins\n")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var writes, failed atomic.Int64
	for i, n := range s.names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for seq := 0; ctx.Err() == nil; seq++ {
				id := 1 + r.IntN(20)
				q := fmt.Sprintf("INSERT INTO `%s`.t VALUES (%d, '%s-%d') ON DUPLICATE KEY UPDATE v = VALUES(v)", database, id, n, seq)
				if r.IntN(10) == 0 {
					q = fmt.Sprintf("DELETE FROM `%s`.t WHERE id = %d", database, id)
				}
				if _, err := s.dbs[n].ExecContext(ctx, q); err != nil {
					failed.Add(1) // a deadlock with a sink: the application retries, or not
				} else {
					writes.Add(1)
				}
				time.Sleep(time.Duration(2+r.IntN(8)) * time.Millisecond)
			}
		}()
	}
	time.Sleep(5 * time.Second)
	units["db3"].stop(t)
	time.Sleep(30 * time.Second)
	units["db3"] = startMasterUnit(t, cfg, "db3")
	time.Sleep(5 * time.Second)
	stop()
	wg.Wait()
	t.Logf("%d writes acknowledged, %d failed (deadlocks with the sinks)", writes.Load(), failed.Load())
	var rows map[string]string
	waitFor(t, 2*time.Minute, "the three masters to hold the same rows", func() bool {
		rows = map[string]string{}
		for _, n := range s.names {
			var v sql.NullString
			if err := s.dbs[n].QueryRow("SELECT GROUP_CONCAT(CONCAT(id, '=', v) ORDER BY id) FROM `" + database + "`.t").Scan(&v); err != nil {
				return false
			}
			rows[n] = v.String
		}
		return rows["db1"] == rows["db2"] && rows["db2"] == rows["db3"]
	})
	total := s.resolvedConflicts(t, database)
	t.Logf("converged on %s; %d conflicts recorded", rows["db1"], total)
	if total == 0 {
		t.Fatal("no conflict recorded: the writers did not collide")
	}
	checkOnceEverywhere(t, s)
	for n, p := range units {
		dumpOnFailure(t, []string{"unit " + n}, p)
	}
}

// resolvedConflicts counts the conflicts a policy other than stop resolved
// in database's tables, on all masters.
func (s *masterSet) resolvedConflicts(t *testing.T, database string) int {
	t.Helper()
	total := 0
	for _, n := range s.names {
		var c int
		if err := s.dbs[n].QueryRow("SELECT COUNT(*) FROM rowcast.conflicts WHERE policy <> 'stop' AND table_name LIKE ?", database+".%").Scan(&c); err != nil {
			t.Fatal(err)
		}
		total += c
	}
	return total
}

// TestDisruptiveMasterMasterConcurrentDDL: a DDL statement on one master
// reaches the other; then, their units stopped, both masters alter the same
// table. Started again, each master's sink of the other's topic stops on
// the other's statement, naming both, and neither definition is applied
// over the other.
func TestDisruptiveMasterMasterConcurrentDDL(t *testing.T) {
	needDisruptive(t)
	s := startMasterSet(t, "db1", "db2")
	database, cfg, units := s.replicate(t, "CREATE TABLE {db}.t (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB; "+
		"CREATE TABLE {db}.u (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB", "")
	columns := func(node, table string) string {
		var cols sql.NullString
		s.dbs[node].QueryRow("SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
			database, table).Scan(&cols)
		return cols.String
	}
	mustExec(t, s.dbs["db1"], "ALTER TABLE `"+database+"`.u ADD COLUMN w INT NULL")
	waitFor(t, time.Minute, "db1's ALTER of u on db2", func() bool { return columns("db2", "u") == "id,w" })

	for _, n := range s.names {
		units[n].stop(t)
	}
	mustExec(t, s.dbs["db1"], "ALTER TABLE `"+database+"`.t ADD COLUMN a INT NULL")
	mustExec(t, s.dbs["db2"], "ALTER TABLE `"+database+"`.t ADD COLUMN b INT NULL")
	for _, n := range s.names {
		units[n] = startMasterUnit(t, cfg, n)
	}
	for _, n := range s.names {
		waitFor(t, time.Minute, n+"'s unit to stop on the other's ALTER", func() bool {
			return strings.Contains(units[n].out.String(), "concurrent DDL")
		})
	}
	if a, b := columns("db1", "t"), columns("db2", "t"); a != "id,a" || b != "id,b" {
		t.Fatalf("t's columns: db1 %s, db2 %s; want each master's own change alone", a, b)
	}
	for _, l := range strings.Split(units["db1"].out.String(), "\n") {
		if strings.Contains(l, "concurrent DDL") {
			t.Logf("db1's unit: %s", l)
			break
		}
	}
	for n, p := range units {
		dumpOnFailure(t, []string{"unit " + n}, p)
	}
}
