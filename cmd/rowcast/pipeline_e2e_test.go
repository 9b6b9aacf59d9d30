package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// txnLoad commits transactions of 1 to 5 rows (now and then 300) into
// db.t from several clients and records the GTID of each commit.
type txnLoad struct {
	db       *sql.DB
	database string
	mu       sync.Mutex
	gtids    map[string]int // GTID -> rows
}

func (l *txnLoad) run(ctx context.Context, t *testing.T, clients int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			conn, err := l.db.Conn(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			for ctx.Err() == nil {
				n := 1 + r.IntN(5)
				if r.IntN(20) == 0 {
					n = 300
				}
				var sb strings.Builder
				fmt.Fprintf(&sb, "INSERT INTO `%s`.t (client, payload) VALUES ", l.database)
				for i := 0; i < n; i++ {
					if i > 0 {
						sb.WriteByte(',')
					}
					fmt.Fprintf(&sb, "(%d, REPEAT('x', %d))", c, 10+r.IntN(200))
				}
				bg := context.Background()
				if _, err := conn.ExecContext(bg, "BEGIN"); err != nil {
					t.Error(err)
					return
				}
				if _, err := conn.ExecContext(bg, sb.String()); err != nil {
					t.Error(err)
					return
				}
				if _, err := conn.ExecContext(bg, "COMMIT"); err != nil {
					t.Error(err)
					return
				}
				var gtid string
				if err := conn.QueryRowContext(bg, "SELECT @@last_gtid").Scan(&gtid); err != nil {
					t.Error(err)
					return
				}
				l.mu.Lock()
				l.gtids[gtid] = n
				l.mu.Unlock()
				time.Sleep(time.Duration(1+r.IntN(4)) * time.Millisecond)
			}
		}(c)
	}
	return &wg
}

// txnPipeline is a pipeline service publishing a database of its own whose
// table t a txnLoad writes.
type txnPipeline struct {
	load       *txnLoad
	topic, cfg string
	proc       *proc
}

// startTxnPipeline creates the database and starts the pipeline service,
// which records the master's position before any load starts.
func startTxnPipeline(t *testing.T) txnPipeline {
	t.Helper()
	database := testenv.CreateDatabase(t, testenv.Master)
	tp := txnPipeline{topic: testenv.CreateTopic(t, 1)}
	db := testenv.DBAt(t, testenv.Master, database)
	testenv.Exec(t, db, "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, client INT, payload VARCHAR(255))")
	tp.cfg = e2eConfig(t, database, tp.topic)
	tp.proc = startPublishing(t, "pipeline", tp.cfg, tp.topic)
	tp.load = &txnLoad{db: db, database: database, gtids: map[string]int{}}
	return tp
}

// TestPipelineCrashAndResume SIGKILLs the pipeline service at random moments
// during a write load and restarts it each time. Afterwards the topic holds
// every source transaction exactly once (after skipping copies by position),
// in commit order, counted by GTID, with contiguous sequence numbers.
func TestPipelineCrashAndResume(t *testing.T) {
	tp := startTxnPipeline(t)
	load, p := tp.load, tp.proc
	ctx, stopLoad := context.WithCancel(context.Background())
	wg := load.run(ctx, t, 3)

	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	kills := 6
	for i := 0; i < kills; i++ {
		time.Sleep(time.Duration(300+r.IntN(1500)) * time.Millisecond)
		p.kill(t)
		p = startRowcast(t, "pipeline", "--config", tp.cfg)
	}
	time.Sleep(time.Second)
	stopLoad()
	wg.Wait()
	if t.Failed() {
		return
	}
	want := len(load.gtids)
	t.Logf("%d transactions committed during %d kills", want, kills)

	txns, raw := waitTxns(t, tp.topic, want, 2*time.Minute)
	p.stop(t)
	rows := 0
	for _, tx := range txns {
		rows += len(tx.rows)
	}
	t.Logf("topic: %d messages, %d transactions, %d rows after skipping copies", raw, len(txns), rows)

	if len(txns) != want {
		t.Fatalf("%d transactions in the topic, %d committed", len(txns), want)
	}
	var prev int64 = -1
	for i, tx := range txns {
		rows, ok := load.gtids[tx.gtid]
		if !ok {
			t.Fatalf("transaction %d (seq %d) has GTID %s, which the load did not commit", i, tx.seq, tx.gtid)
		}
		if len(tx.rows) != rows {
			t.Errorf("transaction %s has %d rows in the topic, %d committed", tx.gtid, len(tx.rows), rows)
		}
		delete(load.gtids, tx.gtid)
		var seqNo int64
		fmt.Sscanf(tx.gtid[strings.LastIndexByte(tx.gtid, '-')+1:], "%d", &seqNo)
		if seqNo <= prev {
			t.Fatalf("transaction %s follows GTID sequence %d: out of commit order", tx.gtid, prev)
		}
		prev = seqNo
	}
	if len(load.gtids) != 0 {
		t.Fatalf("%d committed transactions missing from the topic", len(load.gtids))
	}
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
