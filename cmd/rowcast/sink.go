package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/failover"
	"github.com/rowcast/rowcast/pipeline/obs"
	"github.com/rowcast/rowcast/pipeline/service"
)

func init() {
	commands["sink"] = command{summary: "run one replica's sink worker: apply the changelog to it", run: runSink}
	commands["run"] = command{summary: "run the pipeline service and every sink worker in one process", run: runAll}
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

func runSink(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("sink", "--config FILE --replica NAME [--skip-offset N]...", stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	replica := fs.String("replica", "", "the replica node to apply to")
	var skips offsetList
	fs.Var(&skips, "skip-offset", "skip the message at this offset on purpose (repeatable); recorded in the replica's skipped table")
	start := fs.Int64("start-offset", 0, "where a replica without a checkpoint starts (a replica seeded as of that offset)")
	var lf logFlags
	lf.register(fs, "info")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *replica == "" {
		return &exitError{code: 2, err: fmt.Errorf("--replica is required: name the replica node, e.g. --replica db2")}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	n, _ := cfg.Node(*replica)
	reg, health := obs.NewRegistry(), obs.NewHealth()
	if _, err := obs.Serve(ctx, n.HTTP, reg, health, log); err != nil {
		return err
	}
	m := service.NewSinkMetrics(reg, service.NewMetrics(reg))
	log.Info().Str("replica", *replica).Str("topic", cfg.Kafka.Topic).Str("version", version).Msg("sink worker starting")
	opts, err := service.SinkRoles(ctx, cfg, *replica, service.SinkOptions{SkipOffsets: skips, StartOffset: *start}, log)
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
	fs := newFlags("run", "--config FILE", stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	var lf logFlags
	lf.register(fs, "info")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	pc, err := publisherConfig(cfg)
	if err != nil {
		return err
	}
	withLocator(&pc, cfg, log)
	reg, health := obs.NewRegistry(), obs.NewHealth()
	if _, err := obs.Serve(ctx, cfg.HTTP, reg, health, log); err != nil {
		return err
	}
	pm := service.NewMetrics(reg)
	sm := service.NewSinkMetrics(reg, pm)
	log.Info().Str("master", cfg.Master).Strs("replicas", cfg.Replicas).Str("topic", cfg.Kafka.Topic).Str("version", version).Msg("rowcast run starting")
	// Create the topic first, so that the sinks do not start on a missing one.
	if _, err := pipeline.EnsureTopic(ctx, pc.Kafka); err != nil {
		return err
	}
	cur, err := failover.NewLocator(cfg, pc.Kafka, log).Current(ctx)
	if err != nil {
		return fmt.Errorf("look up the current master: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	p := service.NewPublisher(pc, log, pm, health)
	g.Go(func() error { return p.Run(gctx) })
	for _, r := range failover.Replicas(cfg, cur.Master) {
		opts, err := service.SinkRoles(ctx, cfg, r, service.SinkOptions{}, log)
		if err != nil {
			log.Warn().Err(err).Str("replica", r).Msg("no sink worker for this node")
			continue
		}
		g.Go(func() error { return service.RunSink(gctx, cfg, r, opts, log, health, sm) })
	}
	if err := g.Wait(); err != nil {
		log.Error().Err(err).Msg("rowcast run stopped")
		return err
	}
	log.Info().Msg("rowcast run stopped cleanly")
	return nil
}
