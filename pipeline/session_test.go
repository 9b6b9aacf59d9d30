package pipeline

import (
	"strings"
	"testing"
	"time"
)

func ddlWithSession(s *Session) *Event {
	return &Event{Kind: KindDDL, Pos: Position{Epoch: 1, TxnSeq: 514, Last: true}, GTID: "0-1-1044", GTIDSet: "0-1-1044",
		Flavor: "mariadb", ServerID: 1, CommitTime: time.Unix(1714979289, 0).UTC(), File: "mysql-bin.000003", Offset: 2100,
		Database: "shop", Statement: "ALTER TABLE `orders` ADD COLUMN `ts` timestamp DEFAULT '2024-01-01 00:00:00'", Session: s}
}

// TestCodecDDLSession: a DDL's session travels in rowcast.ddl.session, with
// the exact bytes docs/FORMAT.md shows, and reads back the same.
func TestCodecDDLSession(t *testing.T) {
	on := true
	full := &Session{SQLMode: 1411383296, TimeZone: "+05:00", CharsetClient: 45, CollationConnection: 45, CollationServer: 45,
		CollationDatabase: 8, LCTimeNames: 1, AutoIncrementIncrement: 2, AutoIncrementOffset: 3,
		ExplicitDefaultsForTimestamp: &on, DefaultCollationForUTF8MB4: 255, Timestamp: time.UnixMicro(1714979289123456).UTC()}
	plain := &Session{SQLMode: 0, CharsetClient: 45, CollationConnection: 45, CollationServer: 45,
		AutoIncrementIncrement: 1, AutoIncrementOffset: 1, Timestamp: time.Unix(1714979289, 0).UTC()}
	for _, c := range []struct {
		name string
		s    *Session
		want string
	}{
		{"full", full, `"session":{"sql_mode":1411383296,"time_zone":"+05:00","character_set_client":45,"collation_connection":45,"collation_server":45,"collation_database":8,"lc_time_names":1,"auto_increment_increment":2,"auto_increment_offset":3,"explicit_defaults_for_timestamp":true,"default_collation_for_utf8mb4":255,"timestamp_us":1714979289123456}`},
		{"plain", plain, `"session":{"sql_mode":0,"character_set_client":45,"collation_connection":45,"collation_server":45,"lc_time_names":0,"auto_increment_increment":1,"auto_increment_offset":1,"timestamp_us":1714979289000000}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := ddlWithSession(c.s)
			_, value, got := roundTrip(t, &Codec{Cluster: "shop-prod"}, e)
			if !strings.Contains(string(value), c.want) {
				t.Errorf("value\n%s\ndoes not hold\n%s", value, c.want)
			}
			assertEvent(t, got, e)
		})
	}
}

// TestCodecDDLWithoutSession: a DDL written before sessions were recorded
// decodes with a nil Session; an unknown member of a session is ignored.
func TestCodecDDLWithoutSession(t *testing.T) {
	c := &Codec{}
	key, value, got := roundTrip(t, c, ddlWithSession(nil))
	if got.Session != nil || strings.Contains(string(value), "session") {
		t.Errorf("session %+v in %s", got.Session, value)
	}
	newer := strings.Replace(string(value), `"statement":`, `"session":{"sql_mode":4,"later":[1,{"x":2}]},"statement":`, 1)
	ev, err := c.Decode(key, []byte(newer))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Session == nil || ev.Session.SQLMode != 4 || ev.Session.AutoIncrementIncrement != 1 {
		t.Errorf("session %+v", ev.Session)
	}
}
