package source

import (
	"context"
	"crypto/tls"
	"database/sql"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/rowcast/rowcast/internal/dbtls"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

// tlsTestConfig reads the stack's TLS-only node (require_secure_transport)
// as testConfig reads db1, over TLS verified with caFile ("" for none).
func tlsTestConfig(t *testing.T, dbName, caFile string) Config {
	t.Helper()
	testenv.Need(t, testenv.TLSNode)
	cfg := Config{
		Addr:            testenv.Addr(testenv.TLSNode),
		User:            envOr("ROWCAST_TEST_DB_USER", "root"),
		Password:        os.Getenv("ROWCAST_TEST_DB_PASSWORD"),
		ServerID:        uniqueServerID(),
		Include:         []string{"^" + regexp.QuoteMeta(dbName) + `\.`},
		HeartbeatPeriod: 200 * time.Millisecond,
		ReadTimeout:     20 * time.Second,
	}
	if caFile != "" {
		c, err := dbtls.Options{CAFile: caFile}.Build()
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLS = c
	}
	return cfg
}

// tlsDatabase creates a database on the TLS node, dropped when the test ends.
func tlsDatabase(t *testing.T) (string, *sql.DB) {
	t.Helper()
	root := testenv.TLSDB(t)
	name := testenv.UniqueName(t, "rc")
	testenv.Exec(t, root, "CREATE DATABASE `"+name+"`", "USE `"+name+"`")
	t.Cleanup(func() { _, _ = root.Exec("DROP DATABASE IF EXISTS `" + name + "`") })
	return name, root
}

// TestTLSOnlyMaster reads a master that refuses plaintext: the checks, a
// snapshot and the binlog stream all go over TLS.
func TestTLSOnlyMaster(t *testing.T) {
	dbName, root := tlsDatabase(t)
	testenv.Exec(t, root, "CREATE TABLE `"+dbName+"`.t (id INT PRIMARY KEY, v VARCHAR(10))",
		"INSERT INTO `"+dbName+"`.t VALUES (1,'a'),(2,'b'),(3,'c')")
	cfg := tlsTestConfig(t, dbName, testenv.TLSCAFile(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := NewReader(cfg, testLogger(t)).Check(ctx); err != nil {
		t.Fatalf("Check over TLS: %v", err)
	}
	c := startReader(t, cfg, Start{GTIDSet: binlogPos(t, root), NextTxnSeq: 1, Epoch: 1})
	c.r.Snapshot(&SnapshotJob{ID: 1, Tables: []string{dbName + ".t"}})
	read := 0
	for _, txn := range snapshotEvents(t, c, dbName+".t") {
		for _, ev := range txn {
			if ev.Op == pipeline.OpRead {
				read++
			}
		}
	}
	testenv.Exec(t, root, "INSERT INTO `"+dbName+"`.t VALUES (4,'d')")
	ev := c.txn(t)[0]
	if read != 3 || ev.Op != pipeline.OpInsert || ev.After[0] != int64(4) {
		t.Fatalf("snapshot rows %d (want 3); then %s %v (want the insert of 4)", read, ev.Op, ev.After)
	}
}

// TestTLSOnlyMasterRefusals: without TLS the master refuses the reader, and
// a CA that did not sign the master's certificate fails the handshake, on
// the SQL connections and on the binlog stream alike, saying why.
func TestTLSOnlyMasterRefusals(t *testing.T) {
	dbName, _ := tlsDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	plain := tlsTestConfig(t, dbName, "")
	if _, err := NewReader(plain, testLogger(t)).Check(ctx); err == nil {
		t.Fatal("Check in plaintext passed against a TLS-only master")
	}
	wrong := tlsTestConfig(t, dbName, testenv.WriteTLSFiles(t).CA)
	const want = "certificate signed by unknown authority"
	if _, err := NewReader(wrong, testLogger(t)).Check(ctx); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Check with a wrong CA: %v, want %q", err, want)
	}
	r := NewReader(wrong, testLogger(t))
	r.cfg.setDefaults()
	err := streamOnce(r)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("binlog stream with a wrong CA: %v, want %q", err, want)
	}
}

// streamOnce starts go-mysql's binlog stream as Run configures it.
func streamOnce(r *Reader) error {
	syncer := replication.NewBinlogSyncer(r.SyncerConfig(FlavorMariaDB))
	defer syncer.Close()
	set, err := mysql.ParseGTIDSet(FlavorMariaDB, "")
	if err == nil {
		_, err = syncer.StartSyncGTID(set)
	}
	return err
}

func TestSyncerConfigTLS(t *testing.T) {
	r := NewReader(Config{Addr: "db.internal:3306", TLS: &tls.Config{}}, testLogger(t))
	if c := r.SyncerConfig(FlavorMariaDB).TLSConfig; c == nil || c.ServerName != "db.internal" {
		t.Fatalf("binlog stream TLS %+v: want the master's TLS with its host as ServerName", c)
	}
	if c := NewReader(Config{Addr: "h:1"}, testLogger(t)).SyncerConfig(FlavorMariaDB).TLSConfig; c != nil {
		t.Fatalf("TLS %+v without one configured", c)
	}
}
