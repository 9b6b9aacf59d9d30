package clonetest

import "testing"

func TestStartEmpty(t *testing.T) {
	s := Start(t)
	var n int
	if err := s.DB(t).QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ('mysql','information_schema','performance_schema','sys')").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a new server holds %d databases of users (%v)", n, err)
	}
	var binlog, id int
	if err := s.DB(t).QueryRow("SELECT @@log_bin, @@server_id").Scan(&binlog, &id); err != nil || binlog != 1 || id != s.Port {
		t.Fatalf("log_bin %d server_id %d (%v): want the stack's settings, server_id = port %d", binlog, id, err, s.Port)
	}
}
