package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/failover"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/internal/workload"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/verify"
)

// verifySetup starts `rowcast run` on a database of its own with three
// tables (the bank's accounts; a three-column key with NULLs and empty
// strings; a table without a key) and waits until both replicas hold them.
func verifySetup(t *testing.T) (cfg, database string, run *proc) {
	t.Helper()
	r := startReplication(t, "run")
	cfg, database, run = r.cfg, r.database, r.proc
	newBank(context.Background(), t, database, 300, 1000)
	testenv.Exec(t, testenv.DB(t, testenv.Master),
		"CREATE TABLE `"+database+"`.lines (region VARCHAR(8) NOT NULL, day DATE NOT NULL, n INT NOT NULL, note VARCHAR(20) NULL, PRIMARY KEY (region, day, n))",
		"INSERT INTO `"+database+"`.lines SELECT ELT(1 + seq % 2, 'eu', 'us'), '2024-01-01' + INTERVAL (seq % 9) DAY, seq, IF(seq % 3 = 0, NULL, IF(seq % 3 = 1, '', CONCAT('n', seq))) FROM `"+database+"`.seq_1_to_120",
		"CREATE TABLE `"+database+"`.events (kind VARCHAR(10) NULL, at DATETIME NULL)",
		"INSERT INTO `"+database+"`.events VALUES ('a', '2024-01-01 00:00:00'), ('b', NULL), (NULL, NULL)",
	)
	waitConverged(t, database, time.Minute)
	return cfg, database, run
}

// ticker commits a small replicated transaction every 100ms until stopped,
// so the replicas' checkpoints keep following the master's position even
// while other tests write to other databases of the shared master.
func ticker(t *testing.T, database string) (stop func()) {
	t.Helper()
	master := testenv.DB(t, testenv.Master)
	testenv.Exec(t, master, "CREATE TABLE `"+database+"`.tick (id INT PRIMARY KEY, n BIGINT NOT NULL)", "INSERT INTO `"+database+"`.tick VALUES (1, 0)")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			master.ExecContext(ctx, "UPDATE `"+database+"`.tick SET n = n + 1 WHERE id = 1")
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func tamper(t *testing.T, node, database string) {
	t.Helper()
	testenv.Exec(t, testenv.DB(t, node),
		"UPDATE `"+database+"`.accounts SET balance = balance + 1 WHERE id = 7",
		"DELETE FROM `"+database+"`.accounts WHERE id = 250",
		"INSERT INTO `"+database+"`.accounts (id, balance, updated) VALUES (5000, 1, NOW(6))",
		"UPDATE `"+database+"`.lines SET note = '' WHERE note IS NULL AND region = 'eu' AND n = 12",
	)
}

func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Errorf("the report lacks %q:\n%s", l, out)
		}
	}
}

