package main

import (
	"context"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/obs"
	"github.com/rowcast/rowcast/service"
	"github.com/rs/zerolog"
)

func init() {
	commands["pipeline"] = command{summary: "run the pipeline service: tail the master's binlog into Kafka", run: runPipeline}
}

func runPipeline(ctx context.Context, args []string, _, stderr io.Writer) error {
	s, err := setupService(ctx, "pipeline", args, stderr)
	if err != nil {
		return err
	}
	setMemoryLimit(s.cfg.MemoryLimitMiB, 1, s.log)
	p := service.NewPublisher(s.pc, s.log, service.NewMetrics(s.reg), s.health)
	s.log.Info().Str("master", s.cfg.Master).Str("topic", s.pc.Kafka.Topic).Str("version", version).Msg("pipeline service starting")
	return stopped(ctx, s.log, "pipeline service", p.Run(ctx))
}

// serviceEnv is what `rowcast pipeline` and `rowcast run` set up before
// they run: the config and logger, the pipeline service's config, and the
// metrics and health they serve at the config's http address.
type serviceEnv struct {
	cfg    *config.Config
	log    zerolog.Logger
	pc     service.PublisherConfig
	adopt  domainList // --adopt-domain, for run's sinks
	reg    *prometheus.Registry
	health *obs.Health
}

func setupService(ctx context.Context, name string, args []string, stderr io.Writer) (*serviceEnv, error) {
	s := &serviceEnv{}
	env := newCommand(name, "--config FILE [--skip-gtid GTID]", "info", stderr)
	skip := env.fs.String("skip-gtid", "", "leave this one source transaction out of the topic when the reader meets it, once, "+
		"recording the skip in the topic (replicas then miss its changes: re-seed what it wrote)")
	if name == "run" {
		env.fs.Var(&s.adopt, "adopt-domain", "master-master: apply the transactions of this GTID domain in the master's topic as its own (written while its gtid_domain_id was wrong; repeatable)")
	}
	var err error
	if s.cfg, s.log, err = env.setup(args, nil); err != nil {
		return nil, err
	}
	if s.cfg.MasterMaster() {
		if err := service.CheckMasters(ctx, s.cfg, s.log); err != nil {
			return nil, err
		}
	}
	if s.cfg.Versioned() {
		if err := service.InstallVersions(ctx, s.cfg, s.log); err != nil {
			return nil, err
		}
		go service.KeepVersions(ctx, s.cfg, 30*time.Second, s.log)
	}
	if s.pc, err = servicePublisherConfig(s.cfg, s.log); err != nil {
		return nil, err
	}
	s.pc.SkipGTID = *skip
	if s.reg, s.health, err = serve(ctx, s.cfg.HTTP, s.log); err != nil {
		return nil, err
	}
	s.health.SetStatus(func(ctx context.Context) any { return service.Status(ctx, s.cfg, s.cfg.ChangelogConfig()) })
	watchReach(ctx, s.cfg, s.cfg.HTTP, s.health)
	service.NewRouter(s.cfg, s.pc.Kafka, s.log).Register(s.health.Handle)
	return s, nil
}
