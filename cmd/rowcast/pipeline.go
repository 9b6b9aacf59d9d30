package main

import (
	"context"
	"io"

	"github.com/rowcast/rowcast/pipeline/obs"
	"github.com/rowcast/rowcast/pipeline/service"
)

func init() {
	commands["pipeline"] = command{summary: "run the pipeline service: tail the master's binlog into Kafka", run: runPipeline}
}

func runPipeline(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("pipeline", "--config FILE", stderr)
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
	reg := obs.NewRegistry()
	health := obs.NewHealth()
	if _, err := obs.Serve(ctx, cfg.HTTP, reg, health, log); err != nil {
		return err
	}
	p := service.NewPublisher(pc, log, service.NewMetrics(reg), health)
	log.Info().Str("master", cfg.Master).Str("topic", cfg.Kafka.Topic).Str("version", version).Msg("pipeline service starting")
	if err := p.Run(ctx); err != nil {
		log.Error().Err(err).Msg("pipeline service stopped")
		return err
	}
	log.Info().Msg("pipeline service stopped cleanly")
	return nil
}