// TestVerifyFindsAndRepairs runs verify against replicas that rowcast keeps
// up to date: equal replicas pass (exit 0); rows changed behind rowcast's
// back on db2 are found by key with both sides' values (exit 1) while db3
// still passes; --repair rewrites them (exit 0) and a new verify passes;
// afterwards the sink keeps applying and both replicas still equal the
// master.
func TestVerifyFindsAndRepairs(t *testing.T) {
	cfg, database, run := verifySetup(t)
	stop := ticker(t, database)
	defer stop()

	code, out, errs := runVerifyCmd(t, "--config", cfg, "--replica", "db2", "--chunk-rows", "50")
	if code != 0 {
		t.Fatalf("equal replica: exit %d\n%s\n%s", code, out, errs)
	}
	wantLines(t, out, database+".accounts: equal  rows 300, chunks 6", database+".lines: equal  rows 120",
		database+".events: equal  rows 3, chunks 1 (0 re-checked), no key", "no primary key: compared as a whole", "EQUAL: replica db2 vs master db1")

	tamper(t, testenv.Replica1, database)
	code, out, errs = runVerifyCmd(t, "--config", cfg, "--replica", "db2", "--chunk-rows", "50")
	if code != 1 {
		t.Fatalf("tampered replica: exit %d, want 1\n%s\n%s", code, out, errs)
	}
	wantLines(t, out,
		database+".accounts: 3 difference(s)",
		"changed id=7", "missing id=250", "extra   id=5000",
		database+".lines: 1 difference(s)", `changed region="eu", day="2024-01-04", n=12`,
		`master:  region="eu", day="2024-01-04", n=12, note=NULL`,
		`replica: region="eu", day="2024-01-04", n=12, note=""`,
		"DIFFERENT: replica db2 vs master db1")
	t.Logf("the report on the tampered replica:\n%s", out)
	code, out, _ = runVerifyCmd(t, "--config", cfg, "--replica", "db2", "--quiet", "--tables", database+".accounts")
	if code != 1 || strings.Contains(out, "master:") || !strings.Contains(out, "changed id=7") || strings.Contains(out, ".lines") {
		t.Fatalf("--quiet --tables: exit %d\n%s", code, out)
	}
	if code, out, errs = runVerifyCmd(t, "--config", cfg, "--replica", "db3"); code != 0 {
		t.Fatalf("db3 was not touched: exit %d\n%s\n%s", code, out, errs)
	}

	code, out, errs = runVerifyCmd(t, "--config", cfg, "--replica", "db2", "--repair", "--chunk-rows", "50")
	if code != 0 {
		t.Fatalf("--repair: exit %d, want 0\n%s\n%s", code, out, errs)
	}
	wantLines(t, out, "repaired 3 row(s) on the replica; verified again: 0 difference(s) left",
		"repaired 1 row(s) on the replica; verified again: 0 difference(s) left")
	if code, out, errs = runVerifyCmd(t, "--config", cfg, "--replica", "db2", "--json"); code != 0 {
		t.Fatalf("after the repair: exit %d\n%s\n%s", code, out, errs)
	}
	var rep verify.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Static || len(rep.Tables) != 4 || !rep.Equal() {
		t.Fatalf("--json report (%v): %+v", err, rep)
	}

	// The sink goes on from its own checkpoint: new writes reach both
	// replicas, which equal the master.
	bank := &workload.Bank{DB: testenv.DB(t, testenv.Master), Database: database, Accounts: 300, Initial: 1000}
	if err := bank.Run(context.Background(), 2, 200); err != nil {
		t.Fatal(err)
	}
	stop()
	waitConverged(t, database, time.Minute)
	run.stop(t)
}

