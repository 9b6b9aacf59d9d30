package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/internal/freeport"
)

// initialBalance is each account's opening balance.
const initialBalance = 1000

// soak is one run: the cluster it set up, the processes, the load, the
// checker, and the first failure.
type soak struct {
	o        options
	r        *rand.Rand
	c        *cluster
	cfg      string // the rowcast config
	pipeHTTP string
	nodeHTTP map[string]string
	procs    *supervisor
	load     *bankLoad
	check    *checker

	mu     sync.Mutex
	master string

	failOnce sync.Once
	failed   chan struct{}
	failErr  error
}

func newSoak(o options) (*soak, error) {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(o.seed, 15))
	c, err := newCluster(r)
	if err != nil {
		return nil, err
	}
	s := &soak{o: o, r: r, c: c, cfg: filepath.Join(o.dir, "rowcast.yaml"), master: "db1",
		nodeHTTP: map[string]string{}, failed: make(chan struct{})}
	s.procs = newSupervisor(o.rowcast, o.dir, s.exited)
	return s, nil
}

// fail records the first failure and ends the run.
func (s *soak) fail(err error) {
	s.failOnce.Do(func() {
		s.failErr = err
		close(s.failed)
		benchkit.Logf("FAILURE: %v", err)
	})
}

// exited is a process that ended without the soak causing it.
func (s *soak) exited(role string, err error) {
	s.fail(fmt.Errorf("%s exited by itself (%v); its log: %s", role, err, s.procs.logPath(role)))
}

// failure is the run's failure so far, nil while there is none.
func (s *soak) failure() error {
	select {
	case <-s.failed:
		return s.failErr
	default:
		return nil
	}
}

// pause waits for d, unless the run fails or ends first.
func (s *soak) pause(ctx context.Context, d time.Duration) error {
	select {
	case <-s.failed:
		return s.failErr
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("the run's time is up (%v)", s.o.timeout())
		}
		return errors.New("interrupted by a signal (SIGINT or SIGTERM)")
	case <-time.After(d):
		return nil
	}
}

// pauseRand pauses for a random time in [lo, hi].
func (s *soak) pauseRand(ctx context.Context, lo, hi time.Duration) error {
	return s.pause(ctx, lo+time.Duration(s.r.Int64N(int64(hi-lo)+1)))
}

func (s *soak) currentMaster() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.master
}

// replicas are the nodes other than the current master.
func (s *soak) replicas() []string {
	m := s.currentMaster()
	var out []string
	for _, n := range nodes {
		if n != m {
			out = append(out, n)
		}
	}
	return out
}

func sinkRole(node string) string { return "sink " + node }

func (s *soak) startSink(node string) error {
	return s.procs.start(sinkRole(node), "sink", "--config", s.cfg, "--replica", node)
}

func (s *soak) startPipeline() error {
	return s.procs.start("pipeline", "pipeline", "--config", s.cfg)
}

// run sets the cluster up, injects faults under the load, and checks the
// outcome.
func (s *soak) run(ctx context.Context) *result {
	res := &result{start: time.Now(), seed: s.o.seed, dir: s.o.dir, database: s.c.database, topic: s.c.topic}
	benchkit.Logf("soak of %v: seed %d, logs in %s", s.o.duration(), s.o.seed, s.o.dir)
	if err := s.setup(ctx); err != nil {
		res.err = fmt.Errorf("setup: %w", err)
		return res
	}
	s.load.start(ctx)
	s.check.start()
	go s.watchProgress(ctx)
	res.err = s.inject(ctx, res)
	res.faultPhase = time.Since(res.start)
	s.load.stopLoad()
	if res.err == nil {
		res.err = s.finish(ctx, res)
	}
	s.check.stopChecking()
	if res.err == nil {
		res.err = s.failure() // one reported while the checker stopped
	}
	res.collect(s)
	return res
}

// setup starts the services that are down, creates the application user,
// starts the reader, creates the bank
// once the reader runs (so that the replicas get it), starts the sinks and
// waits until the replicas hold the bank.
func (s *soak) setup(ctx context.Context) error {
	if err := s.servicesUp(ctx); err != nil {
		return err
	}
	if err := s.c.prepare(ctx); err != nil {
		return err
	}
	if err := s.pickAddrs(); err != nil {
		return err
	}
	if err := s.c.writeConfig(s.cfg, s.pipeHTTP, s.nodeHTTP, 200000+s.r.IntN(1<<29)); err != nil {
		return err
	}
	if err := s.startPipeline(); err != nil {
		return err
	}
	if err := s.waitHeartbeat(ctx); err != nil {
		return err
	}
	if err := s.c.createBank(ctx, "db1", s.o.accounts, initialBalance); err != nil {
		return err
	}
	for _, n := range s.replicas() {
		if err := s.startSink(n); err != nil {
			return err
		}
	}
	if err := s.waitBank(ctx); err != nil {
		return err
	}
	return s.newWorkers()
}

