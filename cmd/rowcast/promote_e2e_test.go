package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/freeport"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/service"
)

// dumpOnFailure logs the output of processes when the test fails.
func dumpOnFailure(t *testing.T, names []string, procs ...*proc) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i, p := range procs {
			out := p.out.String()
			if len(out) > 20000 {
				out = "..." + out[len(out)-20000:]
			}
			t.Logf("=== output of %s:\n%s", names[i], out)
		}
	})
}

// freeAddr returns a loopback address with a free port, one that no other
// freeAddr of this process returned.
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// failoverEnv is a cluster of the local stack's three nodes replicating one
// database through one topic, set up for promotions: every node's
// read_only, the promotion bookkeeping of the topic and an application user
// (without READ_ONLY ADMIN, so that read_only stops it) are put back when
// the test ends.
type failoverEnv struct {
	t        *testing.T
	topic    string
	database string
	cfg      string
	http     string            // the pipeline service's
	nodeHTTP map[string]string // each sink's
	appUser  string
}

func newFailoverEnv(t *testing.T, extra string) *failoverEnv {
	t.Helper()
	e := &failoverEnv{t: t, topic: testenv.CreateTopic(t, 1), database: testenv.UniqueName(t, "rc"),
		http: freeAddr(t), nodeHTTP: map[string]string{}}
	for _, n := range []string{"db1", "db2", "db3"} {
		e.nodeHTTP[n] = freeAddr(t)
	}
	e.cfg = clusterConfig{database: e.database, topic: e.topic, nodeHTTP: e.nodeHTTP, protect: true, http: e.http, extra: extra}.write(t)
	// Read-only flags as they were, restored at the end (db1 stays the
	// suite's writable master).
	for _, n := range []string{"db1", "db2", "db3"} {
		db := testenv.DB(t, n)
		var ro bool
		if err := db.QueryRow("SELECT @@GLOBAL.read_only").Scan(&ro); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			db := rootDB(t, n)
			defer db.Close()
			if _, err := db.Exec(fmt.Sprintf("SET GLOBAL read_only=%v", ro)); err != nil {
				t.Errorf("restore read_only on %s: %v", n, err)
			}
			db.Exec("DELETE FROM rowcast.epochs WHERE topic = ?", e.topic)
			db.Exec("DELETE FROM rowcast.promotion_lease WHERE topic = ?", e.topic)
			db.Exec("DELETE FROM rowcast.checkpoint WHERE topic = ?", e.topic)
		})
	}
	e.appUser = "rcapp" + e.topic[len(e.topic)-8:]
	for _, n := range []string{"db1", "db2", "db3"} {
		db := testenv.DB(t, n)
		conn, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"SET SESSION sql_log_bin=0",
			fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY 'app'", e.appUser),
			fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON `%s`.* TO '%s'@'127.0.0.1'", e.database, e.appUser)} {
			if _, err := conn.ExecContext(context.Background(), q); err != nil {
				t.Fatalf("%s on %s: %v", q, n, err)
			}
		}
		conn.Close()
		t.Cleanup(func() {
			db := rootDB(t, n)
			defer db.Close()
			conn, err := db.Conn(context.Background())
			if err != nil {
				return
			}
			defer conn.Close()
			conn.ExecContext(context.Background(), "SET SESSION sql_log_bin=0")
			conn.ExecContext(context.Background(), fmt.Sprintf("DROP USER IF EXISTS '%s'@'127.0.0.1'", e.appUser))
		})
	}
	return e
}

// start runs the pipeline service and the sinks of db2 and db3, and
// creates the database once the reader runs (so that replicas get it).
func (e *failoverEnv) start() (pipe, sink2, sink3 *proc) {
	t := e.t
	pipe = startPublishing(t, "pipeline", e.cfg, e.topic)
	sink2 = startRowcast(t, "sink", "--config", e.cfg, "--replica", "db2")
	sink3 = startRowcast(t, "sink", "--config", e.cfg, "--replica", "db3")
	dumpOnFailure(t, []string{"pipeline", "sink db2", "sink db3"}, pipe, sink2, sink3)
	replicatedNamed(t, e.database)
	return pipe, sink2, sink3
}

