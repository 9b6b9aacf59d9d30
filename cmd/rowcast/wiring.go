package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/config"
	"github.com/rowcast/rowcast/pipeline/failover"
	"github.com/rowcast/rowcast/pipeline/obs"
	"github.com/rowcast/rowcast/pipeline/service"
	"github.com/rowcast/rowcast/source"
)

// kafkaConfig maps the config file's kafka section.
func kafkaConfig(cfg *config.Config) pipeline.KafkaConfig { return service.KafkaConfig(cfg) }

// sourceConfig maps the config's master node and the source section.
func sourceConfig(cfg *config.Config) (source.Config, error) {
	return nodeSourceConfig(cfg, cfg.Master)
}

// nodeSourceConfig maps one node and the source section: how the reader
// reads that node when it is the master.
func nodeSourceConfig(cfg *config.Config, node string) (source.Config, error) {
	n, _ := cfg.Node(node)
	mc, err := n.MySQLConfig()
	if err != nil {
		return source.Config{}, fmt.Errorf("node %s: %w", node, err)
	}
	sc := source.Config{
		Addr:              mc.Addr,
		User:              mc.User,
		Password:          mc.Passwd,
		ServerID:          cfg.Source.ServerID,
		Include:           cfg.Source.Include,
		Exclude:           cfg.Source.Exclude,
		BookkeepingSchema: cfg.Sink.BookkeepingSchema,
	}
	if cfg.Source.User != "" {
		sc.User = cfg.Source.User
	}
	if cfg.Source.Password != "" {
		sc.Password = cfg.Source.Password
	}
	return sc, nil
}

// publisherConfig is the pipeline service's config.
func publisherConfig(cfg *config.Config) (service.PublisherConfig, error) {
	sc, err := sourceConfig(cfg)
	if err != nil {
		return service.PublisherConfig{}, err
	}
	nodes := map[string]source.Config{}
	for _, n := range cfg.Nodes {
		if n.Kind != config.KindMySQL {
			continue
		}
		if nodes[n.Name], err = nodeSourceConfig(cfg, n.Name); err != nil {
			return service.PublisherConfig{}, err
		}
	}
	return service.PublisherConfig{
		Cluster:           cfg.Cluster,
		Kafka:             kafkaConfig(cfg),
		Source:            sc,
		Start:             cfg.Source.Start,
		HeartbeatInterval: cfg.Source.HeartbeatInterval.D(),
		Master:            cfg.Master,
		Nodes:             nodes,
	}, nil
}

// withLocator lets the pipeline service find the current master, and arms
// the automatic failover when the config asks for it.
func withLocator(pc *service.PublisherConfig, cfg *config.Config, log zerolog.Logger) {
	loc := failover.NewLocator(cfg, pc.Kafka, log)
	pc.Locate = loc.Current
	if cfg.Failover.Mode == config.FailoverAuto {
		pc.Watchdog = &failover.Auto{Cfg: cfg, Kafka: pc.Kafka, Log: log}
	}
}

// logFlags are the logging flags of every long-running command.
type logFlags struct{ format, level string }

// register adds --log-format and --log-level (default level given) to fs.
func (l *logFlags) register(fs *flag.FlagSet, level string) {
	fs.StringVar(&l.format, "log-format", "", "json or console (default: console on a terminal, else json)")
	fs.StringVar(&l.level, "log-level", level, "debug, info, warn or error")
}

func (l *logFlags) logger(w io.Writer) (zerolog.Logger, error) {
	if w == nil {
		w = os.Stderr
	}
	log, err := obs.NewLogger(w, l.format, l.level)
	if err == nil {
		// go-sql-driver prints connection trouble ("closing bad idle
		// connection") on stderr by itself; route it into our log.
		drv := log.With().Str("component", "mysql-driver").Logger()
		mysql.SetLogger(mysql.Logger(driverLogger{drv}))
	}
	return log, err
}

// driverLogger adapts zerolog to go-sql-driver's Logger.
type driverLogger struct{ log zerolog.Logger }

func (d driverLogger) Print(v ...any) { d.log.Warn().Msg(fmt.Sprint(v...)) }
