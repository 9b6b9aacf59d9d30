package mysql

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

// TestDDLUnderSession asserts the statements around a DDL that carries the
// master's session: read the sink's session, set the master's, the
// statement, set the sink's back. The statement sees the master's settings
// (a TIMESTAMP default in +05:00, ANSI_QUOTES, the statement's time), and
// the session is the sink's again afterwards.
func TestDDLUnderSession(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	tgt := r.open(t, sqlOnly)
	rec := record(tgt)
	if _, _, err := tgt.Open(context.Background()); err != nil { // again, recorded
		t.Fatal(err)
	}
	before := sessionState(t, tgt)
	ev := &pipeline.Event{Kind: pipeline.KindDDL, Pos: pipeline.Position{Epoch: 1, TxnSeq: 1, Last: true}, Database: r.db,
		Statement: `CREATE TABLE "q" ("id" INT PRIMARY KEY, "ts" TIMESTAMP(6) NULL DEFAULT '2024-01-01 05:00:00', "at" TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))`,
		Session: &pipeline.Session{SQLMode: 4 | 1<<22, TimeZone: "+05:00", CharsetClient: 45, CollationConnection: 45,
			CollationServer: 8, AutoIncrementIncrement: 1, AutoIncrementOffset: 1, Timestamp: time.UnixMicro(1714979289123456)}}
	rec.stmts = nil
	if err := tgt.ApplyDDL(context.Background(), ev, checkpoint.State{Topic: tgt.cfg.Topic, TxnSeq: 1, MaxTxnSeq: 1}); err != nil {
		t.Fatal(err)
	}
	got := rec.get()
	i := slices.Index(got, "USE `"+r.db+"`")
	want := []string{
		"USE `" + r.db + "`",
		"SELECT @@session.sql_mode, @@session.lc_time_names, @@session.auto_increment_increment, @@session.auto_increment_offset, " +
			"@@session.character_set_client, @@session.collation_connection, @@session.collation_server, @@session.time_zone",
		"SET SESSION sql_mode=?, lc_time_names=?, auto_increment_increment=?, auto_increment_offset=?, character_set_client=?, " +
			"collation_connection=?, collation_server=?, time_zone=?, timestamp=1714979289.123456",
		ev.Statement,
		"SET SESSION sql_mode=?, lc_time_names=?, auto_increment_increment=?, auto_increment_offset=?, character_set_client=?, " +
			"collation_connection=?, collation_server=?, time_zone=?, timestamp=DEFAULT",
	}
	if i < 0 || !slices.Equal(got[i:i+len(want)], want) {
		t.Fatalf("statements:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	r.Setup(t, "INSERT INTO q (id) VALUES (1)")
	// The default was read in +05:00 and the table made at the statement's time.
	if rows := r.Rows(t, "q"); len(rows) != 1 || !strings.HasPrefix(rows[0], "1|2024-01-01 00:00:00.000000|") {
		t.Errorf("rows %v", rows)
	}
	if after := sessionState(t, tgt); after != before {
		t.Errorf("session after the DDL %q, before %q", after, before)
	}
}

// sessionState is what the target's session holds of the settings a DDL
// changes.
func sessionState(t *testing.T, tgt *Target) string {
	t.Helper()
	var s string
	err := tgt.ex.QueryRowContext(context.Background(), "SELECT CONCAT_WS('|', @@session.sql_mode, @@session.time_zone, "+
		"@@session.character_set_client, @@session.collation_connection, @@session.collation_server, NOW(6) > '2024-05-07')").Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
