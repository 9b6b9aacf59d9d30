package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

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

// e2eConfig writes a config for the local stack that replicates only the
// given database through the given topic.
func e2eConfig(t testing.TB, database, topic string, extra string) string {
	t.Helper()
	text := fmt.Sprintf(`cluster: e2e
master: db1
nodes:
  - {name: db1, dsn: "root@tcp(%s)/"}
  - {name: db2, dsn: "root@tcp(%s)/"}
  - {name: db3, dsn: "root@tcp(%s)/"}
kafka:
  brokers: [%q]
  topic: %s
source:
  include: ['^%s\.']
  heartbeat_interval: 1s
  start: current
  server_id: %d
sink:
  protect_replicas: false
http: "off"
%s`, testenv.Addr("db1"), testenv.Addr("db2"), testenv.Addr("db3"), testenv.Addr("kafka"), topic, database,
		// Two readers with one server_id make the master drop one of them.
		100000+rand.IntN(1<<30), extra)
	path := filepath.Join(t.TempDir(), "rowcast.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// proc is a rowcast process started by a test.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
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
	p := &proc{cmd: cmd, out: &out, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
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
	kc := pipeline.KafkaConfig{Brokers: testenv.KafkaBrokers(), Topic: topic}
	ctx := context.Background()
	end, err := pipeline.EndOffset(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	codec := &pipeline.Codec{}
	var out []*pipeline.Event
	for off := int64(0); off < end; {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		msgs, err := pipeline.ReadAt(rctx, kc, off, 5000)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			t.Fatalf("no message at offset %d of %d", off, end)
		}
		for _, m := range msgs {
			ev, err := codec.Decode(m.Key, m.Value)
			if err != nil {
				t.Fatalf("offset %d: %v", m.Offset, err)
			}
			out = append(out, ev)
			off = m.Offset + 1
		}
	}
	return out
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

// waitTxns waits until the topic has stopped growing and holds at least want
// transactions after de-duplication, and returns them with the number of raw
// messages. Reading and decoding the whole topic is costly, so it is done
// only once the end offset has been stable for a second.
func waitTxns(t testing.TB, topic string, want int, timeout time.Duration) ([]txnView, int) {
	t.Helper()
	kc := pipeline.KafkaConfig{Brokers: testenv.KafkaBrokers(), Topic: topic}
	deadline := time.Now().Add(timeout)
	last := int64(-1)
	var txns []txnView
	raw := 0
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		end, err := pipeline.EndOffset(context.Background(), kc)
		if err != nil || end != last {
			last = end
			continue
		}
		evs := readTopic(t, topic)
		txns, raw = dedupe(t, evs), len(evs)
		if len(txns) >= want {
			return txns, raw
		}
	}
	t.Fatalf("after %v the topic holds %d transactions (%d messages), want %d", timeout, len(txns), raw, want)
	return nil, 0
}