// TestVerifyStoppedSink repairs a replica whose sink is stopped. Without
// waiting (--no-wait) the difference is found; --repair fixes it without
// touching the sink's checkpoint row; the sink, started again, resumes from
// that checkpoint and the replica converges.
func TestVerifyStoppedSink(t *testing.T) {
	cfg, database, run := verifySetup(t)
	run.stop(t)
	replica := testenv.DB(t, testenv.Replica1)
	checkpointRow := func() string {
		var s string
		if err := replica.QueryRow("SELECT CONCAT_WS('|', topic, next_offset, epoch, txn_seq, max_txn_seq, gtid_set, commit_time, updated_at) FROM rowcast.checkpoint WHERE topic = ?",
			topicOf(t, cfg)).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := checkpointRow()
	tamper(t, testenv.Replica1, database)

	// Waiting cannot settle anything while the sink is stopped, unless the
	// shared master happens to be idle: either a confirmed difference or an
	// error that says what to do.
	code, out, errs := runVerifyCmd(t, "--config", cfg, "--replica", "db2", "--wait-timeout", "2s")
	if code == 0 || code == 2 && !strings.Contains(out+errs, "--no-wait") {
		t.Fatalf("stopped sink, waiting: exit %d\n%s\n%s", code, out, errs)
	}
	t.Logf("stopped sink, waiting: exit %d", code)
	code, out, errs = runVerifyCmd(t, "--config", cfg, "--replica", "db2", "--no-wait")
	if code != 1 {
		t.Fatalf("--no-wait: exit %d, want 1\n%s\n%s", code, out, errs)
	}
	wantLines(t, out, "changed id=7", "missing id=250", "extra   id=5000", `changed region="eu", day="2024-01-04", n=12`)
	code, out, errs = runVerifyCmd(t, "--config", cfg, "--replica", "db2", "--no-wait", "--repair")
	if code != 0 {
		t.Fatalf("--no-wait --repair: exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs = runVerifyCmd(t, "--config", cfg, "--replica", "db2", "--no-wait"); code != 0 {
		t.Fatalf("after the repair: exit %d\n%s\n%s", code, out, errs)
	}
	if after := checkpointRow(); after != before {
		t.Fatalf("the repair changed the sink's checkpoint:\nbefore %s\nafter  %s", before, after)
	}
	run = startRowcast(t, "run", "--config", cfg)
	bank := &workload.Bank{DB: testenv.DB(t, testenv.Master), Database: database, Accounts: 300, Initial: 1000}
	if err := bank.Run(context.Background(), 2, 200); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, database, time.Minute)
	run.stop(t)
}

func topicOf(t *testing.T, cfgPath string) string {
	t.Helper()
	c, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return c.ChangelogConfig().Topic
}

// TestVerifyUnderLoad verifies db2 and db3 again and again while clients
// transfer money on the master and `rowcast run` replicates: chunks whose
// first hashes differ (the replica is a few transactions behind) are
// re-checked, and no difference is ever reported.
func TestVerifyUnderLoad(t *testing.T) {
	cfg, database, run := verifySetup(t)
	bank := &workload.Bank{DB: testenv.DB(t, testenv.Master), Database: database, Accounts: 300, Initial: 1000}
	ctx, stopLoad := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- bank.Run(ctx, 6, 0) }()
	// The table without a key grows meanwhile: it is compared as a whole.
	go func() {
		master := testenv.DB(t, testenv.Master)
		for ctx.Err() == nil {
			if _, err := master.ExecContext(ctx, "INSERT INTO `"+database+"`.events VALUES ('load', NOW())"); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		done <- nil
	}()
	rechecked := 0
	for i := 0; i < 4; i++ {
		replica := []string{"db2", "db3"}[i%2]
		code, out, errs := runVerifyCmd(t, "--config", cfg, "--replica", replica, "--chunk-rows", "25", "--json")
		var rep verify.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("run %d on %s: exit %d, %v\n%s\n%s", i, replica, code, err, out, errs)
		}
		if code != 0 || !rep.Equal() {
			var b strings.Builder
			rep.WriteText(&b, false)
			t.Fatalf("run %d on %s under load: exit %d\n%s\n%s", i, replica, code, b.String(), errs)
		}
		for _, tr := range rep.Tables {
			rechecked += tr.Rechecked
		}
	}
	stopLoad()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if bank.Transfers.Load() < 100 {
		t.Fatalf("only %d transfers ran during the verifications", bank.Transfers.Load())
	}
	t.Logf("%d transfers during 4 verifications; %d chunks differed at first and were re-checked, none differed in the end", bank.Transfers.Load(), rechecked)
	if rechecked == 0 {
		t.Errorf("no chunk ever needed a re-check: the load did not exercise the live-write path")
	}
	waitConverged(t, database, time.Minute)
	run.stop(t)
}

// TestVerifyContinuous runs `rowcast run` with continuous verification on:
// rows are verified all the time, and a row changed behind rowcast's back on
// db2 shows in rowcast_verify_differences_total{replica="db2"} and in a warn
// log line naming the table and the key, with no row values.
func TestVerifyContinuous(t *testing.T) {
	c := clusterConfig{topic: testenv.CreateTopic(t, 1), database: testenv.UniqueName(t, "rc"), nodes: []string{"db1", "db2"},
		http: freeAddr(t), extra: "verify: {interval: 200ms, slice_rows: 500, rows_per_second: 100000}\n"}
	run := startPublishing(t, "run", c.write(t), c.topic)
	database := c.database
	replicatedNamed(t, database)
	newBank(context.Background(), t, database, 300, 1000)
	stop := ticker(t, database)
	defer stop()
	metric := func(name string) float64 {
		v, err := scrape(c.http, name+`{replica="db2"}`)
		if err != nil {
			return -1
		}
		return v
	}
	waitFor(t, time.Minute, "rows verified", func() bool { return metric("rowcast_verify_rows_total") >= 600 })
	if d := metric("rowcast_verify_differences_total"); d != 0 {
		run.stop(t)
		t.Fatalf("%v differences on an untouched replica\n%s", d, run.out.String())
	}
	testenv.Exec(t, testenv.DB(t, testenv.Replica1), "UPDATE `"+database+"`.accounts SET balance = 999999 WHERE id = 42")
	waitFor(t, time.Minute, "the difference to be counted", func() bool { return metric("rowcast_verify_differences_total") >= 1 })
	stop()
	run.stop(t)
	logs := run.out.String()
	var found bool
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "row differs from the master") {
			found = true
			if !strings.Contains(line, `"key":"id=42"`) || !strings.Contains(line, database+".accounts") || strings.Contains(line, "999999") {
				t.Errorf("the warning should name the table and key and no values: %s", line)
			}
		}
	}
	if !found {
		t.Fatalf("no warning about the differing row:\n%s", logs)
	}
}

