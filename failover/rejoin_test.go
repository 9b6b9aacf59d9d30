package failover

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

// TestRejoin: db2 was the master of epoch 1 until an epoch record made db1
// the master; the topic last had db2's GTID set before one more transaction
// committed on db2. Rejoin exports that transaction (the loss) and refuses
// to make db2 a replica; with UndoLoss it reverts it and writes db2's
// checkpoint at the epoch record. db2 is read-only from the first Rejoin
// to the end of the test.
func TestRejoin(t *testing.T) {
	sc := newRejoinScene(t)
	res, err := sc.rejoin(false)
	if !errors.Is(err, ErrLoss) {
		t.Fatalf("Rejoin with a loss: %v, want ErrLoss", err)
	}
	sc.checkLoss(t, res)
	res, err = sc.rejoin(true)
	if err != nil || res.Undone != 1 {
		t.Fatalf("Rejoin undoing the loss: %+v, %v", res, err)
	}
	sc.checkUndone(t)
}

// rejoinScene is db2, an old master with one transaction the topic never
// got, in a database and a bookkeeping schema of the test.
type rejoinScene struct {
	r                *Rejoiner
	schema, database string
	published, loss  string
	fenceOff         int64
	db2              *sql.DB
}

func newRejoinScene(t *testing.T) *rejoinScene {
	topic := testenv.CreateTopic(t, 1)
	cfg := clusterConfig(t, topic, "db2", "db3")
	sc := &rejoinScene{schema: ownBookkeeping(t, cfg, "db1", "db2"), database: testenv.CreateDatabase(t, "db2"),
		loss: filepath.Join(t.TempDir(), "loss.jsonl"), db2: testenv.DB(t, "db2")}
	cfg.Source.Include = []string{"^" + regexp.QuoteMeta(sc.database) + `\.`}
	cfg.Source.ServerID = 100_000 + rand.Uint32N(1<<30)
	keepWritable(t, "db2")
	testenv.Exec(t, sc.db2, "CREATE TABLE `"+sc.database+"`.t (id INT NOT NULL PRIMARY KEY, v VARCHAR(10) NOT NULL)")
	kc := changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic}
	sc.published = gtidSetOf(t, "db2")
	writeHeartbeat(t, kc, 1, sc.published)
	sc.fenceOff = promotedInIndex(t, cfg, kc, 2, "db1")
	testenv.Exec(t, sc.db2, "INSERT INTO `"+sc.database+"`.t VALUES (1, 'lost')")
	sc.r = &Rejoiner{Cfg: cfg, Kafka: kc, Log: zerolog.Nop()}
	return sc
}

func (sc *rejoinScene) rejoin(undo bool) (*RejoinResult, error) {
	return sc.r.Rejoin(context.Background(), RejoinOptions{Node: "db2", LossFile: sc.loss, UndoLoss: undo, ReadTimeout: 30 * time.Second})
}

// checkLoss checks the report of the loss, its file, and that db2 is
// read-only.
func (sc *rejoinScene) checkLoss(t *testing.T, res *RejoinResult) {
	t.Helper()
	if res.Epoch != 1 || res.FenceOffset != sc.fenceOff || res.NewMaster != "db1" || res.Published != sc.published || res.LossFile != sc.loss {
		t.Fatalf("Rejoin with a loss: %+v", res)
	}
	if len(res.Lost) != 1 || res.LostRows != 1 || !slices.Equal(res.Lost[0].Tables, []string{sc.database + ".t"}) {
		t.Fatalf("the loss: %+v", res.Lost)
	}
	if n := lines(t, sc.loss); n != 1 || !readOnlyOf(t, "db2") {
		t.Fatalf("loss file of %d lines, db2 read-only %v", n, readOnlyOf(t, "db2"))
	}
	if fi, err := os.Stat(sc.loss); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the loss file holds row data: mode %v (%v), want 0600", fi.Mode(), err)
	}
}

// A loss file that was there, readable by all, is readable by its owner only
// once rewritten.
func TestCreatePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loss.jsonl")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := createPrivate(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 0 {
		t.Fatalf("mode %v size %d (%v), want 0600 and empty", fi.Mode(), fi.Size(), err)
	}
}

// checkUndone checks that the lost row is gone and db2's checkpoint is at
// the epoch record, with the GTID set the topic had of it.
func (sc *rejoinScene) checkUndone(t *testing.T) {
	t.Helper()
	var rows int
	if err := sc.db2.QueryRow("SELECT COUNT(*) FROM `" + sc.database + "`.t").Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("db2 holds %d rows after the undo (%v)", rows, err)
	}
	st, found, err := checkpoint.NewMySQL(sc.schema).Load(context.Background(), sc.db2, sc.r.Kafka.Topic, 0)
	if err != nil || !found || st.Offset != sc.fenceOff || st.Epoch != 1 || st.TxnSeq != 10 || st.GTIDSet != sc.published {
		t.Fatalf("db2's checkpoint: %+v, %v, %v", st, found, err)
	}
}

// promotedInIndex writes an epoch record naming master to the topic and
// into the nodes' index, as a promotion does, and returns its offset.
func promotedInIndex(t *testing.T, cfg *config.Config, kc changelog.Config, epoch uint64, master string) int64 {
	t.Helper()
	ctx := context.Background()
	l, err := AcquireLease(ctx, cfg, kc.Topic, "p", time.Minute, 0, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	rec, off := writeRecord(t, kc, epoch, master)
	if err := l.RecordEpoch(ctx, epochRow{Offset: off, Record: rec, PromotedBy: "p", PromotedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return off
}

// writeHeartbeat writes a heartbeat of epoch with the master's GTID set,
// as the reader does between transactions.
func writeHeartbeat(t *testing.T, kc changelog.Config, epoch uint64, set string) {
	t.Helper()
	ctx := context.Background()
	w, err := newRecordWriter(ctx, kc, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	if _, err := w.write(ctx, &pipeline.Event{Kind: pipeline.KindHeartbeat, Pos: pipeline.Position{Epoch: epoch, TxnSeq: 5, Last: true},
		GTIDSet: set, Flavor: "mariadb", CommitTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func gtidSetOf(t *testing.T, node string) string {
	t.Helper()
	var set string
	if err := testenv.DB(t, node).QueryRow("SELECT @@GLOBAL.gtid_binlog_pos").Scan(&set); err != nil {
		t.Fatal(err)
	}
	return set
}

func lines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for s := bufio.NewScanner(f); s.Scan(); {
		n++
	}
	return n
}
