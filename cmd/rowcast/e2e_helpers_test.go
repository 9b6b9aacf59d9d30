package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/internal/workload"
	"github.com/rowcast/rowcast/pipeline"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// TestMain removes the binary rowcastBinary built: 34 MB left in the temp
// directory by every run fills a CI machine's disk within days.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// rowcastBinary builds cmd/rowcast once per test process, so that tests can
// run it as a real process and SIGKILL it.
func rowcastBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rowcast-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "rowcast")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// clusterConfig is a config of the local stack's nodes that replicates one
// database through one topic, with db1 the master.
type clusterConfig struct {
	database, topic string
	nodes           []string          // default db1, db2, db3
	nodeHTTP        map[string]string // each node's sink metrics address; default none
	addrs           map[string]string // a node's address instead of the stack's (a closed port: unreachable)
	protect         bool              // sink.protect_replicas
	http            string            // the pipeline's metrics address; default off
	extra           string            // more sections
	kafkaExtra      string            // more lines of the kafka section, indented
	brokers         string            // the Kafka bootstrap address; default the stack's PLAINTEXT listener
	sourceExtra     string            // more lines of the source section, indented
	sinkExtra       string            // more lines of the sink section, indented
	olap            bool              // a ClickHouse replica named olap too
}

// write writes the config to a file of the test's and returns its path.
func (c clusterConfig) write(t testing.TB) string {
	t.Helper()
	if c.nodes == nil {
		c.nodes = []string{"db1", "db2", "db3"}
	}
	if c.http == "" {
		c.http = "off"
	}
	if c.brokers == "" {
		c.brokers = testenv.Addr("kafka")
	}
	var nodes strings.Builder
	for _, n := range c.nodes {
		addr := c.addrs[n]
		if addr == "" {
			addr = testenv.Addr(n)
		}
		fmt.Fprintf(&nodes, "  - {name: %s, dsn: \"root@tcp(%s)/\"", n, addr)
		if addr := c.nodeHTTP[n]; addr != "" {
			fmt.Fprintf(&nodes, ", http: %q", addr)
		}
		nodes.WriteString("}\n")
	}
	if c.olap {
		fmt.Fprintf(&nodes, "  - {name: olap, kind: clickhouse, dsn: %q}\n", chURL())
	}
	text := fmt.Sprintf(`cluster: e2e
master: db1
nodes:
%skafka:
  brokers: [%q]
  topic: %s
%ssource:
  include: ['^%s\.']
  heartbeat_interval: 1s
  start: current
  server_id: %d
%ssink:
  protect_replicas: %v
%shttp: %q
%s`, nodes.String(), c.brokers, c.topic, c.kafkaExtra, c.database,
		// Two readers with one server_id make the master drop one of them.
		100000+rand.IntN(1<<30), c.sourceExtra, c.protect, c.sinkExtra, c.http, c.extra)
	path := filepath.Join(t.TempDir(), "rowcast.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// e2eConfig writes a config for the local stack that replicates only the
// given database through the given topic.
func e2eConfig(t testing.TB, database, topic string) string {
	t.Helper()
	return clusterConfig{database: database, topic: topic}.write(t)
}

// startPublishing starts `rowcast command` (pipeline or run) and waits for
// its first message in the topic (a heartbeat).
func startPublishing(t testing.TB, command, cfg, topic string) *proc {
	t.Helper()
	p := startRowcast(t, command, "--config", cfg)
	waitFor(t, 60*time.Second, "the first heartbeat", func() bool {
		evs, _, err := readTopicFrom(topic, 0)
		if errors.Is(err, changelog.ErrTopicNotFound) {
			return false // the process has not created it yet
		}
		if err != nil {
			t.Fatal(err)
		}
		return len(evs) > 0
	})
	return p
}

// replication is a rowcast process that replicates a database of its own
// through a topic of its own.
type replication struct {
	topic, database, cfg string
	proc                 *proc
}

// startReplication starts `rowcast command` (pipeline or run) and creates the
// database once the reader runs, so that the replicas get it.
func startReplication(t *testing.T, command string) replication {
	t.Helper()
	r := replication{topic: testenv.CreateTopic(t, 1), database: testenv.UniqueName(t, "rc")}
	r.cfg = e2eConfig(t, r.database, r.topic)
	r.proc = startPublishing(t, command, r.cfg, r.topic)
	replicatedNamed(t, r.database)
	return r
}

// newBank creates the bank's accounts in database on the master.
func newBank(ctx context.Context, t testing.TB, database string, accounts int, initial int64) *workload.Bank {
	t.Helper()
	bank := &workload.Bank{DB: testenv.DB(t, testenv.Master), Database: database, Accounts: accounts, Initial: initial}
	if err := bank.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	return bank
}

// proc is a rowcast process started by a test.
type proc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	done   chan error    // Wait's result, for one receiver
	exited chan struct{} // closed when Wait returns, for any number
}

// running reports whether the process has not exited yet. Unlike
// cmd.ProcessState, it is safe while the goroutine in Wait writes that.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// syncBuffer is a bytes.Buffer that a running process writes while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startRowcast(t testing.TB, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(rowcastBinary(t), args...)
	var out syncBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.Env = append(os.Environ(), "CI=") // no terminal: JSON logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: &out, done: make(chan error, 1), exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		close(p.exited)
		p.done <- err
	}()
	t.Cleanup(func() {
		if p.running() {
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// TestProcExitsByItself: a started process that exits before the test ends
// (a sink that cannot bind its port, say) is seen as exited, and the cleanup
// then neither kills nor waits for it again. The subtest never waits on the
// process, so under -race its cleanup also checks that nothing reads
// cmd.ProcessState while Wait writes it, as the cleanup once did
// (TestAutoFailoverVantagePoints failed on that).
func TestProcExitsByItself(t *testing.T) {
	var p *proc
	t.Run("exits unwatched", func(t *testing.T) {
		p = startRowcast(t, "frobnicate")
		time.Sleep(3 * time.Second) // it exits at once; nothing here orders its Wait
	})
	if p.running() {
		t.Fatal("running() after the cleanup")
	}
	if err := <-p.done; err == nil || !strings.Contains(p.out.String(), `unknown command "frobnicate"`) {
		t.Fatalf("exit %v, output %q", err, p.out)
	}
}

// waitExit waits for the process to exit by itself, cleanly, within
// timeout.
func (p *proc) waitExit(t testing.TB, timeout time.Duration, what string) {
	t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("%s exited with %v:\n%s", what, err, p.out)
		}
	case <-time.After(timeout):
		t.Fatalf("%s did not stop within %v:\n%s", what, timeout, p.out)
	}
}

// scrape reads one series of a process's metrics: its value, 0 when the
// process has none.
func scrape(addr, series string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, err
}

func (p *proc) kill(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("rowcast exited with %v after SIGTERM:\n%s", err, p.out.String())
		}
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("rowcast did not stop within 60s of SIGTERM:\n%s", p.out.String())
	}
}

