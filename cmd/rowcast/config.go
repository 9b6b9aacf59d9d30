package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rowcast/rowcast/pipeline/config"
)

func init() {
	commands["config"] = command{summary: "check a configuration file (config validate --config F)", run: runConfig}
}

func runConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "validate" {
		fmt.Fprintln(stderr, "Usage: rowcast config validate --config FILE")
		return &exitError{code: 2, err: fmt.Errorf("unknown or missing config subcommand; use validate")}
	}
	fs := newFlags("config validate", "--config FILE", stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (cluster %s, master %s, replicas %v, topic %s)\n", *path, cfg.Cluster, cfg.Master, cfg.Replicas, cfg.Kafka.Topic)
	return nil
}

// loadConfig loads the file a --config flag names.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, &exitError{code: 2, err: fmt.Errorf("--config is required, e.g. --config deployments/local/rowcast.yaml")}
	}
	return config.Load(path)
}
