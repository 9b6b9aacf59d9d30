package mysql

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/dbtls"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// tlsReplica is newReplica on the stack's TLS-only node (require_secure_transport).
func tlsReplica(t *testing.T) *replica {
	t.Helper()
	r := &replica{node: testenv.TLSNode, db: testenv.UniqueName(t, "rc"), schema: testenv.UniqueName(t, "rcbk")}
	root := testenv.TLSDB(t)
	testenv.Exec(t, root, "CREATE DATABASE "+quoteIdent(r.db))
	t.Cleanup(func() {
		root.Exec("DROP DATABASE IF EXISTS " + quoteIdent(r.db))
		root.Exec("DROP DATABASE IF EXISTS " + quoteIdent(r.schema))
	})
	var err error
	if r.root, err = sql.Open("mysql", testenv.TLSRootDSN(t, r.db)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.root.Close() })
	return r
}

// tlsTarget is a Target on the TLS node as rowcast, verifying the server
// with caFile ("" for plaintext).
func (r *replica) tlsTarget(t *testing.T, caFile string) *Target {
	t.Helper()
	c, err := mysql.ParseDSN(rowcastDSN(r.node))
	if err != nil {
		t.Fatal(err)
	}
	if caFile != "" {
		if c.TLSConfig, err = dbtls.Register(dbtls.Options{CAFile: caFile}); err != nil {
			t.Fatal(err)
		}
	}
	tgt, err := New(Config{DSN: c.FormatDSN(), Schema: r.schema, Topic: sinktest.Topic}, sinktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

// TestTLSOnlyReplica applies a workload to a replica that refuses
// plaintext, through a DSN whose tls= names a dbtls registration.
func TestTLSOnlyReplica(t *testing.T) {
	r := tlsReplica(t)
	r.Setup(t, sinktest.SetupSQL...)
	w := sinktest.NewWorkload(r.db, 1, 40, false)
	var c sinktest.Counters
	_, err := sinktest.RunWorker(context.Background(), t, r.tlsTarget(t, testenv.TLSCAFile(t)), sinktest.NewInput(w.Msgs), sink.WorkerConfig{}, &c)
	if err != nil {
		t.Fatalf("worker over TLS: %v", err)
	}
	sinktest.Compare(t, r, w.Script)
	if got := c.Get(sink.TxnsApplied); got != int(w.Seq()) {
		t.Fatalf("txns applied %d, want %d", got, w.Seq())
	}
}

// TestTLSOnlyReplicaRefusals: in plaintext the replica refuses the sink, and
// with a CA that did not sign its certificate the handshake fails, saying so.
func TestTLSOnlyReplicaRefusals(t *testing.T) {
	r := tlsReplica(t)
	ctx := context.Background()
	plain := r.tlsTarget(t, "")
	_, _, err := plain.Open(ctx)
	plain.Close()
	if err == nil {
		t.Fatal("a plaintext sink opened a TLS-only replica")
	}
	wrong := r.tlsTarget(t, testenv.WriteTLSFiles(t).CA)
	_, _, err = wrong.Open(ctx)
	wrong.Close()
	if want := "certificate signed by unknown authority"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open with a wrong CA: %v, want %q", err, want)
	}
}