// rootDB opens root on a node without the testenv helpers, for cleanups
// that run after a node was restarted.
func rootDB(t testing.TB, node string) *sql.DB {
	db, err := sql.Open("mysql", testenv.RootDSN(node, ""))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// appDB opens the application user on a node.
func (e *failoverEnv) appDB(node string) *sql.DB {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = e.appUser, "app", "tcp", testenv.Addr(node), e.database
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 2*time.Second, 5*time.Second, 5*time.Second
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		e.t.Fatal(err)
	}
	db.SetMaxOpenConns(16)
	e.t.Cleanup(func() { db.Close() })
	return db
}

// sinkMetric reads one counter of a sink process's metrics.
func sinkMetric(t testing.TB, addr, replica, counter string) float64 {
	t.Helper()
	v, err := scrape(addr, fmt.Sprintf(`rowcast_sink_total{counter=%q,replica=%q}`, counter, replica))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// transferLoad moves money between accounts of the bank table and writes
// each transfer into a ledger, in one transaction, as the application user.
// When the node it writes to refuses (read-only, killed, down), it tries
// every node in turn until one accepts: what an application does behind a
// proxy that follows the master.
type transferLoad struct {
	e        *failoverEnv
	nodes    []string
	dbs      map[string]*sql.DB
	accounts int

	mu        sync.Mutex
	confirmed map[int64]int // ledger id -> amount, commit acknowledged
	unknown   map[int64]int // COMMIT failed: may or may not have committed
	lastOK    map[string]time.Time
	firstOK   map[string]time.Time
	refusedAt time.Time // first refused write
	commits   int
	// log, when not nil, records every commit (benchmarks).
	log *[]commitAt
}

type commitAt struct {
	at   time.Time
	node string
}

// newTransferLoad creates the bank and ledger tables on db1 for a load on
// nodes (db1 first) and waits until the other nodes have them.
func newTransferLoad(e *failoverEnv, accounts int, nodes ...string) *transferLoad {
	l := &transferLoad{e: e, nodes: nodes, dbs: map[string]*sql.DB{}, accounts: accounts,
		confirmed: map[int64]int{}, unknown: map[int64]int{}, lastOK: map[string]time.Time{}, firstOK: map[string]time.Time{}}
	for _, n := range nodes {
		l.dbs[n] = e.appDB(n)
	}
	l.setup(e.t)
	for _, n := range nodes[1:] {
		waitEqual(e.t, "db1", n, e.database, time.Minute)
	}
	return l
}

func (l *transferLoad) setup(t *testing.T) {
	db := testenv.DB(t, "db1")
	testenv.Exec(t, db,
		"CREATE TABLE `"+l.e.database+"`.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL)",
		"CREATE TABLE `"+l.e.database+"`.ledger (id BIGINT PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amount INT NOT NULL, node VARCHAR(8) NOT NULL)")
	var sb strings.Builder
	for i := 0; i < l.accounts; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "(%d, 1000)", i)
	}
	testenv.Exec(t, db, "INSERT INTO `"+l.e.database+"`.accounts VALUES "+sb.String())
}

func (l *transferLoad) run(ctx context.Context, clients int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			node := 0
			for n := int64(1); ctx.Err() == nil; n++ {
				id := int64(c+1)*1_000_000_000 + n
				from, to := r.IntN(l.accounts), r.IntN(l.accounts)
				if from == to {
					continue
				}
				amount := 1 + r.IntN(50)
				name := l.nodes[node]
				committed, err := l.transfer(ctx, l.dbs[name], name, id, from, to, amount)
				l.mu.Lock()
				switch {
				case err == nil:
					l.confirmed[id] = amount
					l.commits++
					if l.firstOK[name].IsZero() {
						l.firstOK[name] = time.Now()
					}
					l.lastOK[name] = time.Now()
					if l.log != nil {
						*l.log = append(*l.log, commitAt{l.lastOK[name], name})
					}
				case committed:
					l.unknown[id] = amount
				}
				if err != nil && l.refusedAt.IsZero() && isRefusal(err) {
					l.refusedAt = time.Now()
				}
				l.mu.Unlock()
				if err != nil {
					if isRefusal(err) {
						node = (node + 1) % len(l.nodes)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
		}()
	}
	return &wg
}

// isRefusal: the node does not take this write now (read-only, killed,
// unreachable), as opposed to a deadlock.
func isRefusal(err error) bool {
	if mysqlerr.Code(err) == 0 {
		return true
	}
	return mysqlerr.Is(err, gomysql.ER_OPTION_PREVENTS_STATEMENT, mysqlerr.ErConnectionKilled, mysqlerr.CrServerLost, gomysql.ER_SERVER_SHUTDOWN)
}

// transfer runs one transfer; committed says whether COMMIT was sent (its
// outcome is unknown when err is not nil).
func (l *transferLoad) transfer(ctx context.Context, db *sql.DB, node string, id int64, from, to, amount int) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	lo, hi := min(from, to), max(from, to)
	for _, q := range []struct {
		s    string
		args []any
	}{
		{"SELECT id FROM accounts WHERE id IN (?, ?) ORDER BY id FOR UPDATE", []any{lo, hi}},
		{"UPDATE accounts SET balance = balance - ? WHERE id = ?", []any{amount, from}},
		{"UPDATE accounts SET balance = balance + ? WHERE id = ?", []any{amount, to}},
		{"INSERT INTO ledger VALUES (?, ?, ?, ?, ?)", []any{id, from, to, amount, node}},
	} {
		if _, err := tx.ExecContext(ctx, q.s, q.args...); err != nil {
			return false, err
		}
	}
	return true, tx.Commit()
}

