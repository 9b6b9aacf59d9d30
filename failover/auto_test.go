package failover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/obs"
	"github.com/rowcast/rowcast/internal/testenv"
)

// The automatic failover on the stack's nodes, with db1 the master. A
// partition is a config: the watching host's names db1 at a closed port
// (it cannot reach db1); each observer runs its own Reach of db1, at its
// real address (it reaches db1) or at a closed port (it does not), and
// serves it on /healthz as rowcast processes do.

// TestAutoMinority: this host cannot reach db1, one observer reaches it and
// the other does not answer: 1 of 3 vantage points, no promotion.
func TestAutoMinority(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	reaches := observer(t, clusterConfig(t, topic, "db1"), "reaches")
	a, log := autoConfig(t, topic, reaches, "127.0.0.1:1")
	promoted := 0
	a.Promote = func(context.Context, Options) (*Result, error) {
		promoted++
		return nil, errors.New("no promotion in this test")
	}
	watchFor(a, 4*time.Second)
	if promoted != 0 {
		t.Fatalf("promoted %d times on a minority view:\n%s", promoted, log)
	}
	out := log.String()
	for _, want := range []string{"1 of 3 vantage points see db1 down: this host", "; " + reaches + ": reaches it",
		"; 127.0.0.1:1: no answer", "no majority, not promoting"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}

// TestAutoMajority: this host and one observer cannot reach db1, the other
// observer reaches it: 2 of 3, and the emergency promotion of db2 runs.
func TestAutoMajority(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	down := observer(t, clusterConfig(t, topic, "db1", "db1"), "down")
	reaches := observer(t, clusterConfig(t, topic, "db1"), "reaches")
	a, log := autoConfig(t, topic, down, reaches)
	s := ownBookkeeping(t, a.Cfg, "db2", "db3")
	saveCheckpoint(t, "db2", s, topic, 5)
	saveCheckpoint(t, "db3", s, topic, 3)
	keepWritable(t, "db2")
	p := &Promoter{Cfg: a.Cfg, Kafka: a.Kafka, Log: zerolog.Nop()}
	var res *Result
	var perr error
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a.Promote = func(ctx context.Context, o Options) (*Result, error) {
		res, perr = p.Promote(ctx, o)
		cancel()
		return res, perr
	}
	a.Watch(ctx, func() (string, uint64) { return "db1", 1 })
	if perr != nil || res == nil {
		t.Fatalf("no promotion on a majority view (%v):\n%s", perr, log)
	}
	if res.OldMaster != "db1" || res.NewMaster != "db2" || res.Epoch != 2 {
		t.Fatalf("result %+v", res)
	}
	out := log.String()
	for _, want := range []string{"2 of 3 vantage points see db1 down: this host (for ", ", " + down + " (for ", "; " + reaches + ": reaches it", ": a majority"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}

// TestJudge: an observer's view counts as down only when it is recent and
// has lasted unreachable_after.
func TestJudge(t *testing.T) {
	b := &ballot{after: 10 * time.Second, every: time.Second}
	for _, c := range []struct {
		nr   NodeReach
		seen bool
		want string
	}{
		{NodeReach{}, false, "none"},
		{NodeReach{OK: false, ForMS: 60000, CheckedAgoMS: 4500, Error: "x"}, true, "stale"},
		{NodeReach{OK: true, ForMS: 60000, CheckedAgoMS: 100}, true, "up"},
		{NodeReach{OK: false, ForMS: 9000, CheckedAgoMS: 100, Error: "x"}, true, "short"},
		{NodeReach{OK: false, ForMS: 10000, CheckedAgoMS: 3900, Error: "x"}, true, "down"},
	} {
		if kind, why := b.judge(c.nr, c.seen); kind != c.want {
			t.Errorf("%+v: %s (%s), want %s", c.nr, kind, why, c.want)
		}
	}
}

// TestFenceCommand: an emergency promotion runs failover.fence_command
// once it knows the replica, before the epoch record, with the old and the
// new master in its environment.
func TestFenceCommand(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "env")
	ft := newFenceTest(t, "env | grep -E '^ROWCAST_(CLUSTER|TOPIC|EPOCH|NEW_EPOCH|NEW_MASTER|OLD_MASTER)' | sort > "+envFile+"; echo fenced $ROWCAST_OLD_MASTER", time.Minute)
	res, err := ft.p.Promote(context.Background(), ft.opts)
	if err != nil {
		t.Fatal(err)
	}
	checkSteps(t, res, "look up the current master", "take the promotion lease", "check that the master does not answer",
		"pick the replica with the highest applied offset", "fence db1 with failover.fence_command", "wait for db2 to apply the whole topic",
		"write the epoch record", "check that no other promotion came first", "make db2 writable", "record the epoch in the nodes' index")
	if d := res.Steps[4].Detail; !strings.HasPrefix(d, "exited 0 in ") || !strings.HasSuffix(d, ": fenced db1") {
		t.Errorf("fence step detail %q", d)
	}
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("ROWCAST_CLUSTER=t\nROWCAST_EPOCH=1\nROWCAST_NEW_EPOCH=2\nROWCAST_NEW_MASTER=db2\nROWCAST_NEW_MASTER_ADDR=%s\n"+
		"ROWCAST_OLD_MASTER=db1\nROWCAST_OLD_MASTER_ADDR=127.0.0.1:1\nROWCAST_TOPIC=%s\n", testenv.Addr("db2"), ft.topic)
	if string(b) != want {
		t.Fatalf("the fence command's environment:\n%s\nwant:\n%s", b, want)
	}
}

// TestFenceCommandFails: a fence command that fails, or does not exit in
// time, aborts the promotion before the epoch record, and says so.
func TestFenceCommandFails(t *testing.T) {
	for _, c := range []struct {
		cmd     string
		timeout time.Duration
		want    []string
	}{
		{"echo cannot reach the PDU >&2; exit 3", time.Minute, []string{"failover.fence_command failed (exit status 3; output: cannot reach the PDU)"}},
		{"echo started; sleep 20", 300 * time.Millisecond, []string{"it did not exit within failover.fence_command_timeout (300ms) and was killed; output: started"}},
	} {
		ft := newFenceTest(t, c.cmd, c.timeout)
		start := time.Now()
		_, err := ft.p.Promote(context.Background(), ft.opts)
		var ae *AbortError
		if !errors.As(err, &ae) || ae.Step != "fence db1 with failover.fence_command" || ae.Undo != "promotion lease released" {
			t.Fatalf("%s: %v, want an abort at the fence command", c.cmd, err)
		}
		for _, want := range append(c.want, "db1 may still take writes from its clients, so nothing is promoted") {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: the error lacks %q: %v", c.cmd, want, err)
			}
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s: the abort took %v", c.cmd, took)
		}
		if marks := epochRecords(t, ft.p.Kafka); len(marks) != 0 {
			t.Errorf("%s: epoch records in the topic: %+v", c.cmd, marks)
		}
	}
}

