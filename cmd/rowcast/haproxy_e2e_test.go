package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/testenv"
)

// haproxyCfg is the shipped HAProxy config the tests run.
const haproxyCfg = "../../deployments/haproxy/haproxy.cfg"

// needHAProxy returns the path of Debian's haproxy, or fails the test (skips
// it with ROWCAST_ALLOW_SKIP=1 outside CI) saying how to install it.
func needHAProxy(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("haproxy")
	if err == nil {
		return path
	}
	msg := "haproxy is not installed: apt-get install haproxy (scripts/test installs it)"
	if os.Getenv("ROWCAST_ALLOW_SKIP") == "1" && !testenv.InCI() {
		t.Skip(msg)
	}
	t.Fatal(msg)
	return ""
}

// TestHAProxyConfigValid: HAProxy accepts the shipped config.
func TestHAProxyConfigValid(t *testing.T) {
	out, err := exec.Command(needHAProxy(t), "-c", "-f", haproxyCfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Configuration file is valid") {
		t.Fatalf("haproxy -c -f %s: %v\n%s", haproxyCfg, err, out)
	}
}

// haproxy is a haproxy process of the test, running the shipped config with
// a write and a read port of its own.
type haproxy struct {
	write, read string
	out         *syncBuffer
}

// startHAProxy runs the shipped config with its checks sent to check (the
// rowcast process that watches the nodes) until the test ends.
func startHAProxy(t *testing.T, check string) *haproxy {
	t.Helper()
	h := &haproxy{write: freeAddr(t), read: freeAddr(t), out: &syncBuffer{}}
	host, port, _ := net.SplitHostPort(check)
	cmd := exec.Command(needHAProxy(t), "-db", "-f", haproxyCfg)
	cmd.Env = append(os.Environ(), "ROWCAST_WRITE_BIND="+h.write, "ROWCAST_READ_BIND="+h.read,
		"ROWCAST_CHECK_HOST="+host, "ROWCAST_CHECK_PORT="+port)
	for _, n := range []string{"db1", "db2", "db3"} {
		cmd.Env = append(cmd.Env, "ROWCAST_"+strings.ToUpper(n)+"_ADDR="+testenv.Addr(n))
	}
	cmd.Stdout, cmd.Stderr = h.out, h.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy:\n%s", h.out.String())
		}
	})
	return h
}

// nodeBehind answers which node a new connection to addr reaches ("" when
// none takes it), by the server's port.
func nodeBehind(addr string) string {
	c, err := mysql.ParseDSN(testenv.RootDSN("db1", ""))
	if err != nil {
		return ""
	}
	c.Addr, c.Timeout, c.ReadTimeout = addr, time.Second, 2*time.Second
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		return ""
	}
	defer db.Close()
	var port string
	if db.QueryRow("SELECT @@port").Scan(&port) != nil {
		return ""
	}
	for _, n := range []string{"db1", "db2", "db3"} {
		if strings.HasSuffix(testenv.Addr(n), ":"+port) {
			return n
		}
	}
	return "port " + port
}

// pool is the set of nodes that n connections to addr reach.
func pool(addr string, n int) string {
	seen := map[string]bool{}
	for range n {
		if node := nodeBehind(addr); node != "" {
			seen[node] = true
		}
	}
	var out []string
	for _, node := range []string{"db1", "db2", "db3"} {
		if seen[node] {
			out = append(out, node)
		}
	}
	return strings.Join(out, ",")
}

