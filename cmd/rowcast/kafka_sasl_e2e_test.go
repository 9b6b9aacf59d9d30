package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// kafkaPasswordEnv is the variable the SASL configs of these tests name in
// kafka.sasl.password_env; the rowcast processes inherit it.
const kafkaPasswordEnv = "ROWCAST_TEST_KAFKA_PASSWORD"

// saslCluster is c through the stack's SASL_SSL listener: its CA, its user,
// the mechanism, and the password from the variable passwordEnv.
func saslCluster(k testenv.KafkaSASL, c clusterConfig, mechanism, passwordEnv string) clusterConfig {
	c.brokers = k.Brokers[0]
	c.kafkaExtra = fmt.Sprintf("  tls: {ca_file: %q}\n  sasl: {mechanism: %s, username: %q, password_env: %s}\n",
		k.CAFile, mechanism, k.User, passwordEnv)
	return c
}

// TestKafkaSASL runs the reader (`rowcast pipeline`, which creates the
// topic) and db2's sink worker through the SASL_SSL listener with
// SCRAM-SHA-512: the rows reach db2, `status` reads the topic and calls db2
// caught up, and `replay` brings db2 level with the master again while its
// worker is stopped. A reader with a wrong password (PLAIN) stops at once
// with the broker, the user and the fix.
func TestKafkaSASL(t *testing.T) {
	k := testenv.NeedKafkaSASL(t)
	t.Setenv(kafkaPasswordEnv, k.Password)
	database, topic := testenv.UniqueName(t, "rc"), testenv.UniqueName(t, "rc")
	t.Cleanup(func() { testenv.DeleteTopic(t, topic) })
	cluster := clusterConfig{database: database, topic: topic, nodes: []string{"db1", "db2"}}
	cfg := saslCluster(k, cluster, "scram-sha-512", kafkaPasswordEnv).write(t)

	pipe := startPublishing(t, "pipeline", cfg, topic)
	sink := startRowcast(t, "sink", "--config", cfg, "--replica", "db2")
	dumpOnFailure(t, []string{"pipeline", "sink db2"}, pipe, sink)
	replicatedNamed(t, database)
	testenv.Exec(t, testenv.DB(t, testenv.Master), fmt.Sprintf("CREATE TABLE `%s`.t (id INT PRIMARY KEY, v VARCHAR(20))", database),
		fmt.Sprintf("CREATE TABLE `%s`.u (id INT PRIMARY KEY, v VARCHAR(20))", database))
	writeRows(t, database, 0, 10)
	waitEqual(t, testenv.Master, testenv.Replica1, database, time.Minute)
	waitFor(t, 30*time.Second, "status: db2 caught up", func() bool {
		rep := statusOf(t, cfg)
		return rep.Topic.Error == "" && rep.Master.Error == "" && allStates(rep, "caught-up")
	})

	sink.stop(t)
	writeRows(t, database, 10, 15)
	out := mustRowcast(t, "replay", "--config", cfg, "--replica", "db2", "--from-offset", "0")
	if !strings.Contains(out, "replayed db2") {
		t.Fatalf("replay:\n%s", out)
	}
	waitEqual(t, testenv.Master, testenv.Replica1, database, 10*time.Second)
	pipe.stop(t)

	checkWrongPassword(t, k, cluster)
}

// checkWrongPassword starts a reader whose PLAIN password is wrong: it must
// exit at once, saying which broker refused which user and what to check.
func checkWrongPassword(t *testing.T, k testenv.KafkaSASL, cluster clusterConfig) {
	t.Helper()
	t.Setenv("ROWCAST_TEST_KAFKA_BAD_PASSWORD", "not-"+k.Password)
	cfg := saslCluster(k, cluster, "plain", "ROWCAST_TEST_KAFKA_BAD_PASSWORD").write(t)
	start := time.Now()
	code, _, stderr := runCLIProcess(t, "pipeline", "--config", cfg)
	took := time.Since(start)
	for _, want := range []string{"SASL PLAIN authentication as user \"" + k.User + "\" with kafka broker " + k.Brokers[0],
		"Invalid username or password", "check kafka.sasl.username"} {
		if code == 0 || !strings.Contains(stderr, want) {
			t.Fatalf("reader with a wrong password: exit %d after %v, stderr lacks %q:\n%s", code, took, want, stderr)
		}
	}
	if took > 20*time.Second {
		t.Fatalf("reader with a wrong password took %v to give up", took)
	}
}

// TestDisruptiveKafkaSASLPromote is a planned promotion of db2 with every
// rowcast process on the SASL_SSL listener (PLAIN): the epoch record is
// written through it, db2's worker stops at it, and `status` reads the new
// master from the topic. Disruptive: it moves the stack's master.
func TestDisruptiveKafkaSASLPromote(t *testing.T) {
	needDisruptive(t)
	k := testenv.NeedKafkaSASL(t)
	t.Setenv(kafkaPasswordEnv, k.Password)
	e := newFailoverEnv(t, "")
	e.cfg = saslCluster(k, clusterConfig{database: e.database, topic: e.topic, nodeHTTP: e.nodeHTTP, protect: true, http: e.http},
		"plain", kafkaPasswordEnv).write(t)
	pipe, sink2, sink3 := e.start()
	testenv.Exec(t, testenv.DB(t, "db1"), "CREATE TABLE `"+e.database+"`.t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)",
		"INSERT INTO `"+e.database+"`.t VALUES (1, 'before')")
	waitEqual(t, "db1", "db2", e.database, time.Minute)

	out := mustRowcast(t, "promote", "--config", e.cfg, "--replica", "db2")
	if !strings.Contains(out, "promoted db2: epoch 2") {
		t.Fatalf("promote:\n%s", out)
	}
	sink2.waitExit(t, 30*time.Second, "db2's sink (at its promotion)")
	testenv.Exec(t, testenv.DB(t, "db2"), "INSERT INTO `"+e.database+"`.t VALUES (2, 'after')")
	waitEqual(t, "db2", "db3", e.database, time.Minute)
	if st := statusJSON(t, e.cfg); st.Master.Node != "db2" || st.Master.Epoch != 2 {
		t.Fatalf("status: master %s epoch %d, want db2 epoch 2", st.Master.Node, st.Master.Epoch)
	}
	sink3.stop(t)
	pipe.stop(t)
}
