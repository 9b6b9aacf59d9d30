package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

// chHTTP speaks ClickHouse's HTTP interface.
type chHTTP struct {
	url string
	hc  *http.Client
}

func newCHHTTP(url string) *chHTTP { return &chHTTP{url: url, hc: &http.Client{}} }

// post sends a statement (or the query parameter with body as data) and
// returns the answer.
func (c *chHTTP) post(ctx context.Context, query string, body io.Reader) ([]byte, error) {
	u := c.url
	if body == nil {
		body = strings.NewReader(query)
	} else {
		u += "?query=" + urlEscape(query)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("clickhouse: %s: %s", truncate(query, 120), bytes.TrimSpace(out))
	}
	return out, nil
}

func urlEscape(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20", "&", "%26", "+", "%2B", "#", "%23", "\n", "%0A", "`", "%60").Replace(s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// value runs a SELECT of one value.
func (c *chHTTP) value(ctx context.Context, query string) (string, error) {
	out, err := c.post(ctx, query+" FORMAT TabSeparated", nil)
	return strings.TrimSpace(string(out)), err
}

// count is the number of rows a SELECT count() returns; -1 on an error
// (the table may not exist yet).
func (c *chHTTP) count(ctx context.Context, query string) int64 {
	v, err := c.value(ctx, query)
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// exportNative writes the table's rows as one Native file.
func (c *chHTTP) exportNative(ctx context.Context, table, path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader("SELECT * FROM "+table+" FORMAT Native"))
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("export %s: %s", table, bytes.TrimSpace(msg))
	}
	return io.Copy(f, resp.Body)
}

// importNative POSTs a Native file into table: ClickHouse's own ingest.
func (c *chHTTP) importNative(ctx context.Context, table, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = c.post(ctx, "INSERT INTO "+table+" FORMAT Native", f)
	return err
}

// masterDB opens the master as root, in the database when given.
func masterDB(addr, database string) (*sql.DB, error) {
	db, err := sql.Open("mysql", "root@tcp("+addr+")/"+database+"?interpolateParams=true")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(8)
	return db, nil
}

// writeConfig writes a rowcast config of the master and the ClickHouse
// replica olap for one topic, replicating the bench database only, and
// returns its path.
func (b *bench) writeConfig(topic string, heartbeat time.Duration) (string, error) {
	text := fmt.Sprintf(`cluster: %s
master: db1
nodes:
  - {name: db1, dsn: "root@tcp(%s)/"}
  - {name: olap, kind: clickhouse, dsn: %q}
replicas: [olap]
kafka:
  brokers: [%q]
  topic: %s
source:
  include: ['^%s\.']
  heartbeat_interval: %s
  start: current
  server_id: %d
http: "off"
`, b.name, b.o.master, b.o.clickhouse, b.o.Kafka.Broker, topic, b.database, heartbeat, 100000+rand.IntN(1<<30))
	path := filepath.Join(b.o.dir, topic+".yaml")
	return path, os.WriteFile(path, []byte(text), 0o600)
}

// topicEnd is the topic's end offset (the next offset to be written).
func (b *bench) topicEnd(ctx context.Context, topic string) (int64, error) {
	conn, err := kafka.DialLeader(ctx, "tcp", b.o.Kafka.Broker, topic, 0)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ReadLastOffset()
}

// proc is a rowcast process, stopped by its pid.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

func (b *bench) start(name string, args ...string) (*proc, error) {
	logPath := filepath.Join(b.o.dir, name+".log")
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: exec.Command(b.o.rowcastBin, args...), exited: make(chan struct{}), log: logPath}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.cmd.Wait(); out.Close(); close(p.exited) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("rowcast %s exited (%v); log: %s", p.name, p.cmd.ProcessState, p.log)
	default:
		return nil
	}
}

// stop sends SIGTERM (rowcast drains and checkpoints), then SIGKILL.
func (p *proc) stop() {
	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.exited:
			return
		case <-time.After([]time.Duration{30 * time.Second, 10 * time.Second}[i]):
		}
	}
}

// waitUntil polls ok every interval until it holds, p exits or the
// benchmark's timeout passes.
func (b *bench) waitUntil(ctx context.Context, what string, every time.Duration, ok func() bool, procs ...*proc) error {
	deadline := time.Now().Add(b.o.timeout)
	for !ok() {
		for _, p := range procs {
			if err := p.alive(); err != nil {
				return err
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, b.o.timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
	return nil
}

// setup creates the bench database on the master and notes the versions.
func (b *bench) setup(ctx context.Context) error {
	if err := os.MkdirAll(b.o.dir, 0o755); err != nil {
		return err
	}
	db, err := masterDB(b.o.master, "")
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&b.versions.mariadb); err != nil {
		return fmt.Errorf("master %s: %w", b.o.master, err)
	}
	if b.versions.clickhouse, err = b.ch.value(ctx, "SELECT version()"); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "CREATE DATABASE `"+b.database+"`")
	return err
}

// cleanup drops the databases, the sink's checkpoints of the topics and the
// topics, unless --keep.
func (b *bench) cleanup() {
	if b.o.keep {
		logf("--keep: database %s (master and ClickHouse), topics %v and %s left", b.database, b.topics, b.o.dir)
		return
	}
	ctx := context.Background()
	if db, err := masterDB(b.o.master, ""); err == nil {
		db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+b.database+"`")
		db.Close()
	}
	b.ch.post(ctx, "DROP DATABASE IF EXISTS `"+b.database+"`", nil)
	for _, t := range b.topics {
		for _, tbl := range []string{"checkpoints", "bootstrap"} {
			b.ch.post(ctx, "ALTER TABLE rowcast."+tbl+" DELETE WHERE topic = '"+t+"'", nil)
		}
	}
	os.Remove(filepath.Join(b.o.dir, "copy.native"))
	if len(b.topics) > 0 {
		if err := benchkit.DeleteTopics(b.o.Kafka.Broker, b.topics...); err != nil {
			logf("warning: delete topics %v: %v", b.topics, err)
		}
	}
}

type versions struct{ mariadb, clickhouse string }
