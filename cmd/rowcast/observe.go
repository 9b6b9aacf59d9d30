package main

import (
	"context"
	"io"

	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/failover"
	"github.com/rowcast/rowcast/internal/obs"
	"github.com/rowcast/rowcast/service"
)

func init() {
	commands["observe"] = command{summary: "be a vantage point of the automatic failover: report which mysql nodes this host reaches", run: runObserve}
}

const observeSynopsis = `--config FILE --http ADDR

A vantage point of the automatic failover (failover.observers lists
ADDR): connects to every mysql node of the config every
failover.check_interval and reports on http://ADDR/healthz, under
details.reach, whether it reaches each and for how long. The automatic
failover promotes only when a majority of the vantage points sees the
master down. Run it where that view matters: on the writers' hosts, or in
another failure domain than the pipeline service.

It also answers a load balancer's routing checks for every mysql node:
GET /node/NAME/master and /node/NAME/replica?max_lag=2s
(docs/OPERATIONS.md, "Routing applications (HAProxy)").
`

func runObserve(ctx context.Context, args []string, _, stderr io.Writer) error {
	env := newCommand("observe", observeSynopsis, "info", stderr)
	addr := env.fs.String("http", "", "listen address of /healthz, the address failover.observers names, e.g. 0.0.0.0:9465")
	cfg, log, err := env.setup(args, requireFlag(addr, "--http is required: the address failover.observers names, e.g. --http 0.0.0.0:9465"))
	if err != nil {
		return err
	}
	_, health, err := serve(ctx, *addr, log)
	if err != nil {
		return err
	}
	startReach(ctx, cfg, health)
	service.NewRouter(cfg, cfg.ChangelogConfig(), log).Register(health.Handle)
	log.Info().Str("http", *addr).Dur("check_interval", cfg.Failover.CheckInterval.D()).Str("version", version).Msg("observer started")
	<-ctx.Done()
	log.Info().Msg("observer stopped")
	return nil
}

// watchReach makes this process a vantage point of the automatic failover
// when one may ask it: failover.mode auto, and /healthz served at addr.
func watchReach(ctx context.Context, cfg *config.Config, addr string, health *obs.Health) {
	if cfg.Failover.Mode == config.FailoverAuto && addr != "" && addr != "off" {
		startReach(ctx, cfg, health)
	}
}

// startReach checks the mysql nodes until ctx ends, and reports what it
// finds on health's /healthz.
func startReach(ctx context.Context, cfg *config.Config, health *obs.Health) {
	r := failover.NewReach(cfg)
	health.SetDetail(failover.ReachDetail, func() any { return r.Report() })
	go r.Run(ctx)
}
