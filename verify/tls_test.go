package verify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/dbtls"
	"github.com/rowcast/rowcast/internal/testenv"
)

// TestTLSOnlyReplica compares db1 with the stack's TLS-only node, which
// refuses plaintext: the replica's DSN carries its TLS to every connection
// verify opens there.
func TestTLSOnlyReplica(t *testing.T) {
	database := testenv.CreateDatabase(t, testenv.Master)
	replica := testenv.TLSDB(t)
	testenv.Exec(t, replica, "CREATE DATABASE `"+database+"`")
	t.Cleanup(func() { _, _ = replica.Exec("DROP DATABASE IF EXISTS `" + database + "`") })
	fill(t, testenv.DB(t, testenv.Master), database, 30)
	fill(t, replica, database, 30)
	cfg := baseConfig(database)
	cfg.ReplicaName, cfg.ReplicaDSN = testenv.TLSNode, testenv.TLSRootDSN(t, "")
	if rep := run(t, cfg); !rep.Equal() || rep.Errors() != 0 {
		t.Fatalf("identical tables reported different:\n%s", report(rep))
	}
	testenv.Exec(t, replica, "UPDATE `"+database+"`.single SET name = 'tampered' WHERE id = 17")
	rep := run(t, cfg)
	if tr := table(t, rep, "single"); rep.Equal() || tr.Differences != 1 {
		t.Fatalf("one changed row on the TLS replica:\n%s", report(rep))
	}
}

// TestTLSWrongCA: a CA that did not sign the replica's certificate stops
// verify before anything is compared, saying why.
func TestTLSWrongCA(t *testing.T) {
	testenv.Need(t, testenv.TLSNode)
	name, err := dbtls.Register(dbtls.Options{CAFile: testenv.WriteTLSFiles(t).CA})
	if err != nil {
		t.Fatal(err)
	}
	c, err := mysql.ParseDSN(testenv.RootDSN(testenv.TLSNode, ""))
	if err != nil {
		t.Fatal(err)
	}
	c.TLSConfig = name
	cfg := baseConfig("none")
	cfg.ReplicaName, cfg.ReplicaDSN = testenv.TLSNode, c.FormatDSN()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := New(ctx, cfg)
	if err == nil {
		v.Close()
	}
	if want := "certificate signed by unknown authority"; err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), testenv.TLSNode) {
		t.Fatalf("New with a wrong CA: %v, want %q naming %s", err, want, testenv.TLSNode)
	}
}