// fenceTest is an emergency promotion while db1, the master, does not
// answer, with a fence command: db2 has applied more than db3.
type fenceTest struct {
	p     *Promoter
	opts  Options
	topic string
}

func newFenceTest(t *testing.T, cmd string, timeout time.Duration) *fenceTest {
	topic := testenv.CreateTopic(t, 1)
	cfg := testConfig(t, topic, "db1")
	cfg.Failover.FenceCommand, cfg.Failover.FenceCommandTimeout = cmd, config.Duration(timeout)
	s := ownBookkeeping(t, cfg, "db2", "db3")
	saveCheckpoint(t, "db2", s, topic, 5)
	saveCheckpoint(t, "db3", s, topic, 3)
	keepWritable(t, "db2")
	return &fenceTest{p: &Promoter{Cfg: cfg, Kafka: changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic}, Log: zerolog.Nop()},
		opts: Options{Force: true, Holder: "test", LeaseTTL: time.Minute, CatchupTimeout: 10 * time.Second}, topic: topic}
}

// autoConfig is an automatic failover of topic that cannot reach db1, with
// the observers named, and its log.
func autoConfig(t *testing.T, topic string, observers ...string) (*Auto, *syncBuffer) {
	cfg := testConfig(t, topic, "db1")
	cfg.Failover.Mode, cfg.Failover.Observers = config.FailoverAuto, observers
	cfg.Failover.CheckInterval, cfg.Failover.UnreachableAfter = config.Duration(200*time.Millisecond), config.Duration(time.Second)
	log := &syncBuffer{}
	return &Auto{Cfg: cfg, Kafka: changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic}, Log: zerolog.New(log)}, log
}

// watchFor runs a's watch of db1, epoch 1, for d.
func watchFor(a *Auto, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	a.Watch(ctx, func() (string, uint64) { return "db1", 1 })
}

// observer runs a vantage point with cfg's view of the nodes, checked every
// 200ms, as another process named name, and returns its http address.
func observer(t *testing.T, cfg *config.Config, name string) string {
	cfg.Failover.CheckInterval = config.Duration(200 * time.Millisecond)
	r := NewReach(cfg)
	r.instance = name
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx)
		close(done)
	}()
	h := obs.NewHealth()
	h.SetDetail(ReachDetail, func() any { return r.Report() })
	srv := httptest.NewServer(obs.Handler(obs.NewRegistry(), h))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
	})
	return strings.TrimPrefix(srv.URL, "http://")
}

// syncBuffer is a log that may be written and read at once.
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
