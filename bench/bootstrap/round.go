package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/config"
)

// round is one measurement of each method, on fresh replicas and a fresh
// topic.
type round struct {
	n       int
	topic   string
	cfgPath string
	cfg     *config.Config
	kc      changelog.Config

	dump   measurement
	topicM measurement // the snapshot into the topic, a part of snap
	snap   measurement
	clones []measurement
	extra  snapExtra
	checks []string // what the checks at the end found

	pipe, snapSink, cloneSink *proc
}

// named is a value of one process or part.
type named struct {
	name string
	v    float64
}

// measurement is one method's way from an empty replica to a caught-up
// one.
type measurement struct {
	method  string
	seconds float64 // from the start to caught-up
	rows    int
	steps   string  // what the time is made of
	cpu     []named // CPU seconds by process, "others" last
	rss     []named // peak RSS in bytes by process
}

func (m measurement) rate() float64 { return float64(m.rows) / max(m.seconds, 1e-9) }

// round runs one round: the dump first in odd rounds, last in even ones,
// each method on servers that have flushed what the one before wrote; then
// the checks.
func (b *bench) round(ctx context.Context, n int) (*round, error) {
	r := &round{n: n}
	defer r.stopProcs()
	if err := b.prepareRound(ctx, r); err != nil {
		return r, err
	}
	steps := []func(context.Context, *round) error{b.measureDump, b.measureSnapshot, b.measureClones}
	if n%2 == 0 {
		steps = []func(context.Context, *round) error{b.measureSnapshot, b.measureClones, b.measureDump}
	}
	for _, step := range steps {
		if err := b.settle(ctx); err != nil {
			return r, err
		}
		if err := step(ctx, r); err != nil {
			return r, err
		}
	}
	return r, b.check(ctx, r)
}

// prepareRound makes the replicas empty servers again (after the first
// round) and creates the round's topic and config.
func (b *bench) prepareRound(ctx context.Context, r *round) error {
	if r.n > 1 {
		for _, s := range b.replicas() {
			if err := s.restart(ctx, b.o.template); err != nil {
				return err
			}
		}
	}
	r.topic = fmt.Sprintf("rcbench_bootstrap_%s_%d_%04x", b.when.Format("20060102_150405"), r.n, rand.Uint32()&0xffff)
	var err error
	if r.cfgPath, r.cfg, err = b.writeConfig(r.topic); err != nil {
		return err
	}
	r.kc = r.cfg.ChangelogConfig()
	b.topics = append(b.topics, r.topic)
	if _, err := changelog.EnsureTopic(ctx, r.kc); err != nil {
		return fmt.Errorf("create topic %s: %w", r.topic, err)
	}
	return nil
}

// stopProcs stops the round's rowcast processes.
func (r *round) stopProcs() {
	for _, p := range []*proc{r.cloneSink, r.snapSink, r.pipe} {
		if p != nil {
			p.stop()
		}
	}
}

// settle makes every server flush its dirty pages down to 1% of its buffer
// pool, so that no measurement pays for the writes of the one before: with
// innodb_max_dirty_pages_pct_lwm at 0, an idle MariaDB leaves them dirty.
func (b *bench) settle(ctx context.Context) error {
	t0 := time.Now()
	for _, s := range b.servers() {
		if err := s.flush(ctx, 3*time.Minute); err != nil {
			return err
		}
	}
	if d := time.Since(t0); d > time.Second {
		logf("waited %.0fs for the servers to flush their dirty pages", d.Seconds())
	}
	return nil
}

// part is a process a meter watches.
type part struct {
	name string
	pid  func() int
}

// meter measures the CPU seconds of the watched processes, of exited ones
// (added at the end) and of everything else on the machine.
type meter struct {
	parts []part
	m     *benchkit.CPUMeter
	t0    benchkit.CPUSample
}

func newMeter(parts ...part) *meter {
	pids := make([]func() int, len(parts))
	for i, p := range parts {
		pids[i] = p.pid
	}
	m := &meter{parts: parts, m: benchkit.NewCPUMeter(pids...)}
	m.t0 = m.m.Now()
	return m
}

// since is the CPU seconds since the meter started: the exited processes',
// the watched ones', and the rest of the machine's as "others".
func (m *meter) since(exited ...named) []named {
	c := m.m.Now().Since(m.t0)
	others := c.Others()
	out := append([]named(nil), exited...)
	for _, e := range exited {
		others -= e.v
	}
	for i, p := range m.parts {
		out = append(out, named{p.name, c.Proc(i)})
	}
	return append(out, named{"others", max(0, others)})
}

// kafkaPart is the stack's broker, its pid read at every sample.
func (b *bench) kafkaPart() part { return part{"kafka", b.o.Kafka.BrokerPID} }

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// waitFor polls cond every 100 ms until it holds, alive fails, or limit.
func waitFor(ctx context.Context, limit time.Duration, alive func() error, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if err := alive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %v", limit)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}
