package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/failover"
	"github.com/rowcast/rowcast/service"
)

func init() {
	commands["sink"] = command{summary: "run one replica's sink worker: apply the changelog to it", run: runSink}
	commands["run"] = command{summary: "run the pipeline service and every sink worker in one process; a failed sink stops alone", run: runAll}
}

// offsetList is a repeatable --skip-offset flag.
type offsetList []int64

func (o *offsetList) String() string {
	s := make([]string, len(*o))
	for i, v := range *o {
		s[i] = strconv.FormatInt(v, 10)
	}
	return strings.Join(s, ",")
}

func (o *offsetList) Set(v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not an offset", v)
	}
	*o = append(*o, n)
	return nil
}

// domainList collects repeated --adopt-domain flags.
type domainList []uint32

func (d *domainList) String() string { return fmt.Sprint([]uint32(*d)) }

func (d *domainList) Set(v string) error {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return fmt.Errorf("%q is not a GTID domain id", v)
	}
	*d = append(*d, uint32(n))
	return nil
}

func runSink(ctx context.Context, args []string, _, stderr io.Writer) error {
	env := newCommand("sink", "--config FILE --replica NAME [--skip-offset N]...", "info", stderr)
	replica := env.fs.String("replica", "", "the replica node to apply to")
	var skips offsetList
	env.fs.Var(&skips, "skip-offset", "skip the message at this offset on purpose (repeatable); recorded in the replica's skipped table")
	start := env.fs.Int64("start-offset", 0, "where a replica without a checkpoint starts (a replica seeded as of that offset)")
	var adopt domainList
	env.fs.Var(&adopt, "adopt-domain", "master-master: apply the transactions of this GTID domain in the master's topic as its own (written while its gtid_domain_id was wrong; repeatable)")
	cfg, log, err := env.setup(args, requireFlag(replica, "--replica is required: name the replica node, e.g. --replica db2"))
	if err != nil {
		return err
	}
	setMemoryLimit(cfg.MemoryLimitMiB, 1, log)
	n, _ := cfg.Node(*replica)
	reg, health, err := serve(ctx, n.HTTP, log)
	if err != nil {
		return err
	}
	watchReach(ctx, cfg, n.HTTP, health)
	m := service.NewSinkMetrics(reg, service.NewMetrics(reg))
	log.Info().Str("replica", *replica).Str("topic", cfg.ChangelogConfig().Topic).Str("version", version).Msg("sink worker starting")
	opts, err := service.SinkRoles(ctx, cfg, *replica, service.SinkOptions{SkipOffsets: skips, StartOffset: *start, AdoptDomains: adopt}, log)
	if err != nil {
		return err
	}
	err = service.RunSink(ctx, cfg, *replica, opts, log, health, m)
	if err != nil {
		log.Error().Err(err).Msg("sink worker stopped")
		return err
	}
	log.Info().Str("replica", *replica).Msg("sink worker stopped cleanly")
	return nil
}

func runAll(ctx context.Context, args []string, _, stderr io.Writer) error {
	s, err := setupService(ctx, "run", args, stderr)
	if err != nil {
		return err
	}
	pm := service.NewMetrics(s.reg)
	s.log.Info().Str("master", s.cfg.Master).Strs("replicas", s.cfg.Replicas).Str("topic", s.pc.Kafka.Topic).Str("version", version).Msg("rowcast run starting")
	// Create the topic first, so that the sinks do not start on a missing one.
	if _, err := changelog.EnsureTopic(ctx, s.pc.Kafka); err != nil {
		return stopped(ctx, s.log, "rowcast run", err)
	}
	cur, err := failover.NewLocator(s.cfg, s.pc.Kafka, s.log).Current(ctx)
	if err != nil {
		return stopped(ctx, s.log, "rowcast run", fmt.Errorf("look up the current master: %w", err))
	}
	p := service.NewPublisher(s.pc, s.log, pm, s.health)
	replicas := failover.Replicas(s.cfg, cur.Master)
	setMemoryLimit(s.cfg.MemoryLimitMiB, 1+len(replicas), s.log)
	sinks := s.sinks(replicas, service.NewSinkMetrics(s.reg, pm))
	return stopped(ctx, s.log, "rowcast run", service.Supervise(ctx, p.Run, sinks, s.log))
}

// sinks are the sink workers of the replicas. A replica that may not have
// one now (service.SinkRoles) is logged when its turn comes, and left out.
func (s *serviceEnv) sinks(replicas []string, m *service.SinkMetrics) map[string]service.RunFunc {
	out := make(map[string]service.RunFunc, len(replicas))
	for _, r := range replicas {
		out[r] = func(ctx context.Context) error {
			opts, err := service.SinkRoles(ctx, s.cfg, r, service.SinkOptions{AdoptDomains: s.adopt}, s.log)
			if err != nil {
				s.log.Warn().Err(err).Str("replica", r).Msg("no sink worker for this node")
				return nil
			}
			return service.RunSink(ctx, s.cfg, r, opts, s.log, s.health, m)
		}
	}
	return out
}
