package main

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/failover"
	"github.com/rowcast/rowcast/internal/obs"
	"github.com/rowcast/rowcast/service"
)

// publisherConfig is the pipeline service's config.
func publisherConfig(cfg *config.Config) (service.PublisherConfig, error) {
	sc, err := cfg.SourceConfig(cfg.Master)
	if err != nil {
		return service.PublisherConfig{}, err
	}
	nodes, err := cfg.SourceConfigs()
	if err != nil {
		return service.PublisherConfig{}, err
	}
	return service.PublisherConfig{
		Cluster:           cfg.Cluster,
		Kafka:             cfg.ChangelogConfig(),
		Source:            sc,
		Start:             cfg.Source.Start,
		HeartbeatInterval: cfg.Source.HeartbeatInterval.D(),
		Master:            cfg.Master,
		Nodes:             nodes,
	}, nil
}

// servicePublisherConfig is the config of the pipeline service that an
// operator runs: it finds the current master, and arms the automatic
// failover when the config asks for it.
func servicePublisherConfig(cfg *config.Config, log zerolog.Logger) (service.PublisherConfig, error) {
	pc, err := publisherConfig(cfg)
	if err != nil {
		return pc, err
	}
	pc.Locate = failover.NewLocator(cfg, pc.Kafka, log).Current
	if l := service.NewDDLLog(cfg, log); l != nil {
		pc.Emitted = l.Published
	}
	if cfg.Failover.Mode == config.FailoverAuto {
		pc.Watchdog = &failover.Auto{Cfg: cfg, Kafka: pc.Kafka, Log: log}
	}
	return pc, nil
}

// serve serves a process's metrics and health at addr (none when addr is
// "", or "off").
func serve(ctx context.Context, addr string, log zerolog.Logger) (*prometheus.Registry, *obs.Health, error) {
	reg, health := obs.NewRegistry(), obs.NewHealth()
	_, err := obs.Serve(ctx, addr, reg, health, log)
	return reg, health, err
}

// stopped logs how a long-running command ended and returns its error.
func stopped(ctx context.Context, log zerolog.Logger, what string, err error) error {
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// Asked to stop (SIGTERM, SIGINT) before it ran: nothing to finish.
		log.Info().Str("at", err.Error()).Msg(what + " stopped on request while starting")
		return nil
	}
	if err != nil {
		log.Error().Err(err).Msg(what + " stopped")
		return err
	}
	log.Info().Msg(what + " stopped cleanly")
	return nil
}