// TestVerifyFollowsPromotion: verify compares a replica with the current
// master, not the one the config names. db1 (the config's master) holds a
// transaction db2 and db3 never got; then an epoch record in the topic
// names db2 the master of epoch 2, as a promotion writes it (the promotion
// lease is still held, as when a promotion is running or died after writing
// its record: the locator then reads the topic itself). Before it, db3
// differs from its master db1; after it, db3 equals its master db2, db2 is
// refused as a replica and db1, the old master, may be verified against
// db2. When the master cannot be determined, verify fails (exit 2) instead
// of falling back to the config's master.
func TestVerifyFollowsPromotion(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	cfgPath := e2eConfig(t, accountsApart(t), topic)

	code, out, errs := runVerifyCmd(t, "--config", cfgPath, "--replica", "db3")
	if code != 1 || !strings.Contains(out, "changed id=42") || !strings.Contains(out, "replica db3 vs master db1") {
		t.Fatalf("before the promotion, db3 against db1: exit %d, want 1\n%s\n%s", code, out, errs)
	}
	if code, out, errs = runVerifyCmd(t, "--config", cfgPath, "--replica", "db1"); code != 2 || !strings.Contains(errs, "db1 is the current master (epoch 1") {
		t.Fatalf("before the promotion, db1 as a replica: exit %d, want 2\n%s\n%s", code, out, errs)
	}
	promoteByRecord(t, cfgPath, topic, "db2")
	checkVerifyAfterPromotion(t, cfgPath)
	checkVerifyWithoutKafka(t, cfgPath)
}

// accountsApart creates a database with the same accounts on every node but
// for one row the master alone changed (id 42).
func accountsApart(t *testing.T) string {
	t.Helper()
	database := testenv.CreateDatabase(t, testenv.Master, testenv.Replica1, testenv.Replica2)
	for _, node := range []string{testenv.Master, testenv.Replica1, testenv.Replica2} {
		testenv.Exec(t, testenv.DB(t, node),
			"CREATE TABLE `"+database+"`.accounts (id INT NOT NULL PRIMARY KEY, balance BIGINT NOT NULL)",
			"INSERT INTO `"+database+"`.accounts SELECT seq, 1000 FROM `"+database+"`.seq_1_to_100")
	}
	testenv.Exec(t, testenv.DB(t, testenv.Master), "UPDATE `"+database+"`.accounts SET balance = 1 WHERE id = 42")
	return database
}

