package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/internal/workload"
	"github.com/rowcast/rowcast/pipeline"
)

// rowcastOut runs a one-shot rowcast command and returns its output and
// error.
func rowcastOut(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rowcastBinary(t), args...)
	cmd.Env = append(os.Environ(), "CI=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustRowcast(t testing.TB, args ...string) string {
	t.Helper()
	out, err := rowcastOut(t, args...)
	if err != nil {
		t.Fatalf("rowcast %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// checksumOf checksums a database on a node.
func checksumOf(t testing.TB, node, database string) []workload.TableChecksum {
	t.Helper()
	cs, err := workload.Checksum(context.Background(), testenv.DB(t, node), database)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// waitEqual waits until node holds exactly what the master holds.
func waitEqual(t testing.TB, master, node, database string, timeout time.Duration) {
	t.Helper()
	want := checksumOf(t, master, database)
	deadline := time.Now().Add(timeout)
	for {
		got, err := workload.Checksum(context.Background(), testenv.DB(t, node), database)
		diff := ""
		if err != nil {
			diff = err.Error()
		} else if diff = workload.Diff(want, got); diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not equal %s after %v: %s", node, master, timeout, diff)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

var fromOffsetRe = regexp.MustCompile(`(?m)^  from: +offset (\d+) `)

func planFrom(t testing.TB, out string) int64 {
	t.Helper()
	m := fromOffsetRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no `from: offset N` line in:\n%s", out)
	}
	var n int64
	fmt.Sscan(m[1], &n)
	return n
}

// TestReplay replays ranges of a replica selected by time, GTID set and
// offset, twice over the same range: the replica equals the master after
// each. --from-time and --from-gtid pick the first message of the
// transaction committed after a quiet second. Ranges older than the
// topic's retention, and a replica older than it, are refused.
func TestReplay(t *testing.T) {
	r := startReplication(t, "pipeline")
	cfg, database := r.cfg, r.database
	writeAroundMarker(t, database)

	sinkProc := startRowcast(t, "sink", "--config", cfg, "--replica", "db2")
	waitEqual(t, testenv.Master, testenv.Replica1, database, 2*time.Minute)
	// Not beside the replica's own worker (its checkpoint moves with every
	// heartbeat).
	if out, err := rowcastOut(t, "replay", "--config", cfg, "--replica", "db2", "--from-offset", "0"); err == nil || !strings.Contains(out, "sink worker is running") {
		t.Fatalf("replay beside a running sink worker: %v\n%s", err, out)
	}
	sinkProc.stop(t)
	want := checksumOf(t, testenv.Master, database)

	m := findMarker(t, r.topic)
	checkReplayStarts(t, cfg, database, m)

	// Replay from the marker, then the same range again, then everything:
	// the replica equals the master each time.
	for _, args := range [][]string{
		{"--from-time", m.time},
		{"--from-offset", fmt.Sprint(m.offset)},
		{"--from-offset", "0"},
	} {
		out := mustRowcast(t, append([]string{"replay", "--config", cfg, "--replica", "db2"}, args...)...)
		if !strings.Contains(out, "replayed db2") {
			t.Fatalf("replay %v:\n%s", args, out)
		}
		if diff := workload.Diff(want, checksumOf(t, testenv.Replica1, database)); diff != "" {
			t.Fatalf("after replay %v db2 differs from the master: %s\n%s", args, diff, out)
		}
	}

	// --to-offset stops at a boundary: the checkpoint says where.
	out := mustRowcast(t, "replay", "--config", cfg, "--replica", "db2", "--from-offset", "0", "--to-offset", fmt.Sprint(m.offset+1))
	if !strings.Contains(out, fmt.Sprintf("checkpoint now offset %d ", m.offset+1)) {
		t.Fatalf("replay --to-offset %d:\n%s", m.offset+1, out)
	}
	checkRetentionRefusals(t, cfg, r.topic, m.offset)
	r.proc.stop(t)
}

// writeAroundMarker writes transfers and items, then a marker row alone in
// its commit second, then more transfers and items of every kind of change.
func writeAroundMarker(t *testing.T, database string) {
	t.Helper()
	master := testenv.DB(t, testenv.Master)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bank := newBank(ctx, t, database, 40, 100)
	testenv.Exec(t, master, "CREATE TABLE `"+database+"`.items (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)")
	items := func(lo, hi int, stmt string) {
		for i := lo; i < hi; i++ {
			testenv.Exec(t, master, fmt.Sprintf(stmt, database, i))
		}
	}
	if err := bank.Run(ctx, 2, 150); err != nil {
		t.Fatal(err)
	}
	items(1, 40, "INSERT INTO `%s`.items VALUES (%d, 'a')")
	items(1, 20, "DELETE FROM `%s`.items WHERE id = %d")
	// A quiet second on each side of the marker, so that its commit second
	// holds no other transaction.
	time.Sleep(1200 * time.Millisecond)
	testenv.Exec(t, master, "INSERT INTO `"+database+"`.items VALUES (1000, 'marker')")
	time.Sleep(1200 * time.Millisecond)
	bank.Transfers.Store(0)
	if err := bank.Run(ctx, 2, 150); err != nil {
		t.Fatal(err)
	}
	items(40, 60, "INSERT INTO `%s`.items VALUES (%d, 'b')")
	items(20, 30, "DELETE FROM `%s`.items WHERE id = %d")
	items(30, 40, "UPDATE `%s`.items SET v = 'c' WHERE id = %d")
}

// marker is where the marker's transaction starts in the topic.
type marker struct {
	offset     int64
	time       string // its commit time, RFC 3339
	gtidBefore string // the GTID set before it
}

func findMarker(t *testing.T, topic string) marker {
	t.Helper()
	evs := readTopic(t, topic)
	idx, gtidBefore := -1, ""
	for i, ev := range evs {
		if ev.Kind == pipeline.KindRow && ev.Table.Name == "items" && ev.After != nil && fmt.Sprint(ev.After[0]) == "1000" {
			idx = i
			break
		}
		if ev.InTxn() && ev.Pos.Last {
			gtidBefore = ev.GTIDSet
		}
	}
	if idx < 0 || evs[idx].Pos.Row != 0 {
		t.Fatalf("marker not found as a transaction's first message (index %d)", idx)
	}
	return marker{offset: int64(idx), time: evs[idx].CommitTime.UTC().Format(time.RFC3339), gtidBefore: gtidBefore}
}

// checkReplayStarts checks that --from-time and --from-gtid of the marker
// plan a replay from the marker's transaction.
func checkReplayStarts(t *testing.T, cfg, database string, m marker) {
	t.Helper()
	out := mustRowcast(t, "replay", "--config", cfg, "--replica", "db2", "--from-time", m.time, "--dry-run")
	if got := planFrom(t, out); got != m.offset {
		t.Fatalf("--from-time %s starts at offset %d, want %d (the marker's transaction):\n%s", m.time, got, m.offset, out)
	}
	for _, want := range []string{"dry run: nothing changed", database + ".items", database + ".accounts"} {
		if !strings.Contains(out, want) {
			t.Fatalf("dry run output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("dry run:\n%s", out)
	out = mustRowcast(t, "replay", "--config", cfg, "--replica", "db2", "--from-gtid", m.gtidBefore, "--dry-run")
	if got := planFrom(t, out); got != m.offset {
		t.Fatalf("--from-gtid %s starts at offset %d, want %d:\n%s", m.gtidBefore, got, m.offset, out)
	}
}

// checkRetentionRefusals deletes the records before the marker, as
// retention would: a range before it, and a replica older than it, are
// refused.
func checkRetentionRefusals(t *testing.T, cfg, topic string, markerOffset int64) {
	t.Helper()
	deleteRecords(t, topic, markerOffset)
	out, err := rowcastOut(t, "replay", "--config", cfg, "--replica", "db2", "--from-offset", "3", "--dry-run")
	if err == nil || !strings.Contains(out, "older than the earliest offset") {
		t.Fatalf("a range before retention: %v\n%s", err, out)
	}
	testenv.Exec(t, testenv.DB(t, testenv.Replica1), fmt.Sprintf("UPDATE rowcast.checkpoint SET next_offset = 1 WHERE topic = '%s'", topic))
	out, err = rowcastOut(t, "replay", "--config", cfg, "--replica", "db2", "--from-offset", fmt.Sprint(markerOffset), "--dry-run")
	if err == nil || !strings.Contains(out, "db2 is at offset 1, older than the earliest offset") || !strings.Contains(out, "re-seed") {
		t.Fatalf("a replica older than retention: %v\n%s", err, out)
	}
}

// deleteRecords moves the topic's log start offset to before (DeleteRecords
// v0; kafka-go has no client for it), as retention would.
func deleteRecords(t testing.TB, topic string, before int64) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", testenv.Addr("kafka"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var b bytes.Buffer
	put := func(v any) { binary.Write(&b, binary.BigEndian, v) }
	str := func(s string) { put(int16(len(s))); b.WriteString(s) }
	put(int16(21)) // DeleteRecords
	put(int16(0))
	put(int32(1))
	str("rowcast-test")
	put(int32(1))
	str(topic)
	put(int32(1))
	put(int32(0))
	put(before)
	put(int32(10000))
	req := make([]byte, 4+b.Len())
	binary.BigEndian.PutUint32(req, uint32(b.Len()))
	copy(req[4:], b.Bytes())
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	var size int32
	if err := binary.Read(conn, binary.BigEndian, &size); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, size)
	if _, err := io.ReadFull(conn, resp); err != nil {
		t.Fatal(err)
	}
	// correlation id, throttle, topics[1]{name, partitions[1]{index, low watermark, error}}
	r := bytes.NewReader(resp)
	var corr, throttle, ntopics int32
	binary.Read(r, binary.BigEndian, &corr)
	binary.Read(r, binary.BigEndian, &throttle)
	binary.Read(r, binary.BigEndian, &ntopics)
	var nlen int16
	binary.Read(r, binary.BigEndian, &nlen)
	r.Seek(int64(nlen), io.SeekCurrent)
	var nparts, part int32
	var low int64
	var code int16
	binary.Read(r, binary.BigEndian, &nparts)
	binary.Read(r, binary.BigEndian, &part)
	binary.Read(r, binary.BigEndian, &low)
	binary.Read(r, binary.BigEndian, &code)
	if code != 0 || low != before {
		t.Fatalf("DeleteRecords %s before %d: error code %d, low watermark %d", topic, before, code, low)
	}
}