// readTopic decodes every message of a topic, in offset order.
func readTopic(t testing.TB, topic string) []*pipeline.Event {
	t.Helper()
	evs, _, err := readTopicFrom(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// readTopicFrom decodes the messages of a topic from offset from to its
// current end, and returns them with the offset that follows them.
func readTopicFrom(topic string, from int64) ([]*pipeline.Event, int64, error) {
	kc := changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic}
	ctx := context.Background()
	end, err := changelog.EndOffset(ctx, kc)
	if err != nil {
		return nil, from, err
	}
	codec := &pipeline.Codec{}
	var out []*pipeline.Event
	off := from
	for off < end {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		msgs, err := changelog.ReadAt(rctx, kc, off, 5000)
		cancel()
		if err != nil {
			return out, off, err
		}
		if len(msgs) == 0 {
			return out, off, fmt.Errorf("no message at offset %d of %d", off, end)
		}
		for _, m := range msgs {
			ev, err := codec.Decode(m.Key, m.Value)
			if err != nil {
				return out, off, fmt.Errorf("offset %d: %w", m.Offset, err)
			}
			out = append(out, ev)
			off = m.Offset + 1
		}
	}
	return out, off, nil
}

// txnView is a source transaction as a sink sees it after de-duplication.
type txnView struct {
	seq  uint64
	gtid string
	rows []*pipeline.Event
}

// dedupe applies the sinks' rules to a changelog: a transaction counts once,
// when its last message arrives; copies of rows already seen (retried
// produces, transactions republished after a crash) are skipped by position.
// It fails the test on a gap.
func dedupe(t testing.TB, evs []*pipeline.Event) []txnView {
	t.Helper()
	var out []txnView
	var applied uint64
	var open *txnView
	for i, ev := range evs {
		if !ev.InTxn() {
			continue
		}
		p := ev.Pos
		if p.TxnSeq <= applied {
			continue
		}
		if open == nil || open.seq != p.TxnSeq {
			if p.Row != 0 {
				t.Fatalf("message %d: %s starts transaction %d at row %d", i, p, p.TxnSeq, p.Row)
			}
			if p.TxnSeq != applied+1 {
				t.Fatalf("message %d: transaction %d follows %d", i, p.TxnSeq, applied)
			}
			open = &txnView{seq: p.TxnSeq, gtid: ev.GTID}
		}
		switch {
		case p.Row < uint64(len(open.rows)):
			continue // a copy
		case p.Row > uint64(len(open.rows)):
			t.Fatalf("message %d: %s skips rows after %d", i, p, len(open.rows))
		}
		if ev.GTID != open.gtid {
			t.Fatalf("message %d: %s has GTID %s, transaction started with %s", i, p, ev.GTID, open.gtid)
		}
		open.rows = append(open.rows, ev)
		if p.Last {
			out = append(out, *open)
			applied = p.TxnSeq
			open = nil
		}
	}
	return out
}

// waitTxns reads the topic as it grows until it holds at least want
// transactions after de-duplication, and returns them with the number of raw
// messages. It must not wait for the topic to stop growing: an idle
// publisher keeps adding heartbeats. Errors while Kafka restarts are retried.
func waitTxns(t testing.TB, topic string, want int, timeout time.Duration) ([]txnView, int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var evs []*pipeline.Event
	var txns []txnView
	var off int64
	var lastErr error
	for time.Now().Before(deadline) {
		more, next, err := readTopicFrom(topic, off)
		evs, off, lastErr = append(evs, more...), next, err
		if len(more) > 0 {
			txns = dedupe(t, evs)
		}
		if len(txns) >= want {
			return txns, len(evs)
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("after %v the topic holds %d transactions (%d messages), want %d (last read error: %v)", timeout, len(txns), len(evs), want, lastErr)
	return nil, 0
}

// runCLIProcess runs the rowcast binary to the end and returns its exit
// code, stdout and stderr.
func runCLIProcess(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rowcastBinary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "CI=")
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("rowcast %s: %v", args[0], err)
	}
	return code, out.String(), errb.String()
}
