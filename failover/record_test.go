package failover

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/changelog/history"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

// The epoch record of a planned promotion from db2 to db1 (newPlannedTest)
// that Kafka does not acknowledge in time. The old master, db2, must never
// become writable again while the record may be in the topic.

// TestRecordAckLost: the record lands, its acknowledgement is lost. The
// promotion finds it in the topic and goes on: db2 stays fenced, db1 is
// the master of epoch 2 at the record's offset.
func TestRecordAckLost(t *testing.T) {
	ctx := context.Background()
	pt := newPlannedTest(t, true)
	pt.p.faults.loseAck = true
	pt.opts.RecordTimeout, pt.opts.RecordSettle = time.Second, time.Second
	res, err := pt.p.Promote(ctx, pt.opts)
	fenced := readOnlyOf(t, "db2")
	restoreWritable(t, "db2")
	if err != nil {
		t.Fatalf("Promote with the record's acknowledgement lost: %v", err)
	}
	if !fenced {
		t.Fatal("db2 is writable again after a promotion whose epoch record is in the topic")
	}
	marks := epochRecords(t, pt.p.Kafka)
	if len(marks) != 1 || res.RecordOffset != marks[0].Offset || res.NewMaster != "db1" || res.Epoch != 2 {
		t.Fatalf("result %+v; records in the topic %+v", res, marks)
	}
	checkSteps(t, res, "look up the current master", "take the promotion lease", "connect to the master and the replica", "fence db2",
		"wait for the reader to publish the master's last transaction", "wait for db1 to apply the whole topic", "write the epoch record",
		"check that no other promotion came first", "make db1 writable", "record the epoch in the nodes' index")
}

// TestRecordUnreadable: the record lands, its acknowledgement is lost, and
// Kafka cannot be read afterwards. Nothing is undone: db2 stays fenced, the
// lease stays held on the nodes, and the error says what to do.
func TestRecordUnreadable(t *testing.T) {
	ctx := context.Background()
	pt := newPlannedTest(t, true)
	pt.p.faults.loseAck = true
	pt.p.faults.readKafka = func(kc changelog.Config) changelog.Config {
		kc.Brokers, kc.RequestTimeout = []string{"127.0.0.1:1"}, 2*time.Second
		return kc
	}
	pt.opts.RecordTimeout, pt.opts.RecordSettle = time.Second, time.Second
	_, err := pt.p.Promote(ctx, pt.opts)
	fenced := readOnlyOf(t, "db2")
	restoreWritable(t, "db2")
	var unknown *UnknownOutcomeError
	var abort *AbortError
	if !errors.As(err, &unknown) || errors.As(err, &abort) {
		t.Fatalf("Promote with the topic unreadable: %v, want an UnknownOutcomeError", err)
	}
	for _, want := range []string{`promotion stopped at "write the epoch record"`, "db2 stays fenced (read_only=ON)", "db1 stays read-only",
		"lease is left to expire unreleased", "run `rowcast status`: if it names db1 at epoch 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q: %v", want, err)
		}
	}
	if !fenced {
		t.Error("db2 was made writable again while the epoch record may be in the topic")
	}
	for _, n := range []string{"db1", "db2"} {
		if !leaseHeld(t, n, pt.schema, pt.p.Kafka.Topic) {
			t.Errorf("the promotion lease was released on %s", n)
		}
	}
	if marks := epochRecords(t, pt.p.Kafka); len(marks) != 1 || marks[0].Record.Master != "db1" {
		t.Fatalf("the test's record did not land: %+v", marks)
	}
}

// TestRecordLost: the record never reaches Kafka. The topic is read twice,
// without it: the promotion is aborted and undone.
func TestRecordLost(t *testing.T) {
	ctx := context.Background()
	pt := newPlannedTest(t, true)
	pt.p.faults.loseRecord = true
	pt.opts.RecordTimeout, pt.opts.RecordSettle = time.Second, time.Second
	_, err := pt.p.Promote(ctx, pt.opts)
	var ae *AbortError
	if !errors.As(err, &ae) || ae.Step != "write the epoch record" || ae.Undo != "read_only of db2 restored to OFF; promotion lease released" ||
		!strings.Contains(ae.Err.Error(), "is not in the topic") {
		t.Fatalf("Promote with the record lost: %v, want an abort at the epoch record", err)
	}
	if readOnlyOf(t, "db2") {
		t.Fatal("db2 is still read-only after the abort")
	}
	if marks := epochRecords(t, pt.p.Kafka); len(marks) != 0 {
		t.Fatalf("records in the topic: %+v", marks)
	}
}

// epochRecords are the epoch records in the topic.
func epochRecords(t *testing.T, kc changelog.Config) []history.Mark {
	t.Helper()
	ctx := context.Background()
	end, err := changelog.EndOffset(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	marks, err := history.New(changelog.TopicOf(kc), &pipeline.Codec{}, nil).Scan(ctx, 0, end)
	if err != nil {
		t.Fatal(err)
	}
	return marks
}

// leaseHeld says whether the promotion lease of topic is held (taken and
// not released) on node, in bookkeeping schema s.
func leaseHeld(t *testing.T, node, s, topic string) bool {
	t.Helper()
	row, found, err := newStore(s).lease(context.Background(), testenv.DB(t, node), topic, false)
	if err != nil {
		t.Fatal(err)
	}
	return found && row.Held
}
