package clone

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/config"
)

// open checks the two nodes and connects to both.
func open(ctx context.Context, cfg *config.Config, opts Options) (*cloner, error) {
	from, to, err := nodes(cfg, opts)
	if err != nil {
		return nil, err
	}
	if err := checkMaster(ctx, cfg, opts); err != nil {
		return nil, err
	}
	sel, err := newSelector(cfg.Source.Include, cfg.Source.Exclude, cfg.Sink.BookkeepingSchema)
	if err != nil {
		return nil, err
	}
	c := &cloner{opts: opts, log: opts.Log, topic: cfg.Kafka.Topic, store: cfg.CheckpointStore(), sel: sel}
	if !slices.Contains(cfg.Replicas, opts.To) {
		c.log.Warn().Str("node", opts.To).Msg("the target is not among the config's replicas: add it to replicas, or its sink worker will not run in `rowcast run` and `status` will not show it")
	}
	if c.src, err = connect(from, sourceSession); err != nil {
		return nil, err
	}
	if c.dst, err = connect(to, targetSession); err != nil {
		c.src.Close()
		return nil, err
	}
	c.dst.SetMaxOpenConns(opts.Parallel + 1)
	if err := c.connectTarget(ctx); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// nodes finds From and To among the config's mysql nodes.
func nodes(cfg *config.Config, opts Options) (from, to config.Node, err error) {
	if opts.From == opts.To {
		return from, to, fmt.Errorf("%w: --from and --to both name %s: the target must be another node", ErrNodes, opts.From)
	}
	for _, n := range []struct {
		dst  *config.Node
		name string
	}{{&from, opts.From}, {&to, opts.To}} {
		node, ok := cfg.Node(n.name)
		switch {
		case !ok:
			return from, to, fmt.Errorf("%w: %q is not a node of the config: add it to nodes (kind mysql)", ErrNodes, n.name)
		case node.Kind != config.KindMySQL:
			return from, to, fmt.Errorf("%w: %s is a %s node: clone copies between MySQL/MariaDB nodes", ErrNodes, n.name, node.Kind)
		}
		*n.dst = node
	}
	return from, to, nil
}

// checkMaster refuses the current master as source (it has no checkpoint:
// docs/DESIGN.md, "Clone", says why the clone does not map its GTID
// position to an offset) and as target.
func checkMaster(ctx context.Context, cfg *config.Config, opts Options) error {
	master := cfg.Master
	if opts.Locate != nil {
		m, err := opts.Locate(ctx)
		if err != nil {
			return err
		}
		master = m
	}
	switch master {
	case opts.From:
		return fmt.Errorf("%w: %s is the current master: it holds no rowcast checkpoint, which is what gives the copy its exact position in the topic. "+
			"Clone from a replica whose sink worker runs (--from %s)", ErrSource, master, anyReplica(cfg, master, opts.To))
	case opts.To:
		return fmt.Errorf("%w: %s is the current master: clone into a new, empty node", ErrNodes, master)
	}
	return nil
}

// anyReplica names a replica other than the master and the target, for an
// error's advice.
func anyReplica(cfg *config.Config, master, to string) string {
	for _, r := range cfg.Replicas {
		if r != master && r != to {
			return r
		}
	}
	return "REPLICA"
}

// A session kind sets what a connection needs.
type session func(c *mysql.Config)

// sourceSession reads the source: UTC, values in their own character set
// (character_set_results binary), DDL text with backquotes, and no timeout
// while the loaders make the reader wait mid-result.
func sourceSession(c *mysql.Config) {
	c.Params["character_set_results"] = "binary"
	c.Params["net_write_timeout"] = "86400"
	c.Params["lock_wait_timeout"] = "60"
}

// targetSession loads the target: UTC, no foreign key or unique checks
// while loading. The binlog stays on, as for the sink: the new replica may
// be promoted one day, and then its binlog is what the reader reads.
func targetSession(c *mysql.Config) {
	c.Params["foreign_key_checks"] = "0"
	c.Params["unique_checks"] = "0"
	c.Collation = "utf8mb4_general_ci"
}

// connect opens a pool to n with the session.
func connect(n config.Node, s session) (*sql.DB, error) {
	c, err := n.MySQLConfig()
	if err != nil {
		return nil, err
	}
	c.InterpolateParams = true
	c.ParseTime = false
	c.MultiStatements = false
	c.Loc = time.UTC
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	c.Params["time_zone"] = "'+00:00'"
	// NO_AUTO_VALUE_ON_ZERO: a 0 in an AUTO_INCREMENT column stays 0.
	c.Params["sql_mode"] = "'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'"
	s(c)
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return db, nil
}

// connectTarget takes the target's control connection, and refuses a
// target that is the source's server under another name.
func (c *cloner) connectTarget(ctx context.Context) error {
	var err error
	if c.ctl, err = c.dst.Conn(ctx); err != nil {
		return fmt.Errorf("connect to %s: %w", c.opts.To, err)
	}
	src, err := serverOf(ctx, c.src)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", c.opts.From, err)
	}
	dst, err := serverOf(ctx, c.ctl)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", c.opts.To, err)
	}
	if src == dst {
		return fmt.Errorf("%w: %s and %s are the same server (%s)", ErrNodes, c.opts.From, c.opts.To, src)
	}
	var local int
	if err := c.ctl.QueryRowContext(ctx, "SELECT @@local_infile").Scan(&local); err != nil {
		return fmt.Errorf("connect to %s: %w", c.opts.To, err)
	}
	if local != 1 {
		return fmt.Errorf("%w: %s refuses LOAD DATA LOCAL INFILE (local_infile=OFF), which the clone loads rows with: SET GLOBAL local_infile=ON there for the clone",
			ErrNodes, c.opts.To)
	}
	return nil
}

// serverOf names a server by its host name, port and data directory.
func serverOf(ctx context.Context, q queryer) (string, error) {
	var s string
	err := q.QueryRowContext(ctx, "SELECT CONCAT_WS(':', @@hostname, @@port, @@datadir)").Scan(&s)
	return s, err
}