// promoteByRecord does what a promotion of node to the master of epoch 2
// leaves behind: the promotion lease, held, and the epoch record.
func promoteByRecord(t *testing.T, cfgPath, topic, node string) {
	t.Helper()
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Cleanup(func() {
		for _, node := range []string{testenv.Master, testenv.Replica1, testenv.Replica2} {
			db := testenv.DB(t, node)
			db.Exec("DELETE FROM rowcast.promotion_lease WHERE topic = ?", topic)
			db.Exec("DELETE FROM rowcast.epochs WHERE topic = ?", topic)
		}
	})
	if _, err := failover.AcquireLease(ctx, cfg, topic, failover.Holder("verify-test"), time.Minute, 0, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	writeEpochRecord(t, cfg.ChangelogConfig(), pipeline.EpochRecord{Epoch: 2, Master: node, StartGTIDSet: "0-2-1", Flavor: "mariadb", TxnSeq: 1})
}

// checkVerifyAfterPromotion: db3 equals its new master db2, db2 is refused
// as a replica, and the old master db1 is verified against db2.
func checkVerifyAfterPromotion(t *testing.T, cfgPath string) {
	t.Helper()
	code, out, errs := runVerifyCmd(t, "--config", cfgPath, "--replica", "db3")
	if code != 0 {
		t.Fatalf("after the promotion, db3 against db2: exit %d, want 0\n%s\n%s", code, out, errs)
	}
	wantLines(t, out, "compared with master db2, epoch 2 (from the epoch record)", "EQUAL: replica db3 vs master db2")
	if code, out, errs = runVerifyCmd(t, "--config", cfgPath, "--replica", "db2"); code != 2 || !strings.Contains(errs, "db2 is the current master (epoch 2") {
		t.Fatalf("after the promotion, db2 as a replica: exit %d, want 2\n%s\n%s", code, out, errs)
	}
	code, out, errs = runVerifyCmd(t, "--config", cfgPath, "--replica", "db1", "--json")
	var rep verify.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.Master != "db2" || rep.MasterEpoch != 2 || rep.Replica != "db1" ||
		len(rep.Tables) != 1 || rep.Tables[0].Differences != 1 {
		t.Fatalf("after the promotion, the old master db1 against db2: exit %d, %v\n%s\n%s", code, err, out, errs)
	}
}

// checkVerifyWithoutKafka: when the current master cannot be determined,
// verify fails instead of falling back to the config's master.
func checkVerifyWithoutKafka(t *testing.T, cfgPath string) {
	t.Helper()
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "rowcast.yaml")
	if err := os.WriteFile(broken, []byte(strings.Replace(string(text), testenv.Addr("kafka"), "127.0.0.1:1", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runVerifyCmd(t, "--config", broken, "--replica", "db3")
	if code != 2 || !strings.Contains(errs, "the current master cannot be determined") {
		t.Fatalf("without Kafka: exit %d, want 2 and a clear error\n%s\n%s", code, out, errs)
	}
	t.Logf("without Kafka: %s", strings.TrimSpace(errs))
}

// writeEpochRecord publishes an epoch record to the topic, as a promotion
// does.
func writeEpochRecord(t *testing.T, kc changelog.Config, rec pipeline.EpochRecord) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := changelog.NewProducer(kc, zerolog.Nop(), changelog.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	ev := &pipeline.Event{Kind: pipeline.KindEpoch, Pos: pipeline.Position{Epoch: rec.Epoch, TxnSeq: rec.TxnSeq, Last: true},
		Flavor: rec.Flavor, CommitTime: time.Now(), Epoch: &rec}
	c := &pipeline.Codec{}
	k, err := c.AppendKey(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.AppendValue(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Send(ctx, k, v, "epoch record"); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
}

// runVerifyCmd runs `rowcast verify` to the end and returns its exit code,
// its report (stdout) and its log (stderr).
func runVerifyCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLIProcess(t, append([]string{"verify"}, args...)...)
}

// TestVerifyContinuousByDefault: a config without a verify section runs
// continuous verification every minute in each sink worker, so writes made
// behind rowcast's back are found without anyone turning it on. (Its first
// attempt on a fresh topic finds no checkpoint yet and waits an interval.)
func TestVerifyContinuousByDefault(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	run := startPublishing(t, "run", e2eConfig(t, accountsApart(t), topic), topic)
	attempts := func() []string {
		var lines []string
		for _, line := range strings.Split(run.out.String(), "\n") {
			if strings.Contains(line, `"component":"verify"`) && strings.Contains(line, "continuous verification") {
				lines = append(lines, line)
			}
		}
		return lines
	}
	waitFor(t, time.Minute, "continuous verification on both replicas", func() bool { return len(attempts()) >= 2 })
	run.stop(t)
	for _, line := range attempts() {
		if !strings.Contains(line, `"interval":60000`) {
			t.Errorf("continuous verification does not run every minute by default: %s", line)
		}
	}
}