// newWorkers makes the load (the application user on each node) and the
// checker (root on each node).
func (s *soak) newWorkers() error {
	apps := map[string]*sql.DB{}
	for _, n := range nodes {
		db, err := s.c.appDB(n)
		if err != nil {
			return err
		}
		apps[n] = db
	}
	s.load = newBankLoad(apps, "db1", s.o.accounts, s.o.clients, s.o.rate)
	s.check = newChecker(s.c.root, s.c.database, s.o.accounts, int64(s.o.accounts)*initialBalance, s.fail)
	return nil
}

// waitHeartbeat waits for the reader's first message in the topic.
func (s *soak) waitHeartbeat(ctx context.Context) error {
	kc := changelog.Config{Brokers: []string{addr("kafka")}, Topic: s.c.topic}
	return s.waitUntil(ctx, time.Minute, "the reader's first heartbeat", func() bool {
		end, err := changelog.EndOffset(ctx, kc)
		return err == nil && end > 0
	})
}

// waitBank waits until every replica holds all the accounts.
func (s *soak) waitBank(ctx context.Context) error {
	for _, n := range s.replicas() {
		err := s.waitUntil(ctx, 2*time.Minute, n+" to hold the bank", func() bool {
			var count int
			err := s.c.root[n].QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+s.c.database+"`.accounts").Scan(&count)
			return err == nil && count == s.o.accounts
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// waitUntil polls ok every 200 ms until it holds, the run fails, or
// timeout passes.
func (s *soak) waitUntil(ctx context.Context, timeout time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for %s", timeout, what)
		}
		if err := s.pause(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// healthy reports whether a process's /healthz answers 200.
func healthy(addr string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// pickAddrs picks the HTTP addresses of the pipeline and of each sink,
// all different.
func (s *soak) pickAddrs() error {
	var err error
	if s.pipeHTTP, err = freeport.Addr(); err != nil {
		return err
	}
	for _, n := range nodes {
		if s.nodeHTTP[n], err = freeport.Addr(); err != nil {
			return err
		}
	}
	return nil
}

// watchProgress logs the run's figures every minute, and fails the run when
// no transfer committed for two minutes.
func (s *soak) watchProgress(ctx context.Context) {
	for i := 1; ; i++ {
		if s.pause(ctx, 5*time.Second) != nil {
			return
		}
		if d := s.load.sinceCommit(); d > 2*time.Minute {
			s.fail(fmt.Errorf("no transfer committed on the master (%s) for %v; the clients saw: %s", s.currentMaster(), d.Round(time.Second), s.load.errorSummary()))
			return
		}
		if i%12 == 0 {
			benchkit.Logf("%d transfers committed; master %s; consistent reads %s", s.load.committed.Load(), s.currentMaster(), s.readCounts())
		}
	}
}

func (s *soak) readCounts() string {
	out := ""
	for _, n := range nodes {
		out += fmt.Sprintf(" %s %d", n, s.check.reads[n].Load())
	}
	return out[1:]
}

// cleanup stops whatever still runs, brings stopped services back, and
// puts the stack back as the soak found it. A failed run keeps its
// database, topic and logs for a look.
func (s *soak) cleanup(passed bool) {
	if s.load != nil {
		s.load.stopLoad()
	}
	if s.check != nil {
		s.check.stopChecking()
	}
	s.procs.killAll()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := s.servicesUp(ctx); err != nil {
		benchkit.Logf("cleanup: %v", err)
	}
	keep := s.o.keep || !passed
	if err := s.c.restore(ctx, keep); err != nil {
		benchkit.Logf("cleanup: %v", err)
	}
	if keep {
		benchkit.Logf("kept: database %s, topic %s, logs in %s", s.c.database, s.c.topic, s.o.dir)
		return
	}
	os.RemoveAll(s.o.dir)
}

// servicesUp starts every service of the stack that does not answer.
func (s *soak) servicesUp(ctx context.Context) error {
	var errs []error
	for _, n := range append(append([]string(nil), nodes...), "kafka") {
		if s.answers(n) {
			continue
		}
		errs = append(errs, s.stack(ctx, "start", n))
	}
	return errors.Join(errs...)
}

// answers reports whether a service accepts connections.
func (s *soak) answers(service string) bool {
	conn, err := net.DialTimeout("tcp", addr(service), 2*time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// stack runs scripts/stack ACTION NAME.
func (s *soak) stack(ctx context.Context, action, name string) error {
	out, code := runLogged(ctx, 5*time.Minute, filepath.Join(s.o.dir, "stack.log"), s.o.stack, action, name)
	if code != 0 {
		return fmt.Errorf("scripts/stack %s %s: exit %d\n%s", action, name, code, out)
	}
	return nil
}

// printLogTails prints the end of every log of the run, after a failure.
func (s *soak) printLogTails(w io.Writer) {
	files, _ := filepath.Glob(filepath.Join(s.o.dir, "*.log"))
	for _, f := range files {
		fmt.Fprintf(w, "\n=== last lines of %s\n%s\n", f, tail(f, 40))
	}
}
