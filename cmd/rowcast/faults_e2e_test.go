package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

// produceRaw appends records with the given values (and key "x") to the
// topic's tail, as a stray writer would, and returns the offset after them.
func produceRaw(t testing.TB, topic string, values ...string) int64 {
	t.Helper()
	recs := make([]kafka.Record, len(values))
	for i, v := range values {
		recs[i] = kafka.Record{Key: kafka.NewBytes([]byte("x")), Value: kafka.NewBytes([]byte(v))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := testenv.KafkaClient(t).Produce(ctx, &kafka.ProduceRequest{Topic: topic, Partition: 0,
		RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(recs...)})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	return res.BaseOffset + int64(len(values))
}

// waitRowAfter waits until the topic holds, from offset from on, the last
// message of a transaction that changed a row of table.
func waitRowAfter(t testing.TB, topic string, from int64, table string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "a transaction on "+table+" after offset "+strconv.FormatInt(from, 10), func() bool {
		evs, _, err := readTopicFrom(topic, from)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Kind == pipeline.KindRow && ev.Table.Name == table && ev.Pos.Last {
				return true
			}
		}
		return false
	})
}

// TestPipelineStartsPastUndecodableTail: messages a stray writer appended to
// the topic's tail do not keep the pipeline service from starting; it logs
// each one with its offset and resumes after the last transaction it can
// read.
func TestPipelineStartsPastUndecodableTail(t *testing.T) {
	database := testenv.CreateDatabase(t, testenv.Master)
	topic := testenv.CreateTopic(t, 1)
	db := testenv.DBAt(t, testenv.Master, database)
	testenv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)")
	cfg := e2eConfig(t, database, topic)
	p := startPublishing(t, "pipeline", cfg, topic)
	testenv.Exec(t, db, "INSERT INTO t VALUES (1)")
	waitRowAfter(t, topic, 0, "t", time.Minute)
	p.stop(t)

	garbageEnd := produceRaw(t, topic, "{garbage", `{"rowcast":{"format":99}}`)
	p = startRowcast(t, "pipeline", "--config", cfg)
	testenv.Exec(t, db, "INSERT INTO t VALUES (2)")
	waitRowAfter(t, topic, garbageEnd, "t", time.Minute)
	p.stop(t)
	for _, off := range []int64{garbageEnd - 2, garbageEnd - 1} {
		if !strings.Contains(p.out.String(), `"offset":`+strconv.FormatInt(off, 10)) {
			t.Errorf("the log does not name undecodable offset %d:\n%s", off, p.out)
		}
	}
}

// TestDDLReplaysUnderMasterSession: DDL whose meaning depends on the
// master's session replicates byte for byte: a TIMESTAMP default under
// time_zone='+05:00', DEFAULT CURRENT_TIMESTAMP(6) filling existing rows
// (the replica applies it later, so its own clock would differ), and
// double-quoted names under ANSI_QUOTES with a character set of the
// session's.
func TestDDLReplaysUnderMasterSession(t *testing.T) {
	r := startReplication(t, "run")
	db := testenv.DBAt(t, testenv.Master, r.database)
	testenv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1), (2), (3)")
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		"SET SESSION time_zone='+05:00'",
		"ALTER TABLE t ADD COLUMN ts TIMESTAMP NULL DEFAULT '2024-01-01 00:00:00'",
		"SET SESSION time_zone='+00:00'",
		"ALTER TABLE t ADD COLUMN c TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)",
		"SET SESSION sql_mode=CONCAT(@@sql_mode, ',ANSI_QUOTES'), character_set_client=latin1",
		`CREATE TABLE "q" ("id" INT PRIMARY KEY, "v" VARCHAR(10) DEFAULT 'Ã©')`,
		`INSERT INTO "q" ("id") VALUES (1)`,
	} {
		if _, err := conn.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	testenv.Exec(t, db, "INSERT INTO t (id) VALUES (4)")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rowcast run output:\n%s", r.proc.out.String())
		}
	})
	waitConverged(t, r.database, 2*time.Minute)
	r.proc.stop(t)
}

