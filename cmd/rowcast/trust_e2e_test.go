package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// forgeTable is the table t of the trust tests as the reader describes it.
func forgeTable(database string) *pipeline.Table {
	return &pipeline.Table{Database: database, Name: "t", PrimaryKey: []int{0}, Columns: []pipeline.Column{
		{Name: "id", Kind: pipeline.VInt, SQLType: "int(11)"},
		{Name: "v", Kind: pipeline.VString, SQLType: "varchar(40)"}}}
}

// forge writes ev straight to the topic, as anyone whom Kafka lets write
// could: without rowcast's key (headers may carry a signature made with
// another one). It returns the message's offset.
func forge(t testing.TB, topic string, ev *pipeline.Event, headers ...kafka.Header) int64 {
	t.Helper()
	c := &pipeline.Codec{Cluster: "e2e"}
	k, err := c.AppendKey(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.AppendValue(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	return testenv.ProduceUnsigned(t, topic, k, v, headers...)
}

// lastTxnSeq is the highest txn_seq in the topic.
func lastTxnSeq(t testing.TB, topic string) (seq uint64, gtidSet string) {
	t.Helper()
	for _, ev := range readTopic(t, topic) {
		if ev.Pos.TxnSeq >= seq {
			seq = ev.Pos.TxnSeq
			if ev.GTIDSet != "" {
				gtidSet = ev.GTIDSet
			}
		}
	}
	return seq, gtidSet
}

// forgeAll writes the injections of issue 16 at the tail: a DDL creating a
// database nobody replicates, a row taking the position of the next real
// transaction (which would then be skipped as a duplicate), an epoch
// record naming db3, and a row signed with a key rowcast does not have.
func forgeAll(t testing.TB, topic, database, evilDB string) []int64 {
	t.Helper()
	next, set := lastTxnSeq(t, topic)
	next++
	pos := pipeline.Position{Epoch: 1, TxnSeq: next, Last: true}
	row := func(id int64) *pipeline.Event {
		return &pipeline.Event{Kind: pipeline.KindRow, Pos: pos, GTID: "0-1-999999", GTIDSet: set, Flavor: "mariadb", ServerID: 1,
			CommitTime: time.Now().Truncate(time.Second), Table: forgeTable(database), Op: pipeline.OpInsert, After: []any{id, "forged"}}
	}
	other, err := changelog.NewSigningKeys([]byte("not-the-rowcast-key-0123456789"), nil)
	if err != nil {
		t.Fatal(err)
	}
	forged := row(998)
	c := &pipeline.Codec{Cluster: "e2e"}
	k, _ := c.AppendKey(nil, forged)
	v, _ := c.AppendValue(nil, forged)
	return []int64{
		forge(t, topic, &pipeline.Event{Kind: pipeline.KindDDL, Pos: pos, GTID: "0-1-999998", GTIDSet: set, Flavor: "mariadb",
			Database: database, Statement: "CREATE DATABASE `" + evilDB + "`"}),
		forge(t, topic, row(999)),
		forge(t, topic, &pipeline.Event{Kind: pipeline.KindEpoch, Pos: pipeline.Position{Epoch: 2, TxnSeq: next - 1, Last: true},
			Flavor: "mariadb", GTIDSet: "0-3-1", Epoch: &pipeline.EpochRecord{Epoch: 2, Master: "db3", StartGTIDSet: "0-3-1",
				Flavor: "mariadb", TxnSeq: next - 1}}),
		testenv.ProduceUnsigned(t, topic, k, v, kafka.Header{Key: changelog.SigHeader, Value: other.Sign(nil, topic, k, v)}),
	}
}

// refusedOffsets are the offsets a replica's skip table records as refused.
func refusedOffsets(t testing.TB, node, topic string) []int64 {
	t.Helper()
	rows, err := testenv.DB(t, node).Query("SELECT `offset` FROM rowcast.skipped WHERE topic = ? AND operator = ? ORDER BY `offset`",
		topic, sink.RefusedBy)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var o int64
		if err := rows.Scan(&o); err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

// TestForgedMessagesNeverApplied: a forged DDL, a forged position, a forged
// epoch record and a message signed with another key, written straight to
// the topic, are never applied nor followed: every real transaction still
// arrives (the one whose position was taken included), nothing of the
// forgeries reaches a replica, the skip tables and the metric record each,
// and `rowcast status` still names db1 the master. A forged resume point at
// the tail does not move the restarted reader either.
func TestForgedMessagesNeverApplied(t *testing.T) {
	topic, database, addr := testenv.CreateTopic(t, 1), testenv.UniqueName(t, "rc"), freeAddr(t)
	evilDB := testenv.UniqueName(t, "evil")
	for _, node := range []string{testenv.Master, testenv.Replica1, testenv.Replica2} {
		db := testenv.DB(t, node)
		t.Cleanup(func() { db.Exec("DROP DATABASE IF EXISTS `" + evilDB + "`") })
	}
	cfg := clusterConfig{database: database, topic: topic, http: addr}.write(t)
	run := startPublishing(t, "run", cfg, topic)
	replicatedNamed(t, database)
	testenv.Exec(t, testenv.DB(t, testenv.Master),
		"CREATE TABLE `"+database+"`.t (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)",
		"CREATE TABLE `"+database+"`.u (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)")
	writeRows(t, database, 0, 5)
	waitEqual(t, testenv.Master, testenv.Replica1, database, time.Minute)

	forged := forgeAll(t, topic, database, evilDB)
	t.Logf("forged messages at offsets %v", forged)
	writeRows(t, database, 5, 30)
	for _, node := range []string{testenv.Replica1, testenv.Replica2} {
		waitEqual(t, testenv.Master, node, database, time.Minute)
		checkForgeriesRefused(t, node, topic, evilDB, forged)
	}
	for _, replica := range []string{"db2", "db3"} {
		series := fmt.Sprintf(`rowcast_sink_total{counter="messages_refused",replica=%q}`, replica)
		n, err := scrape(addr, series)
		if err != nil || n != float64(len(forged)) {
			t.Errorf("%s = %v (%v), want %d", series, n, err, len(forged))
		}
		t.Logf("%s %v", series, n)
	}
	nodes := replicasOf(t, cfg)
	if nodes["db2"].Epoch != 1 || nodes["db3"].Epoch != 1 || nodes["db3"].ReadOnly != nodes["db2"].ReadOnly {
		t.Errorf("after a forged epoch record: status %+v", nodes)
	}

	run.stop(t)
	seq, _ := lastTxnSeq(t, topic)
	tail := forge(t, topic, &pipeline.Event{Kind: pipeline.KindHeartbeat, Pos: pipeline.Position{Epoch: 1, TxnSeq: seq + 50, Last: true},
		Flavor: "mariadb", GTIDSet: "0-1-1", CommitTime: time.Now().Truncate(time.Second)})
	run = startRowcast(t, "run", "--config", cfg)
	writeRows(t, database, 30, 40)
	for _, node := range []string{testenv.Replica1, testenv.Replica2} {
		waitEqual(t, testenv.Master, node, database, time.Minute)
		checkForgeriesRefused(t, node, topic, evilDB, append(forged, tail))
	}
	if !strings.Contains(run.out.String(), "failed the signature check") {
		t.Errorf("the restarted reader did not log the forged resume point:\n%s", run.out)
	}
	checkDuplicateDiffers(t, cfg, topic, database, addr)
	run.kill(t)
}

// checkForgeriesRefused checks that node holds none of the forgeries and records
// exactly the forged offsets as refused.
func checkForgeriesRefused(t testing.TB, node, topic, evilDB string, forged []int64) {
	t.Helper()
	var n int
	testenv.DB(t, node).QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", evilDB).Scan(&n)
	if n != 0 {
		t.Errorf("%s: the forged CREATE DATABASE %s was applied", node, evilDB)
	}
	var got []int64
	waitFor(t, 30*time.Second, node+"'s skip records", func() bool {
		got = refusedOffsets(t, node, topic)
		return slices.Equal(got, forged)
	})
	t.Logf("%s records the refused offsets %v", node, got)
}

// checkDuplicateDiffers publishes, with rowcast's own key, a copy of an
// applied one-row transaction whose row differs: a duplicate by position
// that is not the transaction applied there. Both sinks stop on it.
func checkDuplicateDiffers(t *testing.T, cfgPath, topic, database, addr string) {
	t.Helper()
	var orig *pipeline.Event
	for _, ev := range readTopic(t, topic) {
		if ev.Kind == pipeline.KindRow && ev.Pos.Row == 0 && ev.Pos.Last && ev.Table.Name == "t" {
			orig = ev
		}
	}
	if orig == nil {
		t.Fatal("no one-row transaction of t in the topic")
	}
	copied := *orig
	copied.After = []any{orig.After[0], "not what was applied"}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	publishSigned(t, cfg.ChangelogConfig(), &copied)
	for _, replica := range []string{"db2", "db3"} {
		var h healthzView
		waitFor(t, time.Minute, replica+"'s sink to stop on the differing duplicate", func() bool {
			h = healthzOf(t, addr)
			return h.Details["sink/"+replica].Stopped()
		})
		rep := h.Details["sink/"+replica]
		if !strings.Contains(rep.Error, sink.ErrDuplicateDiffers.Error()) || rep.Fix == "" {
			t.Errorf("%s stopped with %+v, want a duplicate that differs", replica, rep)
		}
		t.Logf("%s stopped at offset %d: %s", replica, rep.Offset, rep.Error)
	}
}

// publishSigned writes ev with rowcast's producer, signed with kc's key.
func publishSigned(t testing.TB, kc changelog.Config, ev *pipeline.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := changelog.NewProducer(kc, zerolog.Nop(), changelog.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	c := &pipeline.Codec{Cluster: "e2e"}
	k, err := c.AppendKey(nil, ev)
	if err == nil {
		var v []byte
		if v, err = c.AppendValue(nil, ev); err == nil {
			err = p.Send(ctx, k, v, "copy")
		}
	}
	if err == nil {
		err = p.Flush(ctx)
	}
	cancel()
	<-done
	if err != nil {
		t.Fatal(err)
	}
}

// TestSigningKeyRotation: the reader and the sinks move from one key to
// the next without stopping: with the new key current and the old one
// previous, the restarted reader resumes from a tail the old key signed and
// the sinks apply on; once the old key is dropped, its messages fail the
// check (`rowcast tail` shows them refused) while the new key's pass.
func TestSigningKeyRotation(t *testing.T) {
	topic, database := testenv.CreateTopic(t, 1), testenv.UniqueName(t, "rc")
	t.Setenv("E2E_KEY_OLD", "rotation-old-key-0123456789abcdef")
	t.Setenv("E2E_KEY_NEW", "rotation-new-key-0123456789abcdef")
	write := func(signing string) string {
		return clusterConfig{database: database, topic: topic, kafkaExtra: "  signing: " + signing + "\n"}.write(t)
	}
	oldOnly, both, newOnly := write("{key_env: E2E_KEY_OLD}"), write("{key_env: E2E_KEY_NEW, previous_key_env: E2E_KEY_OLD}"),
		write("{key_env: E2E_KEY_NEW}")
	run := startPublishing(t, "run", oldOnly, topic)
	replicatedNamed(t, database)
	testenv.Exec(t, testenv.DB(t, testenv.Master),
		"CREATE TABLE `"+database+"`.t (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)",
		"CREATE TABLE `"+database+"`.u (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)")
	writeRows(t, database, 0, 10)
	waitEqual(t, testenv.Master, testenv.Replica2, database, time.Minute)
	run.stop(t)
	oldEnd := int64(len(readTopic(t, topic)))

	run = startRowcast(t, "run", "--config", both)
	writeRows(t, database, 10, 20)
	for _, node := range []string{testenv.Replica1, testenv.Replica2} {
		waitEqual(t, testenv.Master, node, database, time.Minute)
	}
	run.stop(t)
	if strings.Contains(run.out.String(), "signature") {
		t.Errorf("with both keys, something failed the check:\n%s", run.out)
	}

	out := mustRowcast(t, "tail", "--config", newOnly)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	t.Logf("tail with the new key only: %d messages, the first %d signed with the old key", len(lines), oldEnd)
	for i, line := range lines {
		if refused := strings.Contains(line, `"refused":`); refused != (int64(i) < oldEnd) {
			t.Fatalf("tail with the new key only, line %d of %d (old key up to %d): refused %v\n%s", i, len(lines), oldEnd, refused, line)
		}
	}
	out = mustRowcast(t, "tail", "--config", both)
	if strings.Contains(out, `"refused":`) {
		t.Fatalf("tail with both keys shows refused messages:\n%s", out)
	}
}

// TestSigningRequiresKey: without the key in the environment, and without
// `signing: off`, the pipeline refuses to start and says how to fix it.
func TestSigningRequiresKey(t *testing.T) {
	topic, database := testenv.CreateTopic(t, 1), testenv.UniqueName(t, "rc")
	cfg := clusterConfig{database: database, topic: topic, kafkaExtra: "  signing: {key_env: E2E_KEY_UNSET}\n"}.write(t)
	os.Unsetenv("E2E_KEY_UNSET")
	code, _, errs := runCLIProcess(t, "pipeline", "--config", cfg)
	if code == 0 || !strings.Contains(errs, "E2E_KEY_UNSET is empty") || !strings.Contains(errs, "signing: off") {
		t.Fatalf("pipeline without a key: exit %d\n%s", code, errs)
	}
	t.Logf("without a key: exit %d: %s", code, strings.TrimSpace(errs))
}
