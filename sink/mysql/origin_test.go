package mysql

import "testing"

// TestDomainSeq: the seq_no of one domain in a MariaDB GTID position, 0
// when the position has none; a malformed position is an error.
func TestDomainSeq(t *testing.T) {
	for _, c := range []struct {
		pos    string
		domain uint32
		want   uint64
		bad    bool
	}{
		{"0-1-5,7-3-9", 7, 9, false},
		{"0-1-5,\n7-3-9", 0, 5, false},
		{"0-1-5", 2, 0, false},
		{"", 1, 0, false},
		{"0-1", 0, 0, true},
		{"a-1-2", 0, 0, true},
	} {
		got, err := DomainSeq(c.pos, c.domain)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("DomainSeq(%q, %d) = %d, %v; want %d (error %v)", c.pos, c.domain, got, err, c.want, c.bad)
		}
	}
	if g, err := parseGTID("2-20-300"); err != nil || *g != (gtid{DomainID: 2, ServerID: 20, SequenceNumber: 300}) || g.String() != "2-20-300" {
		t.Errorf("parseGTID: %+v, %v", g, err)
	}
}
