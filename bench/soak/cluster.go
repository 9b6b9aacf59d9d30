package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// nodes are the stack's MariaDB nodes; db1 is the master when the soak starts.
var nodes = []string{"db1", "db2", "db3"}

var defaultPorts = map[string]string{"db1": "3307", "db2": "3308", "db3": "3309", "kafka": "9092"}

// addr is host:port of a service of the stack, from the variables
// scripts/stack reads.
func addr(service string) string {
	return net.JoinHostPort(benchkit.Host(), benchkit.Env("ROWCAST_"+strings.ToUpper(service)+"_PORT", defaultPorts[service]))
}

// rootConfig is root on a node, as the stack sets it up.
func rootConfig(node string) *mysql.Config {
	c := mysql.NewConfig()
	c.User = benchkit.Env("ROWCAST_TEST_DB_USER", "root")
	c.Passwd = os.Getenv("ROWCAST_TEST_DB_PASSWORD")
	c.Net, c.Addr = "tcp", addr(node)
	return c
}

// cluster is what the soak creates on the stack, named after the run, and
// what it changes there that it puts back at the end.
type cluster struct {
	database string
	topic    string
	appUser  string
	appPass  string
	root     map[string]*sql.DB
	readOnly map[string]bool // each node's read_only when the soak started
}

func newCluster(r *rand.Rand) (*cluster, error) {
	suffix := fmt.Sprintf("%s_%04x", time.Now().UTC().Format("20060102_150405"), r.IntN(1<<16))
	c := &cluster{database: "soak_" + suffix, topic: "rowcast.soak." + suffix,
		appUser: fmt.Sprintf("soak%04x", r.IntN(1<<16)), appPass: "soak",
		root: map[string]*sql.DB{}, readOnly: map[string]bool{}}
	for _, n := range nodes {
		rc := rootConfig(n)
		rc.Timeout, rc.ReadTimeout, rc.WriteTimeout = 3*time.Second, time.Minute, time.Minute
		db, err := sql.Open("mysql", rc.FormatDSN())
		if err != nil {
			return nil, err
		}
		c.root[n] = db
	}
	return c, nil
}

// appDB opens the application user on a node: it has no READ_ONLY ADMIN, so
// read_only (a fenced old master, a replica) refuses its writes.
func (c *cluster) appDB(node string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = c.appUser, c.appPass, "tcp", addr(node), c.database
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 2*time.Second, 10*time.Second, 10*time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(16)
	return db, nil
}

// prepare records each node's read_only and creates the application user
// on every node, outside the binlog.
func (c *cluster) prepare(ctx context.Context) error {
	for _, n := range nodes {
		var ro bool
		if err := c.root[n].QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		c.readOnly[n] = ro
		if err := c.unlogged(ctx, n,
			fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", c.appUser, c.appPass),
			fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON `%s`.* TO '%s'@'%%'", c.database, c.appUser)); err != nil {
			return err
		}
	}
	return nil
}

// unlogged runs statements on a node with sql_log_bin=0, on a connection of
// their own that is closed afterwards, so that no pooled session keeps it.
func (c *cluster) unlogged(ctx context.Context, node string, stmts ...string) error {
	db, err := sql.Open("mysql", rootConfig(node).FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", node, err)
	}
	defer conn.Close()
	for _, q := range append([]string{"SET SESSION sql_log_bin=0"}, stmts...) {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s on %s: %w", q, node, err)
		}
	}
	return nil
}

// createBank creates the database, the accounts and the ledger on the
// master, through the binlog, so that the replicas get them.
func (c *cluster) createBank(ctx context.Context, master string, accounts int, initial int64) error {
	var values strings.Builder
	for i := 0; i < accounts; i++ {
		if i > 0 {
			values.WriteByte(',')
		}
		fmt.Fprintf(&values, "(%d, %d)", i, initial)
	}
	db := "`" + c.database + "`"
	for _, q := range []string{
		"CREATE DATABASE " + db,
		"CREATE TABLE " + db + ".accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE " + db + ".ledger (id BIGINT PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amount INT NOT NULL, node VARCHAR(8) NOT NULL) ENGINE=InnoDB",
		"INSERT INTO " + db + ".accounts VALUES " + values.String(),
	} {
		if _, err := c.root[master].ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", strings.SplitN(q, "(", 2)[0], err)
		}
	}
	return nil
}

// restore puts the stack back as the soak found it: each node's read_only,
// no application user, no bookkeeping rows of the topic; the database and
// the topic are dropped unless kept.
func (c *cluster) restore(ctx context.Context, keep bool) error {
	var errs []error
	for _, n := range nodes {
		errs = append(errs, c.restoreNode(ctx, n, keep))
	}
	if !keep {
		errs = append(errs, deleteTopic(ctx, c.topic))
	}
	for _, db := range c.root {
		db.Close()
	}
	return errors.Join(errs...)
}

func (c *cluster) restoreNode(ctx context.Context, n string, keep bool) error {
	stmts := []string{
		fmt.Sprintf("SET GLOBAL read_only=%v", c.readOnly[n]),
		fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", c.appUser),
	}
	for _, t := range []string{"epochs", "promotion_lease", "checkpoint"} {
		stmts = append(stmts, fmt.Sprintf("DELETE FROM rowcast.%s WHERE topic = '%s'", t, c.topic))
	}
	if !keep {
		stmts = append(stmts, "DROP DATABASE IF EXISTS `"+c.database+"`")
	}
	var errs []error
	for _, q := range stmts {
		// Each alone: a table rowcast never created on this node is no error.
		if err := c.unlogged(ctx, n, q); err != nil && !mysqlerr.Missing(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func deleteTopic(ctx context.Context, topic string) error {
	c := &kafka.Client{Addr: kafka.TCP(addr("kafka")), Timeout: 30 * time.Second,
		Transport: &kafka.Transport{MetadataTTL: time.Second}}
	resp, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
		return fmt.Errorf("delete topic %s: %w", topic, err)
	}
	return nil
}

// writeConfig writes the rowcast config of the soak: the stack's three
// nodes, db1 the master, one database, each process's metrics address.
func (c *cluster) writeConfig(path, pipelineHTTP string, nodeHTTP map[string]string, serverID int) error {
	var ns strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&ns, "  - {name: %s, dsn: %q, http: %q}\n", n, rootConfig(n).FormatDSN(), nodeHTTP[n])
	}
	text := fmt.Sprintf(`cluster: soak
master: db1
nodes:
%skafka:
  brokers: [%q]
  topic: %s
source:
  include: ['^%s\.']
  heartbeat_interval: 1s
  start: current
  server_id: %d
sink:
  protect_replicas: true
http: %q
`, ns.String(), addr("kafka"), c.topic, c.database, serverID, pipelineHTTP)
	return os.WriteFile(path, []byte(text), 0o600)
}
