package source

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

func TestHeartbeat(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)")
	cfg := testConfig(t, dbName)
	var mu sync.Mutex
	var beats []string
	cfg.OnHeartbeat = func(serverTime time.Time, set, _ string) {
		if time.Since(serverTime).Abs() > time.Minute {
			t.Errorf("heartbeat time %v", serverTime)
		}
		mu.Lock()
		beats = append(beats, set)
		mu.Unlock()
	}
	c := startReader(t, cfg, Start{GTIDSet: binlogPos(t, db)})
	testenv.Exec(t, db, "INSERT INTO t VALUES (1)")
	ev := c.txn(t)[0]
	// Heartbeats counted so far may have come before the transaction (other
	// tests' writes, filtered out, make heartbeats too): wait for two more.
	mu.Lock()
	before := len(beats)
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(beats)
		mu.Unlock()
		if n >= before+2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(beats) < before+2 {
		t.Fatalf("%d heartbeats in 10s after the transaction, with a 200ms period", len(beats)-before)
	}
	// Other tests write to the master, so later heartbeats may carry a later
	// set; none after the transaction may be behind it.
	if last := beats[len(beats)-1]; domainSeq(t, last) < domainSeq(t, ev.GTIDSet) {
		t.Errorf("heartbeat set %q behind emitted %q", last, ev.GTIDSet)
	}
}

// TestFilteredTransactionNamesItsFile: a transaction whose rows are all
// filtered out reaches OnHeartbeat with the binlog file it is in, so that
// the purge margin counts the reader there, not at the end of the binlog.
func TestFilteredTransactionNamesItsFile(t *testing.T) {
	mine := testenv.CreateDatabase(t, testenv.Master)
	other := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, other)
	testenv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)")
	files := make(chan string, 1024)
	cfg := testConfig(t, mine)
	cfg.OnHeartbeat = func(_ time.Time, _, file string) {
		select {
		case files <- file:
		default:
		}
	}
	startReader(t, cfg, Start{GTIDSet: binlogPos(t, db)})
	testenv.Exec(t, db, "INSERT INTO t VALUES (1)")
	var want, ignored string
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&want, new(int64), &ignored, &ignored); err != nil {
		t.Fatal(err)
	}
	for deadline := time.After(10 * time.Second); ; {
		select {
		case f := <-files:
			if f == want {
				return
			}
		case <-deadline:
			t.Fatalf("no filtered transaction reported in binlog file %s within 10s", want)
		}
	}
}

// domainSeq is the sequence number of domain 0 in a MariaDB GTID position.
func domainSeq(t *testing.T, pos string) uint64 {
	t.Helper()
	g, err := mysql.ParseMariadbGTIDSet(pos)
	if err != nil {
		t.Fatal(err)
	}
	if d := g.(*mysql.MariadbGTIDSet).Sets[0]; d != nil {
		return d.SequenceNumber
	}
	return 0
}

// TestRotate follows the master into its next binlog file: File and Offset
// locate every event, across the real ROTATE event.
func TestRotate(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)")
	c := startReader(t, testConfig(t, dbName), Start{GTIDSet: binlogPos(t, db)})
	testenv.Exec(t, db, "INSERT INTO t VALUES (1)", "FLUSH BINARY LOGS", "ALTER TABLE t ADD c INT", "INSERT INTO t VALUES (2, 3)")
	evs := []*pipeline.Event{c.txn(t)[0], c.txn(t)[0], c.txn(t)[0]}
	if evs[0].File == evs[1].File {
		t.Errorf("both in %s", evs[0].File)
	}
	// The master's own listing must show the event at each File:Offset.
	for i, want := range []string{"Write_rows_v1", "Query", "Write_rows_v1"} {
		var name, typ, info string
		var pos, server, end any
		q := fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %d LIMIT 1", evs[i].File, evs[i].Offset)
		if err := db.QueryRow(q).Scan(&name, &pos, &typ, &server, &end, &info); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if typ != want {
			t.Errorf("message %d at %s:%d is a %s event, want %s", i, evs[i].File, evs[i].Offset, typ, want)
		}
	}
}
