package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

// fault is one kind of fault: run injects it and waits until what it
// stopped runs again; it returns what it did, for the log.
type fault struct {
	name string
	run  func(s *soak, ctx context.Context) (string, error)
}

// faults are drawn at random, a shuffled round of all of them at a time, so
// that a short run sees each kind too.
var faults = []fault{
	{"SIGKILL of the reader", (*soak).killReader},
	{"SIGKILL of a sink", (*soak).killSink},
	{"SIGSTOP/SIGCONT of the reader", (*soak).pauseReader},
	{"Kafka broker stop/start", (*soak).restartKafka},
	{"SIGKILL of a replica's mariadbd", (*soak).crashReplica},
	{"stop/start of a replica's mariadbd", (*soak).restartReplica},
}

// The planned switchover and its way back, each once per run.
var (
	switchover = fault{"planned switchover", (*soak).switchAway}
	switchBack = fault{"planned switchover back", (*soak).switchHome}
)

// schedule says which fault comes next: the switchover at a random moment
// in the run's first half, the way back in its second half, else the next
// card of a shuffled deck of the other kinds.
type schedule struct {
	r              *rand.Rand
	deck           []int
	end            time.Time
	away, back     time.Time
	awayDone, done bool
}

func newSchedule(r *rand.Rand, start time.Time, d time.Duration) *schedule {
	at := func(lo, hi float64) time.Time {
		return start.Add(time.Duration((lo + (hi-lo)*r.Float64()) * float64(d)))
	}
	return &schedule{r: r, end: start.Add(d), away: at(0.2, 0.4), back: at(0.55, 0.75)}
}

// next is the fault to inject now; false when the run's time is up and the
// master is home again.
func (p *schedule) next(now time.Time) (fault, bool) {
	switch {
	case !p.awayDone && (now.After(p.away) || now.After(p.end)):
		p.awayDone = true
		return switchover, true
	case !p.done && (now.After(p.back) || now.After(p.end)):
		p.done = true
		return switchBack, true
	case now.After(p.end):
		return fault{}, false
	}
	if len(p.deck) == 0 {
		p.deck = p.r.Perm(len(faults))
	}
	f := faults[p.deck[0]]
	p.deck = p.deck[1:]
	return f, true
}

// inject injects faults until the run's time is up, with random pauses
// between them, and records each in res.
func (s *soak) inject(ctx context.Context, res *result) error {
	plan := newSchedule(s.r, time.Now(), s.o.duration())
	for {
		if err := s.pauseRand(ctx, s.o.gapMin, s.o.gapMax); err != nil {
			return err
		}
		f, ok := plan.next(time.Now())
		if !ok {
			return nil
		}
		t0 := time.Now()
		detail, err := f.run(s, ctx)
		if first := s.failure(); first != nil {
			return first // what went wrong first, not what it made the fault run into
		}
		if err != nil {
			return fmt.Errorf("fault %d, %s: %w", len(res.faults)+1, f.name, err)
		}
		res.faults = append(res.faults, faultRun{name: f.name, detail: detail, at: t0, took: time.Since(t0)})
		benchkit.Logf("fault %d: %s: %s (%v)", len(res.faults), f.name, detail, time.Since(t0).Round(time.Millisecond))
	}
}

func (s *soak) killReader(ctx context.Context) (string, error) {
	if err := s.procs.kill("pipeline"); err != nil {
		return "", err
	}
	down, err := s.downFor(ctx, 0, 2*time.Second)
	if err != nil {
		return "", err
	}
	return "down " + down, s.startPipeline()
}

func (s *soak) killSink(ctx context.Context) (string, error) {
	node := s.pick(s.replicas())
	if err := s.procs.kill(sinkRole(node)); err != nil {
		return "", err
	}
	down, err := s.downFor(ctx, 0, 2*time.Second)
	if err != nil {
		return "", err
	}
	return node + "'s, down " + down, s.startSink(node)
}

func (s *soak) pauseReader(ctx context.Context) (string, error) {
	if err := s.procs.signal("pipeline", syscall.SIGSTOP); err != nil {
		return "", err
	}
	stopped, err := s.downFor(ctx, 2*time.Second, 6*time.Second)
	if cerr := s.procs.signal("pipeline", syscall.SIGCONT); err == nil {
		err = cerr
	}
	return "stopped " + stopped, err
}

func (s *soak) restartKafka(ctx context.Context) (string, error) {
	return s.restartService(ctx, "kafka", func() error { return s.stack(ctx, "stop", "kafka") })
}

func (s *soak) crashReplica(ctx context.Context) (string, error) {
	node := s.pick(s.replicas())
	detail, err := s.restartService(ctx, node, func() error { return s.killMariadb(ctx, node) })
	return node + ", " + detail, err
}

func (s *soak) restartReplica(ctx context.Context) (string, error) {
	node := s.pick(s.replicas())
	detail, err := s.restartService(ctx, node, func() error { return s.stack(ctx, "stop", node) })
	return node + ", " + detail, err
}

// restartService stops a service of the stack with stop, leaves it down
// for a moment and starts it again with scripts/stack.
func (s *soak) restartService(ctx context.Context, name string, stop func() error) (string, error) {
	t0 := time.Now()
	if err := stop(); err != nil {
		return "", err
	}
	if _, err := s.downFor(ctx, time.Second, 4*time.Second); err != nil {
		return "", err
	}
	if err := s.stack(ctx, "start", name); err != nil {
		return "", err
	}
	return "down " + time.Since(t0).Round(100*time.Millisecond).String(), nil
}

// killMariadb SIGKILLs a node's mariadbd and waits until it no longer
// answers.
func (s *soak) killMariadb(ctx context.Context, node string) error {
	b, err := os.ReadFile(filepath.Join(s.o.stateDir, node, "mariadbd.pid"))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%s's pid file: %w", node, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill -9 %d (%s's mariadbd): %w", pid, node, err)
	}
	return s.waitUntil(ctx, 30*time.Second, node+" to stop answering", func() bool { return !s.answers(node) })
}

// downFor pauses for a random time in [lo, hi] and says how long.
func (s *soak) downFor(ctx context.Context, lo, hi time.Duration) (string, error) {
	d := lo + time.Duration(s.r.Int64N(int64(hi-lo)+1))
	return d.Round(100 * time.Millisecond).String(), s.pause(ctx, d)
}

func (s *soak) pick(from []string) string { return from[s.r.IntN(len(from))] }