// TestStatementBasedDML: pt-table-checksum's statement-based writes to its
// table in a schema that is not replicated pass the reader by; a
// statement-based write to a replicated table stops it, naming the GTID,
// and `rowcast pipeline --skip-gtid` goes past it once, recording the skip
// in the topic.
func TestStatementBasedDML(t *testing.T) {
	r := startReplication(t, "pipeline")
	other := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, r.database)
	testenv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE `"+other+"`.checksums (db CHAR(64), tbl CHAR(64), chunk INT, cnt INT, crc CHAR(40), PRIMARY KEY (db, tbl, chunk))")
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	execAll := func(qs ...string) {
		for _, q := range qs {
			if _, err := conn.ExecContext(t.Context(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	execAll("SET SESSION binlog_format=STATEMENT",
		"REPLACE /*"+r.database+".t:1/1*/ INTO `"+other+"`.`checksums` (db, tbl, chunk, cnt, crc) SELECT '"+r.database+"', 't', 1, COUNT(*), "+
			"COALESCE(LOWER(CONV(BIT_XOR(CAST(CRC32(id) AS UNSIGNED)), 10, 16)), 0) FROM `"+r.database+"`.`t`",
		"UPDATE `"+other+"`.`checksums` SET cnt = cnt WHERE db = '"+r.database+"'",
		"SET SESSION binlog_format=ROW", "INSERT INTO t VALUES (1)")
	waitRowAfter(t, r.topic, 0, "t", time.Minute)

	execAll("SET SESSION binlog_format=STATEMENT", "INSERT INTO t VALUES (2)")
	var bad string
	if err := conn.QueryRowContext(t.Context(), "SELECT @@last_gtid").Scan(&bad); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.proc.done:
	case <-time.After(time.Minute):
		t.Fatalf("the pipeline did not stop at the statement-based insert:\n%s", r.proc.out)
	}
	if !strings.Contains(r.proc.out.String(), "--skip-gtid "+bad) {
		t.Fatalf("the pipeline's error does not say --skip-gtid %s:\n%s", bad, r.proc.out)
	}
	end := int64(len(readTopic(t, r.topic)))
	p := startRowcast(t, "pipeline", "--config", r.cfg, "--skip-gtid", bad)
	execAll("SET SESSION binlog_format=ROW", "INSERT INTO t VALUES (3)")
	waitRowAfter(t, r.topic, end, "t", time.Minute)
	p.stop(t)
	assertSkipped(t, r.topic, bad)
	if _, out, _ := runCLIProcess(t, "status", "--config", r.cfg); !strings.Contains(out, "skipped transaction "+bad) {
		t.Errorf("rowcast status does not show the skip of %s:\n%s", bad, out)
	}
}

// assertSkipped checks that the topic records the skip of gtid and holds
// none of its changes.
func assertSkipped(t *testing.T, topic, gtid string) {
	t.Helper()
	recorded := false
	for _, ev := range readTopic(t, topic) {
		if ev.GTID == gtid {
			t.Errorf("the skipped transaction %s is in the topic: %s %s", gtid, ev.Kind, ev.Pos)
		}
		if ev.Skip != nil && ev.Skip.GTID == gtid && ev.Kind == pipeline.KindHeartbeat {
			recorded = true
		}
	}
	if !recorded {
		t.Errorf("no skip record of %s in the topic", gtid)
	}
}

// TestRowTooLargeForTopic: rowcast creates the topic with the safety
// settings and kafka.max_message_bytes; a row change larger than that stops
// the pipeline with an error that names the table, the transaction, the
// setting and the fix.
func TestRowTooLargeForTopic(t *testing.T) {
	database := testenv.UniqueName(t, "rc")
	topic := testenv.UniqueName(t, "rc") // created by rowcast
	t.Cleanup(func() { testenv.DeleteTopic(t, topic) })
	cfg := clusterConfig{database: database, topic: topic, kafkaExtra: "  max_message_bytes: 65536\n"}.write(t)
	p := startPublishing(t, "pipeline", cfg, topic)
	replicatedNamed(t, database)
	db := testenv.DBAt(t, testenv.Master, database)
	testenv.Exec(t, db, "CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB)", "INSERT INTO big VALUES (1, RANDOM_BYTES(1024))")
	waitRowAfter(t, topic, 0, "big", time.Minute)
	testenv.Exec(t, db, "INSERT INTO big VALUES (2, CONCAT("+strings.Repeat("RANDOM_BYTES(1024), ", 99)+"RANDOM_BYTES(1024)))")
	var gtid string
	if err := db.QueryRow("SELECT @@last_gtid").Scan(&gtid); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the pipeline did not stop at a row above max.message.bytes:\n%s", p.out)
	}
	for _, s := range []string{"row message of " + database + ".big", "gtid " + gtid, "max.message.bytes", "kafka-configs.sh", "--skip-gtid " + gtid} {
		if !strings.Contains(p.out.String(), s) {
			t.Errorf("the pipeline's error does not say %q:\n%s", s, p.out)
		}
	}
	settings := describeTopic(t, topic)
	if settings["max.message.bytes"] != "65536" || settings["unclean.leader.election.enable"] != "false" || settings["min.insync.replicas"] != "1" {
		t.Errorf("topic settings %v", settings)
	}
}

// describeTopic reads the settings of a topic that rowcast sets.
func describeTopic(t *testing.T, topic string) map[string]string {
	t.Helper()
	res, err := testenv.KafkaClient(t).DescribeConfigs(t.Context(), &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		ConfigNames: []string{"max.message.bytes", "unclean.leader.election.enable", "min.insync.replicas"},
	}}})
	if err != nil || len(res.Resources) != 1 {
		t.Fatalf("describe %s: %v", topic, err)
	}
	out := map[string]string{}
	for _, e := range res.Resources[0].ConfigEntries {
		out[e.ConfigName] = e.ConfigValue
	}
	return out
}