// checkLedger checks on a node: every acknowledged transfer is in the
// ledger exactly once, nothing else is but transfers whose commit outcome
// was unknown, and every balance equals the opening balance moved by the
// ledger (no transfer applied twice or half).
func (l *transferLoad) checkLedger(t *testing.T, node string) int {
	t.Helper()
	db := testenv.DB(t, node)
	rows, err := db.Query("SELECT id, src, dst, amount FROM `" + l.e.database + "`.ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	bal := make([]int64, l.accounts)
	for i := range bal {
		bal[i] = 1000
	}
	seen := map[int64]bool{}
	for rows.Next() {
		var id int64
		var src, dst, amount int
		if err := rows.Scan(&id, &src, &dst, &amount); err != nil {
			t.Fatal(err)
		}
		seen[id] = true
		bal[src] -= int64(amount)
		bal[dst] += int64(amount)
		if _, ok := l.confirmed[id]; !ok {
			if _, ok := l.unknown[id]; !ok {
				t.Errorf("%s: ledger row %d was never committed by a client", node, id)
			}
		}
	}
	for id := range l.confirmed {
		if !seen[id] {
			t.Errorf("%s: acknowledged transfer %d is missing", node, id)
		}
	}
	got := map[int]int64{}
	r2, err := db.Query("SELECT id, balance FROM `" + l.e.database + "`.accounts")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	var total int64
	for r2.Next() {
		var id int
		var b int64
		r2.Scan(&id, &b)
		got[id] = b
		total += b
	}
	if total != int64(l.accounts)*1000 {
		t.Errorf("%s: total %d, want %d", node, total, l.accounts*1000)
	}
	for i, b := range bal {
		if got[i] != b {
			t.Errorf("%s: account %d holds %d, the ledger says %d", node, i, got[i], b)
		}
	}
	return len(seen)
}

var downtimeRe = regexp.MustCompile(`writes refused for (\S+)`)

// TestDisruptivePromoteUnderLoad is a planned switchover from db1 to db2
// while clients transfer money as an application user: no transfer lost or
// applied twice (ledger accounting, bank total), db3 and the rejoined db1
// equal the new master, the topic's transactions are exactly the ledger's,
// and the time writes were refused is reported.
func TestDisruptivePromoteUnderLoad(t *testing.T) {
	needDisruptive(t)
	e := newFailoverEnv(t, "")
	pipe, sink2, sink3 := e.start()
	load := newTransferLoad(e, 50, "db1", "db2")

	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	wctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	_, watchers := watchTotals(wctx, t, e.database, 50, 50*1000)
	wg := load.run(ctx, 4)
	time.Sleep(3 * time.Second)

	out := mustRowcast(t, "promote", "--config", e.cfg, "--replica", "db2")
	t.Logf("promote:\n%s", out)
	m := downtimeRe.FindStringSubmatch(out)
	if !strings.Contains(out, "promoted db2: epoch 2") || m == nil {
		t.Fatalf("promote output:\n%s", out)
	}
	time.Sleep(3 * time.Second)
	stopLoad()
	wg.Wait()
	load.mu.Lock()
	clientDown := load.firstOK["db2"].Sub(load.lastOK["db1"])
	load.mu.Unlock()
	t.Logf("%d transfers (%d with an unknown outcome); writes refused for %s (promote), %v between the last commit on db1 and the first on db2 (clients)",
		load.commits, len(load.unknown), m[1], clientDown)
	if load.firstOK["db2"].IsZero() {
		t.Fatal("no transfer committed on db2 after the promotion")
	}

	// db2's sink stops by itself at the epoch record.
	sink2.waitExit(t, 30*time.Second, "db2's sink (at its promotion)")
	if !strings.Contains(sink2.out.String(), "names this replica (db2) the new master") {
		t.Fatalf("db2's sink log lacks the promotion:\n%s", sink2.out)
	}

	waitEqual(t, "db2", "db3", e.database, 2*time.Minute)
	stopWatch()
	watchers.Wait()
	n := load.checkLedger(t, "db2")
	load.checkLedger(t, "db3")

	// The old master rejoins: nothing was lost, and it follows db2.
	out = mustRowcast(t, "rejoin", "--config", e.cfg, "--node", "db1", "--loss-file", filepath.Join(t.TempDir(), "loss.jsonl"))
	t.Logf("rejoin:\n%s", out)
	if !strings.Contains(out, "0 transactions never reached the topic") {
		t.Fatalf("rejoin after a planned promotion reports a loss:\n%s", out)
	}
	sink1 := startRowcast(t, "sink", "--config", e.cfg, "--replica", "db1")
	waitEqual(t, "db2", "db1", e.database, 2*time.Minute)

	// The changelog holds each ledger transaction exactly once.
	ledgerTxns, epochs := ledgerTxnsByEpoch(dedupe(t, readTopic(t, e.topic)))
	if ledgerTxns != n || epochs[1] == 0 || epochs[2] == 0 {
		t.Fatalf("the topic holds %d ledger transactions (by epoch %v), the new master's ledger %d rows", ledgerTxns, epochs, n)
	}

	st := statusJSON(t, e.cfg)
	if st.Master.Node != "db2" || st.Master.Epoch != 2 {
		t.Fatalf("status: master %s epoch %d", st.Master.Node, st.Master.Epoch)
	}
	sink1.stop(t)
	sink3.stop(t)
	pipe.stop(t)
}

// ledgerTxnsByEpoch counts the transactions that write the ledger, in all
// and by epoch.
func ledgerTxnsByEpoch(txns []txnView) (int, map[uint64]int) {
	n, epochs := 0, map[uint64]int{}
	for _, tx := range txns {
		if i := slices.IndexFunc(tx.rows, func(r *pipeline.Event) bool { return r.Table != nil && r.Table.Name == "ledger" }); i >= 0 {
			n++
			epochs[tx.rows[i].Pos.Epoch]++
		}
	}
	return n, epochs
}

type statusView struct {
	Master struct {
		Node  string `json:"node"`
		Epoch uint64 `json:"epoch"`
	} `json:"master"`
}

func statusJSON(t testing.TB, cfg string) statusView {
	t.Helper()
	out := mustRowcast(t, "status", "--config", cfg, "--json")
	var st statusView
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// TestDisruptiveStrayReader: a second reader pinned to the old master keeps
// publishing its transactions with the old epoch after the promotion; every
// sink ignores them, counts and logs them, and the replicas still equal the
// new master.
func TestDisruptiveStrayReader(t *testing.T) {
	needDisruptive(t)
	e := newFailoverEnv(t, "")
	pipe, sink2, sink3 := e.start()
	master := testenv.DB(t, "db1")
	testenv.Exec(t, master, "CREATE TABLE `"+e.database+"`.t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)")
	for i := 0; i < 20; i++ {
		testenv.Exec(t, master, fmt.Sprintf("INSERT INTO `%s`.t VALUES (%d, 'before')", e.database, i))
	}
	waitEqual(t, "db1", "db3", e.database, time.Minute)

	// The stray: a pipeline service pinned to db1, unaware of promotions.
	stray := startStray(t, e.cfg)
	time.Sleep(2 * time.Second)
	out := mustRowcast(t, "promote", "--config", e.cfg, "--replica", "db2")
	if !strings.Contains(out, "promoted db2: epoch 2") {
		t.Fatalf("promote:\n%s", out)
	}
	// root writes through read_only: the stray publishes these with epoch 1.
	for i := 100; i < 120; i++ {
		testenv.Exec(t, master, fmt.Sprintf("INSERT INTO `%s`.t VALUES (%d, 'stray')", e.database, i))
	}
	newMaster := testenv.DB(t, "db2")
	for i := 200; i < 210; i++ {
		testenv.Exec(t, newMaster, fmt.Sprintf("INSERT INTO `%s`.t VALUES (%d, 'new')", e.database, i))
	}
	var recOff, strays int
	waitFor(t, time.Minute, "stray messages after the epoch record", func() bool {
		recOff, strays = -1, 0
		for i, ev := range readTopic(t, e.topic) {
			if ev.Kind == pipeline.KindEpoch {
				recOff = i
			}
			if recOff >= 0 && ev.InTxn() && ev.Pos.Epoch == 1 {
				strays++
			}
		}
		return strays >= 20
	})
	waitEqual(t, "db2", "db3", e.database, time.Minute)
	if n := countRows(t, "db3", e.database, "v = 'stray'"); n != 0 {
		t.Fatalf("db3 applied %d rows of the stray reader", n)
	}
	if n := countRows(t, "db3", e.database, "v = 'new'"); n != 10 {
		t.Fatalf("db3 holds %d rows of the new master, want 10", n)
	}
	waitFor(t, 30*time.Second, "db3's old_epoch_ignored counter", func() bool {
		return sinkMetric(t, e.nodeHTTP["db3"], "db3", "old_epoch_ignored") >= 20
	})
	if !strings.Contains(sink3.out.String(), "ignoring a message of an older epoch") {
		t.Fatalf("db3's sink did not log the stray messages:\n%s", sink3.out)
	}
	t.Logf("%d stray messages after the epoch record at offset %d: ignored, counted (%v) and logged",
		strays, recOff, sinkMetric(t, e.nodeHTTP["db3"], "db3", "old_epoch_ignored"))
	stray.stop()
	<-sink2.done
	sink3.stop(t)
	pipe.stop(t)
}

func countRows(t testing.TB, node, database, where string) int {
	t.Helper()
	var n int
	if err := testenv.DB(t, node).QueryRow("SELECT COUNT(*) FROM `" + database + "`.t WHERE " + where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// strayReader is a pipeline service in this process pinned to the config's
// master with the epoch it starts with: it never follows an epoch record.
type strayReader struct {
	cancel context.CancelFunc
	done   chan error
}

func startStray(t *testing.T, path string) *strayReader {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := publisherConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pc.Nodes, pc.Locate = nil, nil
	pc.Source.ServerID++ // the master drops one of two readers with one server_id
	p := service.NewPublisher(pc, zerolog.New(io.Discard), nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	s := &strayReader{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- p.Run(ctx) }()
	t.Cleanup(s.stop)
	select {
	case <-p.Started():
	case err := <-s.done:
		t.Fatalf("stray reader: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("stray reader did not start")
	}
	return s
}

func (s *strayReader) stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
		s.cancel = nil
	}
}

// killMariadb SIGKILLs a node's mariadbd and returns when the signal was
// sent (the process may linger as a zombie of whoever started it).
func killMariadb(t *testing.T, node string) time.Time {
	t.Helper()
	dir := os.Getenv("ROWCAST_STATE_DIR")
	if dir == "" {
		dir = "../../.stack"
	}
	b, err := os.ReadFile(filepath.Join(dir, node, "mariadbd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(strings.TrimSpace(string(b)), &pid)
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d (%s): %v", pid, node, err)
	}
	at := time.Now()
	for i := 0; i < 100 && answers(node); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	return at
}

func answers(node string) bool {
	db, err := sql.Open("mysql", testenv.RootDSN(node, "")+"&timeout=2s")
	if err != nil {
		return false
	}
	defer db.Close()
	return db.Ping() == nil
}

var (
	gtidLineRe  = regexp.MustCompile(`\sGTID (\d+-\d+-\d+)`)
	tableLineRe = regexp.MustCompile("Table_map: `([^`]+)`\\.`")
)

// binlogTxns reads a node's binlog with mariadb-binlog from one GTID
// position to another and returns the GTIDs of the transactions that touch
// database.
func binlogTxns(t *testing.T, node, from, to, database string) map[string]bool {
	t.Helper()
	host, port, _ := net.SplitHostPort(testenv.Addr(node))
	cmd := exec.Command("mariadb-binlog", "--read-from-remote-server", "-h"+host, "-P"+port, "-uroot",
		"--start-position="+from, "--stop-position="+to, "--to-last-log", "mariadb-bin.000001")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mariadb-binlog: %v", err)
	}
	got := map[string]bool{}
	cur := ""
	for _, line := range strings.Split(string(out), "\n") {
		if m := gtidLineRe.FindStringSubmatch(line); m != nil {
			cur = m[1]
			continue
		}
		if m := tableLineRe.FindStringSubmatch(line); m != nil && m[1] == database && cur != "" {
			got[cur] = true
		}
	}
	return got
}

// lossFile reads a rejoin loss file: the GTIDs and the ledger ids it holds.
func lossFile(t *testing.T, path string) (gtids map[string]bool, ledger map[int64]bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	gtids, ledger = map[string]bool{}, map[int64]bool{}
	codec := &pipeline.Codec{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var l struct {
			Key   json.RawMessage `json:"key"`
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("loss file line %q: %v", line, err)
		}
		ev, err := codec.Decode(l.Key, l.Value)
		if err != nil {
			t.Fatal(err)
		}
		gtids[ev.GTID] = true
		if ev.Kind == pipeline.KindRow && ev.Table.Name == "ledger" && ev.Op == pipeline.OpInsert {
			var id int64
			fmt.Sscan(fmt.Sprint(ev.After[0]), &id)
			ledger[id] = true
		}
	}
	return gtids, ledger
}

var publishedRe = regexp.MustCompile(`the topic got db1 up to (\S+);`)

// TestDisruptiveEmergencyFailover SIGKILLs the master's mariadbd during a
// transfer load, after the reader died, so that the last transfers
// committed on it never reach the topic. The pipeline service in automatic
// mode promotes a replica; the clients move to it. When the old master is
// back, rejoin's report of lost transactions equals what its binlog holds
// after the published position, and equals the acknowledged transfers the
// new master lacks. Reverted, the old master follows the new one and equals
// it.
func TestDisruptiveEmergencyFailover(t *testing.T) {
	needDisruptive(t)
	e := newFailoverEnv(t, "failover: {mode: auto, unreachable_after: 3s, check_interval: 500ms, lease_ttl: 15s}\n")
	t.Cleanup(func() {
		if !answers("db1") {
			stack(t, "start", "db1")
		}
	})
	pipe, sink2, sink3 := e.start()
	load := newTransferLoad(e, 50, "db1", "db2", "db3")

	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	wg := load.run(ctx, 4)
	time.Sleep(2 * time.Second)
	// The reader dies first: what db1 commits from now on never reaches
	// the topic. Then the master dies.
	pipe.kill(t)
	time.Sleep(time.Second)
	killedAt := killMariadb(t, "db1")
	pipe2 := startRowcast(t, "pipeline", "--config", e.cfg)
	dumpOnFailure(t, []string{"pipeline (auto)"}, pipe2)
	newMaster, failoverTime := load.firstCommitAfter(t, killedAt, 90*time.Second, "db2", "db3")
	time.Sleep(2 * time.Second)
	stopLoad()
	wg.Wait()
	other := map[string]string{"db2": "db3", "db3": "db2"}[newMaster]
	t.Logf("db1 killed; %s accepted writes %v later (automatic failover)", newMaster, failoverTime)
	if !strings.Contains(pipe2.out.String(), "automatic failover done") {
		t.Fatalf("the pipeline service did not report the failover:\n%s", pipe2.out)
	}
	waitEqual(t, newMaster, other, e.database, 2*time.Minute)

	// The old master is back: the loss report, first without reverting.
	stack(t, "start", "db1")
	loss := filepath.Join(t.TempDir(), "loss.jsonl")
	published := rejoinReportingLoss(t, e.cfg, loss)
	reported, lostLedger := lossFile(t, loss)
	checkLossIsBinlog(t, e.database, published, reported)
	missing := load.checkLostTransfers(t, newMaster, lostLedger)
	t.Logf("loss: %d transactions, exactly those of db1's binlog after %s; %d acknowledged transfers lost", len(reported), published, len(missing))

	// Reverted, db1 follows the new master.
	out := mustRowcast(t, "rejoin", "--config", e.cfg, "--node", "db1", "--loss-file", loss, "--undo-loss")
	t.Logf("rejoin --undo-loss:\n%s", out)
	sink1 := startRowcast(t, "sink", "--config", e.cfg, "--replica", "db1")
	dumpOnFailure(t, []string{"sink db1"}, sink1)
	waitEqual(t, newMaster, "db1", e.database, 2*time.Minute)
	for id := range missing {
		delete(load.confirmed, id)
	}
	load.checkLedger(t, newMaster)
	load.checkLedger(t, "db1")
	st := statusJSON(t, e.cfg)
	if st.Master.Node != newMaster || st.Master.Epoch != 2 {
		t.Fatalf("status: master %s epoch %d", st.Master.Node, st.Master.Epoch)
	}
	sink1.stop(t)
	sinks := map[string]*proc{"db2": sink2, "db3": sink3}
	sinks[newMaster].waitExit(t, 30*time.Second, "the sink of the promoted "+newMaster)
	sinks[other].stop(t)
	pipe2.stop(t)
}

// firstCommitAfter waits for a transfer committed on one of nodes after at,
// and returns that node and how long after at it committed.
func (l *transferLoad) firstCommitAfter(t *testing.T, at time.Time, timeout time.Duration, nodes ...string) (string, time.Duration) {
	t.Helper()
	var node string
	var after time.Duration
	waitFor(t, timeout, "a transfer committed on the new master", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, n := range nodes {
			if l.firstOK[n].After(at) {
				node, after = n, l.firstOK[n].Sub(at)
				return true
			}
		}
		return false
	})
	return node, after
}

// rejoinReportingLoss runs rejoin of db1 without --undo-loss, which must
// refuse (exit 3) and report a loss, and returns the GTID set the topic got
// from db1.
func rejoinReportingLoss(t *testing.T, cfg, loss string) string {
	t.Helper()
	out, err := rowcastOut(t, "rejoin", "--config", cfg, "--node", "db1", "--loss-file", loss)
	t.Logf("rejoin:\n%s", out)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(out, "never reached the topic") {
		t.Fatalf("rejoin of a master with a loss: %v\n%s", err, out)
	}
	m := publishedRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rejoin does not say what the topic got:\n%s", out)
	}
	return m[1]
}

// checkLossIsBinlog checks that the reported transactions are exactly those
// of db1's binlog after published that touch database.
func checkLossIsBinlog(t *testing.T, database, published string, reported map[string]bool) {
	t.Helper()
	var now string
	if err := testenv.DB(t, "db1").QueryRow("SELECT @@gtid_binlog_pos").Scan(&now); err != nil {
		t.Fatal(err)
	}
	inBinlog := binlogTxns(t, "db1", published, now, database)
	if len(inBinlog) == 0 {
		t.Fatalf("db1's binlog holds no transaction after %s: the test lost nothing to report", published)
	}
	for g := range inBinlog {
		if !reported[g] {
			t.Errorf("%s is in db1's binlog after %s, not in the loss report", g, published)
		}
	}
	for g := range reported {
		if !inBinlog[g] {
			t.Errorf("%s is in the loss report, not in db1's binlog after %s", g, published)
		}
	}
}

// checkLostTransfers checks that the lost transfers of the loss report are
// the acknowledged ones the new master lacks, and returns those.
func (l *transferLoad) checkLostTransfers(t *testing.T, newMaster string, lostLedger map[int64]bool) map[int64]bool {
	t.Helper()
	have := ledgerIDs(t, newMaster, l.e.database)
	missing := map[int64]bool{}
	for id := range l.confirmed {
		if !have[id] {
			missing[id] = true
		}
	}
	for id := range missing {
		if !lostLedger[id] {
			t.Errorf("acknowledged transfer %d is not on %s and not in the loss report", id, newMaster)
		}
	}
	for id := range lostLedger {
		if have[id] {
			t.Errorf("transfer %d is in the loss report and on %s", id, newMaster)
		}
	}
	return missing
}

// ledgerIDs reads the ids of the ledger on a node.
func ledgerIDs(t testing.TB, node, database string) map[int64]bool {
	t.Helper()
	rows, err := testenv.DB(t, node).Query("SELECT id FROM `" + database + "`.ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		have[id] = true
	}
	return have
}
