package failover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/testenv"
)

// testConfig is a cluster of the stack's three nodes with db1 the master;
// down names nodes that point at a closed port instead.
func testConfig(t *testing.T, topic string, down ...string) *config.Config {
	t.Helper()
	return clusterConfig(t, topic, "db1", down...)
}

// clusterConfig is a cluster of the stack's three nodes with the master
// named; down names nodes that point at a closed port instead.
func clusterConfig(t *testing.T, topic, master string, down ...string) *config.Config {
	t.Helper()
	var nodes strings.Builder
	for _, n := range []string{"db1", "db2", "db3"} {
		addr := testenv.Addr(n)
		if slices.Contains(down, n) {
			addr = "127.0.0.1:1"
		}
		fmt.Fprintf(&nodes, "  - {name: %s, dsn: \"root@tcp(%s)/\"}\n", n, addr)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf("cluster: t\nmaster: %s\nnodes:\n%skafka: {brokers: [%q], topic: %s}\nhttp: \"off\"\n",
		master, nodes.String(), testenv.Addr("kafka"), topic)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range []string{"db1", "db2", "db3"} {
			db := testenv.DB(t, n)
			db.Exec("DELETE FROM rowcast.promotion_lease WHERE topic = ?", topic)
			db.Exec("DELETE FROM rowcast.epochs WHERE topic = ?", topic)
		}
	})
	return cfg
}

func TestLease(t *testing.T) {
	ctx := context.Background()
	topic := testenv.UniqueName(t, "lease")
	cfg := testConfig(t, topic)
	log := zerolog.Nop()

	a, err := AcquireLease(ctx, cfg, topic, "a", 3*time.Second, 100, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireLease(ctx, cfg, topic, "b", 3*time.Second, 200, log); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second holder: %v, want ErrLeaseHeld", err)
	}
	// Held past its TTL by renewal.
	time.Sleep(4 * time.Second)
	if err := a.Check(); err != nil {
		t.Fatalf("renewed lease: %v", err)
	}
	if _, err := AcquireLease(ctx, cfg, topic, "b", 3*time.Second, 200, log); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second holder after renewal: %v, want ErrLeaseHeld", err)
	}
	// A holder that dies without releasing: the lease expires, and the
	// next holder inherits its offset (its record may be in the topic).
	a.stop()
	<-a.done
	a.stop = nil
	time.Sleep(3500 * time.Millisecond)
	b, err := AcquireLease(ctx, cfg, topic, "b", 3*time.Second, 200, log)
	if err != nil {
		t.Fatal(err)
	}
	if b.FromOffset != 100 {
		t.Fatalf("from offset %d after an expired holder at 100", b.FromOffset)
	}
	b.Release(ctx)
	c, err := AcquireLease(ctx, cfg, topic, "c", 3*time.Second, 300, log)
	if err != nil {
		t.Fatal(err)
	}
	if c.FromOffset != 300 {
		t.Fatalf("from offset %d after a clean release", c.FromOffset)
	}
	c.Release(ctx)
}

func TestLeaseQuorum(t *testing.T) {
	ctx := context.Background()
	topic := testenv.UniqueName(t, "lease")
	l, err := AcquireLease(ctx, testConfig(t, topic, "db1"), topic, "a", 3*time.Second, 0, zerolog.Nop())
	if err != nil {
		t.Fatalf("2 of 3 nodes: %v", err)
	}
	l.Release(ctx)
	if _, err := AcquireLease(ctx, testConfig(t, topic, "db1", "db2"), topic, "a", 3*time.Second, 0, zerolog.Nop()); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("1 of 3 nodes: %v, want ErrNoQuorum", err)
	}
}

// TestLocate: the current master comes from the nodes' index, checked
// against the topic; a promotion that wrote its record and died before
// the index is found by scanning from its lease's offset; an index that
// disagrees with the topic is an error.
func TestLocate(t *testing.T) {
	ctx := context.Background()
	topic := testenv.CreateTopic(t, 1)
	cfg := testConfig(t, topic)
	kc := changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic}
	log := zerolog.Nop()
	loc := NewLocator(cfg, kc, log)
	cur, err := loc.Current(ctx)
	if err != nil || cur.From != "config" {
		t.Fatalf("before any promotion: %+v, %v", cur, err)
	}
	wantCurrent(t, "before any promotion", cur, "db1", 1, -1)
	// A complete promotion to db2.
	l, err := AcquireLease(ctx, cfg, topic, "p1", 10*time.Second, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	rec, off := writeRecord(t, kc, 2, "db2")
	if err := l.RecordEpoch(ctx, epochRow{Offset: off, Record: rec, PromotedBy: "p1", PromotedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	l.Release(ctx)
	cur, err = loc.Current(ctx)
	if err != nil {
		t.Fatalf("after promoting db2: %v", err)
	}
	wantCurrent(t, "after promoting db2", cur, "db2", 2, off)
	off3 := diedAfterRecord(t, cfg, kc, 3, "db3")
	view, err := loc.Locate(ctx)
	if err != nil || len(view.Marks) != 2 {
		t.Fatalf("after a promotion that died: %+v, %v", view, err)
	}
	wantCurrent(t, "after a promotion that died", view.Current, "db3", 3, off3)
	// A node's index that names an offset holding something else.
	testenv.Exec(t, testenv.DB(t, "db2"), fmt.Sprintf("UPDATE rowcast.epochs SET record_offset = %d WHERE topic = '%s' AND epoch = 2", off3+5, topic))
	for _, n := range []string{"db1", "db3"} {
		testenv.Exec(t, testenv.DB(t, n), fmt.Sprintf("DELETE FROM rowcast.epochs WHERE topic = '%s'", topic))
	}
	for _, n := range []string{"db1", "db2", "db3"} {
		testenv.Exec(t, testenv.DB(t, n), fmt.Sprintf("UPDATE rowcast.promotion_lease SET expires_at = NULL WHERE topic = '%s'", topic))
	}
	if _, err := loc.Locate(ctx); err == nil || !strings.Contains(err.Error(), "re-created") {
		t.Fatalf("an index past the topic's end: %v", err)
	}
}

// diedAfterRecord is a promotion that takes the lease and writes its epoch
// record, then dies: the lease stays held. It returns the record's offset.
func diedAfterRecord(t *testing.T, cfg *config.Config, kc changelog.Config, epoch uint64, master string) int64 {
	t.Helper()
	ctx := context.Background()
	end, _ := changelog.EndOffset(ctx, kc)
	l, err := AcquireLease(ctx, cfg, kc.Topic, "p2", 10*time.Second, end, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	_, off := writeRecord(t, kc, epoch, master)
	l.stop()
	<-l.done
	return off
}

// wantCurrent checks the current master Locate found.
func wantCurrent(t *testing.T, when string, cur Current, master string, epoch uint64, offset int64) {
	t.Helper()
	if cur.Master != master || cur.Epoch != epoch || cur.Offset != offset {
		t.Fatalf("%s: %+v, want master %s, epoch %d at offset %d", when, cur, master, epoch, offset)
	}
}