// routeStatus is the status of a routing check at addr.
func routeStatus(addr, path string) int {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// routeBody is the body of a routing check at addr, or the error.
func routeBody(addr, path string) string {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// TestRoutingChecksAndHAProxy: on the local stack (db1 the master, db2 and
// db3 protected replicas), the pipeline service and `rowcast observe`
// answer the routing checks per node; HAProxy with the shipped config sends writes to db1 and reads
// to db2 and db3; a replica whose sink worker stops leaves the read pool
// within seconds and comes back once its worker caught up.
func TestRoutingChecksAndHAProxy(t *testing.T) {
	e := newFailoverEnv(t, "")
	_, sink2, _ := e.start()
	waitCheckpoints(t, e.topic, "db2", "db3")
	waitFor(t, 30*time.Second, "db2 and db3 in the read pool by their checks", func() bool {
		return routeStatus(e.http, "/node/db2/replica?max_lag=2s") == 200 && routeStatus(e.http, "/node/db3/replica?max_lag=2s") == 200
	})
	for path, want := range map[string]int{
		"/node/db1/master": 200, "/node/db1/replica": 503, "/node/db1/replica?max_lag=2s": 503,
		"/node/db2/master": 503, "/node/db3/master": 503, "/node/olap/master": 404,
	} {
		if got := routeStatus(e.http, path); got != want {
			t.Errorf("GET %s: %d, want %d", path, got, want)
		}
	}

	observer := freeAddr(t)
	obs := startRowcast(t, "observe", "--config", e.cfg, "--http", observer)
	defer obs.stop(t)
	waitFor(t, 30*time.Second, "rowcast observe answering /node/db1/master", func() bool { return routeStatus(observer, "/node/db1/master") == 200 })
	if got := routeStatus(observer, "/node/db2/replica?max_lag=2s"); got != 200 {
		t.Errorf("rowcast observe: GET /node/db2/replica?max_lag=2s: %d, want 200", got)
	}

	h := startHAProxy(t, e.http)
	waitFor(t, 10*time.Second, "the write port on db1", func() bool { return nodeBehind(h.write) == "db1" })
	waitFor(t, 10*time.Second, "the read pool db2,db3", func() bool { return pool(h.read, 6) == "db2,db3" })

	sink2.stop(t)
	stopped := time.Now()
	waitFor(t, 15*time.Second, "db2 out of the read pool", func() bool { return pool(h.read, 6) == "db3" })
	t.Logf("db2 left the read pool %s after its sink worker stopped", time.Since(stopped).Round(100*time.Millisecond))

	restarted := time.Now()
	sink2 = startRowcast(t, "sink", "--config", e.cfg, "--replica", "db2")
	defer sink2.stop(t)
	waitFor(t, 30*time.Second, "db2 back in the read pool", func() bool { return pool(h.read, 6) == "db2,db3" })
	t.Logf("db2 was back in the read pool %s after its sink worker started", time.Since(restarted).Round(100*time.Millisecond))
	if got := nodeBehind(h.write); got != "db1" {
		t.Errorf("the write port reaches %q, want db1", got)
	}
}

// loadThroughHAProxy starts the shipped HAProxy config, checking against
// e's pipeline service, waits for its write port to reach db1, and returns
// it with a transfer load that writes through that port only and logs
// every commit.
func loadThroughHAProxy(t *testing.T, e *failoverEnv, accounts int) (*haproxy, *transferLoad) {
	t.Helper()
	waitCheckpoints(t, e.topic, "db2", "db3")
	h := startHAProxy(t, e.http)
	waitFor(t, 10*time.Second, "the write port on db1", func() bool { return nodeBehind(h.write) == "db1" })
	load := newTransferLoad(e, accounts, "db1")
	load.log, load.nodes = &[]commitAt{}, []string{"haproxy"}
	load.dbs["haproxy"] = e.appDBAt(h.write)
	return h, load
}

// appDBAt opens the application user at addr (a HAProxy port).
func (e *failoverEnv) appDBAt(addr string) *sql.DB {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = e.appUser, "app", "tcp", addr, e.database
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 2*time.Second, 5*time.Second, 5*time.Second
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		e.t.Fatal(err)
	}
	db.SetMaxOpenConns(16)
	e.t.Cleanup(func() { db.Close() })
	return db
}

// longestGap is the longest time between two commits of log, and when it
// ended.
func longestGap(log []commitAt) (time.Duration, time.Time) {
	var gap time.Duration
	var end time.Time
	for i := 1; i < len(log); i++ {
		if d := log[i].at.Sub(log[i-1].at); d > gap {
			gap, end = d, log[i].at
		}
	}
	return gap, end
}

// TestDisruptiveHAProxySwitchover: clients transfer money through HAProxy's
// write port (the shipped config) while `rowcast promote` moves the master
// from db1 to db2. The port follows the master; every acknowledged transfer
// is on db2 once, and the longest time without a commit is the write
// downtime an application sees.
func TestDisruptiveHAProxySwitchover(t *testing.T) {
	needDisruptive(t)
	e := newFailoverEnv(t, "")
	e.start()
	h, load := loadThroughHAProxy(t, e, 50)

	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	wg := load.run(ctx, 4)
	time.Sleep(3 * time.Second)
	out := mustRowcast(t, "promote", "--config", e.cfg, "--replica", "db2")
	promoted := time.Now()
	t.Logf("promote:\n%s", out)
	for deadline := time.Now().Add(30 * time.Second); nodeBehind(h.write) != "db2"; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the write port does not reach db2 30s after the promotion; GET /node/db2/master: %s", routeBody(e.http, "/node/db2/master"))
		}
	}
	time.Sleep(3 * time.Second)
	stopLoad()
	wg.Wait()

	load.mu.Lock()
	gap, end := longestGap(*load.log)
	n := len(*load.log)
	load.mu.Unlock()
	t.Logf("%d transfers through the write port (%d with an unknown outcome); write downtime %s (the longest time without a commit, ended %s)",
		n, len(load.unknown), gap.Round(time.Millisecond), end.Format("15:04:05.000"))
	if n == 0 || !(*load.log)[n-1].at.After(promoted) {
		t.Fatal("no transfer committed through the write port after the promotion")
	}
	if gap > 5*time.Second {
		t.Errorf("write downtime %s through HAProxy at a planned switchover", gap)
	}
	waitEqual(t, "db2", "db3", e.database, 2*time.Minute)
	load.checkLedger(t, "db2")
	load.checkLedger(t, "db3")
}

