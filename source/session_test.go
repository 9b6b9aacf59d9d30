package source

import (
	"database/sql"
	"reflect"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

// TestDDLSession: a DDL message carries the session its statement ran
// under on the master: sql_mode, time zone, character sets, lc_time_names,
// auto_increment settings and the statement's time with microseconds.
func TestDDLSession(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)")
	c := startReader(t, testConfig(t, dbName), Start{GTIDSet: binlogPos(t, db)})
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	execConnAll(t, conn, "SET SESSION sql_mode='ANSI_QUOTES,NO_ZERO_DATE', time_zone='+05:00', lc_time_names='de_DE'",
		"SET SESSION auto_increment_increment=3, auto_increment_offset=2, character_set_client=latin1",
		"SET SESSION timestamp=1714979289.123456",
		`ALTER TABLE "t" ADD COLUMN ts TIMESTAMP(6) DEFAULT '2024-01-01 00:00:00', ADD COLUMN c TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6)`)
	ev := c.txn(t)[0]
	if !isDDL(ev, "ALTER TABLE") || ev.Session == nil {
		t.Fatalf("got %s %q session %+v", ev.Kind, ev.Statement, ev.Session)
	}
	got := *ev.Session
	want := expectedSession(t, conn)
	got.LCTimeNames, want.LCTimeNames = min(got.LCTimeNames, 1), 1 // de_DE: any locale but en_US (0)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("session\n%+v\nwant\n%+v", got, want)
	}
}

// expectedSession is the session TestDDLSession sets, with the collation
// ids the master gives its settings.
func expectedSession(t *testing.T, conn *sql.Conn) pipeline.Session {
	t.Helper()
	s := pipeline.Session{SQLMode: 4 | 1<<24, // MODE_ANSI_QUOTES | MODE_NO_ZERO_DATE
		TimeZone: "+05:00", AutoIncrementIncrement: 3, AutoIncrementOffset: 2, Timestamp: time.UnixMicro(1714979289123456).UTC()}
	err := conn.QueryRowContext(t.Context(), `SELECT (SELECT ID FROM information_schema.COLLATIONS WHERE COLLATION_NAME=@@collation_connection),
		(SELECT ID FROM information_schema.COLLATIONS WHERE COLLATION_NAME=@@collation_server),
		(SELECT ID FROM information_schema.COLLATIONS WHERE IS_DEFAULT='Yes' AND CHARACTER_SET_NAME=@@character_set_client)`).
		Scan(&s.CollationConnection, &s.CollationServer, &s.CharsetClient)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSessionOfStatusVars: the status variables of a QUERY event, as MySQL
// and MariaDB write them; an unknown code stops the parse, keeping what
// came before it.
func TestSessionOfStatusVars(t *testing.T) {
	vars := []byte{
		qFlags2, 0, 0, 0, 0,
		qSQLMode, 4, 0, 0, 0, 0, 0, 0, 0,
		qCatalogNZ, 3, 's', 't', 'd',
		qAutoIncrement, 2, 0, 5, 0,
		qCharset, 8, 0, 33, 0, 45, 0,
		qTimeZone, 6, '+', '0', '5', ':', '0', '0',
		qLCTimeNames, 4, 0,
		qCharsetDatabase, 9, 0,
		qInvoker, 4, 'r', 'o', 'o', 't', 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't',
		qUpdatedDBNames, 2, 'a', 0, 'b', 'c', 0,
		qMicroseconds, 0x40, 0xE2, 0x01, // 123456
		qExplicitDefaultsForTimestamp, 1,
		qDDLLoggedWithXID, 1, 2, 3, 4, 5, 6, 7, 8,
		qDefaultCollationForUTF8MB4, 255, 0,
		qXID, 1, 2, 3, 4, 5, 6, 7, 8,
		131, 1, 2, 3, // unknown
		qGTIDFlags3, 1,
	}
	s, unknown := sessionOf(vars, 1714979289)
	if unknown != 131 {
		t.Errorf("stopped at %d, want 131", unknown)
	}
	on := true
	want := pipeline.Session{SQLMode: 4, AutoIncrementIncrement: 2, AutoIncrementOffset: 5, CharsetClient: 8,
		CollationConnection: 33, CollationServer: 45, TimeZone: "+05:00", LCTimeNames: 4, CollationDatabase: 9,
		ExplicitDefaultsForTimestamp: &on, DefaultCollationForUTF8MB4: 255, Timestamp: time.UnixMicro(1714979289123456).UTC()}
	if !reflect.DeepEqual(*s, want) {
		t.Errorf("session\n%+v\nwant\n%+v", *s, want)
	}
	for _, cut := range []int{1, 3, 10, 17} { // inside a value: stops, keeps what is whole
		if _, unknown := sessionOf(vars[:cut], 0); unknown < 0 {
			t.Errorf("vars cut at %d: read as complete", cut)
		}
	}
	if s, unknown := sessionOf(nil, 7); unknown != -1 || s.AutoIncrementIncrement != 1 || s.Timestamp.Unix() != 7 {
		t.Errorf("no vars: %+v, %d", *s, unknown)
	}
}
