// Package testenv lets tests reach the real services of the local stack that
// `scripts/stack up` starts: three MariaDB servers (db1 master, db2 and db3
// replicas), a Kafka broker and ClickHouse, all on loopback; and the optional
// TLS-only MariaDB db4 that `scripts/stack start db4` starts (tls.go).
//
// Addresses come from the same environment variables that scripts/stack reads
// (ROWCAST_HOST, ROWCAST_DB1_PORT, ROWCAST_KAFKA_PORT, ...), with the stack's
// defaults. A test whose service does not answer fails and says how to start
// it. It is skipped only when the developer asks for that explicitly with
// ROWCAST_ALLOW_SKIP=1, and never when CI=true.
//
// Every helper takes testing.TB, creates uniquely named objects (databases,
// topics) and removes them with t.Cleanup.
//
// This package imports no other package of rowcast, so that every package can
// use it in its own tests.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Node names of the local stack, as in deployments/local/rowcast.yaml.
const (
	Master   = "db1"
	Replica1 = "db2"
	Replica2 = "db3"
)

// StartAdvice is what a test says when a service does not answer.
const StartAdvice = "start the local stack with `scripts/stack up` (see README.md), or point ROWCAST_HOST and the ROWCAST_*_PORT variables at running services"

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Host is the address every service of the stack listens on.
func Host() string { return env("ROWCAST_HOST", "127.0.0.1") }

var defaultPorts = map[string]string{
	"db1": "3307", "db2": "3308", "db3": "3309", "db4": "3310",
	"kafka": "9092", "clickhouse_http": "8123",
}

func port(service string) string {
	return env("ROWCAST_"+strings.ToUpper(service)+"_PORT", defaultPorts[service])
}

// Addr is host:port of a stack service: db1, db2, db3, db4, kafka or
// clickhouse_http.
func Addr(service string) string { return net.JoinHostPort(Host(), port(service)) }

// RootDSN is a go-sql-driver DSN for root on a MariaDB node (no password on the
// local stack), with database db selected ("" for none).
func RootDSN(node, db string) string {
	cfg := mysql.NewConfig()
	cfg.User = env("ROWCAST_TEST_DB_USER", "root")
	cfg.Passwd = os.Getenv("ROWCAST_TEST_DB_PASSWORD")
	cfg.Net = "tcp"
	cfg.Addr = Addr(node)
	cfg.DBName = db
	cfg.MultiStatements = true
	cfg.Params = map[string]string{"time_zone": "'+00:00'"}
	return cfg.FormatDSN()
}

// KafkaBrokers is the bootstrap address list of the local Kafka.
func KafkaBrokers() []string { return []string{Addr("kafka")} }

// ClickHouseURL is the base HTTP URL of the local ClickHouse.
func ClickHouseURL() string { return "http://" + Addr("clickhouse_http") }

// InCI reports whether the tests run under CI, where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

var (
	probeMu sync.Mutex
	probed  = map[string]error{}
)

// adviceFor says how to start a service: the optional nodes are not started
// by `scripts/stack up`.
func adviceFor(service string) string {
	if service == TLSNode {
		return TLSStartAdvice
	}
	return StartAdvice
}

// Need fails the test (or skips it, when ROWCAST_ALLOW_SKIP=1 outside CI) when
// the named service does not accept TCP connections. The probe runs once per
// service and process.
func Need(t testing.TB, service string) {
	t.Helper()
	probeMu.Lock()
	err, done := probed[service]
	if !done {
		var c net.Conn
		c, err = net.DialTimeout("tcp", Addr(service), 2*time.Second)
		if err == nil {
			c.Close()
		}
		probed[service] = err
	}
	probeMu.Unlock()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s is not reachable at %s (%v): %s", service, Addr(service), err, adviceFor(service))
	if os.Getenv("ROWCAST_ALLOW_SKIP") == "1" && !InCI() {
		t.Skip(msg)
	}
	t.Fatal(msg)
}

// DB opens root on a MariaDB node and closes it when the test ends.
func DB(t testing.TB, node string) *sql.DB {
	t.Helper()
	return DBAt(t, node, "")
}

// DBAt opens root on a MariaDB node with database db selected.
func DBAt(t testing.TB, node, db string) *sql.DB {
	t.Helper()
	Need(t, node)
	conn, err := sql.Open("mysql", RootDSN(node, db))
	if err != nil {
		t.Fatalf("open %s: %v", node, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.PingContext(ctx); err != nil {
		conn.Close()
		t.Fatalf("%s at %s does not answer as root (%v): %s", node, Addr(node), err, StartAdvice)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

// UniqueName makes a name from prefix and the test's name, unique to this run,
// at most 60 characters of [a-z0-9_], usable as a database or topic name.
func UniqueName(t testing.TB, prefix string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random name: %v", err)
	}
	base := nonWord.ReplaceAllString(strings.ToLower(t.Name()), "_")
	base = strings.Trim(base, "_")
	if max := 60 - len(prefix) - 10; len(base) > max {
		base = base[len(base)-max:]
	}
	return prefix + "_" + base + "_" + hex.EncodeToString(b[:])
}

// CreateDatabase creates one uniquely named database with the same name on
// each of the given nodes and drops it when the test ends. It returns the name.
func CreateDatabase(t testing.TB, nodes ...string) string {
	t.Helper()
	name := UniqueName(t, "rc")
	for _, node := range nodes {
		db := DB(t, node)
		if _, err := db.Exec("CREATE DATABASE `" + name + "`"); err != nil {
			t.Fatalf("create database %s on %s: %v", name, node, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
				t.Logf("drop database %s on %s: %v", name, node, err)
			}
		})
	}
	return name
}

// Exec runs statements on a node and fails the test on the first error.
func Exec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("exec %q: %v", s, err)
		}
	}
}