// TestDisruptiveHAProxyFailover: clients transfer money through HAProxy's
// write port when the master's mariadbd is SIGKILLed; the pipeline service
// fails over automatically and the port follows the new master. The
// longest time without a commit is the write downtime an application sees
// (goal: under 15 s); transfers acknowledged before the kill may be lost
// (asynchronous replication: `rejoin` reports them), none is doubled.
func TestDisruptiveHAProxyFailover(t *testing.T) {
	needDisruptive(t)
	e := newFailoverEnv(t, "failover: {mode: auto, unreachable_after: 3s, check_interval: 500ms, lease_ttl: 15s}\n")
	t.Cleanup(func() {
		if !answers("db1") {
			stack(t, "start", "db1")
		}
	})
	_, sink2, sink3 := e.start()
	h, load := loadThroughHAProxy(t, e, 50)

	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	wg := load.run(ctx, 4)
	time.Sleep(3 * time.Second)
	killed := killMariadb(t, "db1")
	// A commit acknowledged after the kill is the new master's; the guard
	// leaves out an acknowledgement of db1's still on its way.
	first := load.firstLoggedAfter(t, killed.Add(500*time.Millisecond), 90*time.Second)
	time.Sleep(3 * time.Second)
	stopLoad()
	wg.Wait()

	newMaster := statusJSON(t, e.cfg).Master.Node
	if newMaster != "db2" && newMaster != "db3" {
		t.Fatalf("status names %q the master after the failover", newMaster)
	}
	if got := nodeBehind(h.write); got != newMaster {
		t.Fatalf("the write port reaches %q, the master is %s", got, newMaster)
	}
	load.mu.Lock()
	gap, end := longestGap(*load.log)
	n := len(*load.log)
	load.mu.Unlock()
	t.Logf("%d transfers through the write port (%d with an unknown outcome); %s accepted writes %v after the SIGKILL; write downtime %s (the longest time without a commit, ended %s)",
		n, len(load.unknown), newMaster, first.Sub(killed).Round(time.Millisecond), gap.Round(time.Millisecond), end.Format("15:04:05.000"))
	if gap > 15*time.Second {
		t.Errorf("write downtime %s through HAProxy at an emergency failover, goal < 15s", gap)
	}
	other := map[string]string{"db2": "db3", "db3": "db2"}[newMaster]
	waitEqual(t, newMaster, other, e.database, 2*time.Minute)
	load.checkLedgerAllowingLoss(t, newMaster)
	sinks := map[string]*proc{"db2": sink2, "db3": sink3}
	sinks[newMaster].waitExit(t, 30*time.Second, "the sink of the promoted "+newMaster)
}

// firstLoggedAfter waits for a commit in the load's log after at, and
// returns when it was acknowledged.
func (l *transferLoad) firstLoggedAfter(t *testing.T, at time.Time, timeout time.Duration) time.Time {
	t.Helper()
	var first time.Time
	waitFor(t, timeout, "a transfer committed after "+at.Format("15:04:05.000"), func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, c := range *l.log {
			if c.at.After(at) {
				first = c.at
				return true
			}
		}
		return false
	})
	return first
}
