package source

import (
	"fmt"
	"sort"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// resumeFacts is what the master says about its binlog history, as CheckResume
// reads it. The decision is resumeCheck, a pure function.
type resumeFacts struct {
	Addr   string
	Flavor string
	// Purged holds the GTIDs no longer in any binlog: MySQL @@gtid_purged;
	// MariaDB the GTID_LIST at the start of the oldest binlog
	// (BINLOG_GTID_POS(oldest, 4)), the last GTID per domain before it.
	Purged string
	// Executed is MySQL @@gtid_executed or MariaDB @@gtid_binlog_pos.
	Executed string
	// Oldest is the oldest binlog file, for the message.
	Oldest string
}

// resumeCheck says whether the master can stream from want: nothing want lacks
// was purged (else ErrPurged) and want holds nothing the master never executed
// (else ErrDiverged).
func resumeCheck(f resumeFacts, want string) error {
	if f.Flavor == FlavorMariaDB {
		return resumeCheckMariaDB(f, want)
	}
	return resumeCheckMySQL(f, want)
}

func resumeCheckMySQL(f resumeFacts, want string) error {
	parse := func(what, s string) (*mysql.MysqlGTIDSet, error) {
		g, err := mysql.ParseMysqlGTIDSet(s)
		if err != nil {
			return nil, fmt.Errorf("%w: parse %s GTID set %q: %v", ErrConfig, what, s, err)
		}
		return g.(*mysql.MysqlGTIDSet), nil
	}
	w, err := parse("resume", want)
	if err != nil {
		return err
	}
	p, err := parse("gtid_purged", f.Purged)
	if err != nil {
		return err
	}
	e, err := parse("gtid_executed", f.Executed)
	if err != nil {
		return err
	}
	if missing := subtractMySQL(p, w); missing != "" {
		return purgedError(f, want, missing)
	}
	if extra := subtractMySQL(w, e); extra != "" {
		return divergedError(f, want, extra)
	}
	return nil
}

func purgedError(f resumeFacts, want, missing string) error {
	return fmt.Errorf("%w: master %s no longer has the binlog needed to resume from %q: GTIDs %s were purged (oldest binlog %s). Re-seed the replicas from a snapshot, or move the start position past the gap on purpose; rowcast never continues over a gap",
		ErrPurged, f.Addr, want, missing, f.Oldest)
}

func divergedError(f resumeFacts, want, extra string) error {
	return fmt.Errorf("%w: resume position %q holds GTIDs %s that master %s (executed %q) never executed: is this the right master, and did it lose transactions in a failover? Compare the replicas with the master before continuing",
		ErrDiverged, want, extra, f.Addr, f.Executed)
}

// subtractMySQL returns a - b as a GTID set string, "" when a is within b.
func subtractMySQL(a, b *mysql.MysqlGTIDSet) string {
	var parts []string
	for u, tags := range *a {
		for tag, ivs := range tags {
			var other mysql.IntervalSlice
			if bt, ok := (*b)[u]; ok {
				other = bt[tag]
			}
			for _, iv := range subtractIntervals(ivs, other) {
				name := u.String()
				if tag.String() != "" {
					name += ":" + tag.String()
				}
				parts = append(parts, name+":"+iv.String())
			}
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// subtractIntervals returns a - b; both are normalized (sorted, disjoint,
// Stop exclusive).
func subtractIntervals(a, b mysql.IntervalSlice) mysql.IntervalSlice {
	var out mysql.IntervalSlice
	for _, iv := range a {
		start := iv.Start
		for _, o := range b {
			if o.Stop <= start || o.Start >= iv.Stop {
				continue
			}
			if o.Start > start {
				out = append(out, mysql.Interval{Start: start, Stop: o.Start})
			}
			start = max(start, o.Stop)
		}
		if start < iv.Stop {
			out = append(out, mysql.Interval{Start: start, Stop: iv.Stop})
		}
	}
	return out
}

// resumeCheckMariaDB compares per replication domain, which is what a MariaDB
// GTID position is: with gtid_strict_mode, sequence numbers grow within a
// domain, so a domain's GTIDs up to the oldest binlog's GTID_LIST entry are
// gone, and the next one needed is want's sequence number plus one.
func resumeCheckMariaDB(f resumeFacts, want string) error {
	parse := func(what, s string) (map[uint32]*mysql.MariadbGTID, error) {
		g, err := mysql.ParseMariadbGTIDSet(s)
		if err != nil {
			return nil, fmt.Errorf("%w: parse %s GTID position %q: %v", ErrConfig, what, s, err)
		}
		return g.(*mysql.MariadbGTIDSet).Sets, nil
	}
	w, err := parse("resume", want)
	if err != nil {
		return err
	}
	p, err := parse("oldest binlog GTID_LIST", f.Purged)
	if err != nil {
		return err
	}
	e, err := parse("gtid_binlog_pos", f.Executed)
	if err != nil {
		return err
	}
	var missing, extra []string
	for d, pg := range p {
		from := uint64(1)
		if wg, ok := w[d]; ok {
			from = wg.SequenceNumber + 1
		}
		if pg.SequenceNumber >= from {
			missing = append(missing, fmt.Sprintf("domain %d sequence %d-%d", d, from, pg.SequenceNumber))
		}
	}
	for d, wg := range w {
		eg, ok := e[d]
		if !ok || wg.SequenceNumber > eg.SequenceNumber {
			extra = append(extra, wg.String())
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		return purgedError(f, want, strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		return divergedError(f, want, strings.Join(extra, ","))
	}
	return nil
}
