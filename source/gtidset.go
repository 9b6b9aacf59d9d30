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
		// Per replication domain, which is what a MariaDB GTID position is:
		// with gtid_strict_mode, sequence numbers grow within a domain, so a
		// domain's GTIDs up to the oldest binlog's GTID_LIST entry are gone,
		// and the next one needed is want's sequence number plus one.
		return checkSets(f, want, parseMariaDBPosition, [3]string{"resume", "oldest binlog GTID_LIST", "gtid_binlog_pos"},
			purgedDomains, unexecutedDomains)
	}
	return checkSets(f, want, parseMySQLSet, [3]string{"resume", "gtid_purged", "gtid_executed"}, subtractMySQL, subtractMySQL)
}

// checkSets parses want, f.Purged and f.Executed with parse, in that order,
// naming each as names says in its error, and checks that nothing want
// needs was purged (purged(p, want)) and that want holds nothing that was
// not executed (unexecuted(want, e)); each lists the GTIDs, "" for none.
func checkSets[T any](f resumeFacts, want string, parse func(what, s string) (T, error), names [3]string,
	purged func(p, want T) string, unexecuted func(want, e T) string) error {
	var sets [3]T
	for i, s := range []string{want, f.Purged, f.Executed} {
		var err error
		if sets[i], err = parse(names[i], s); err != nil {
			return err
		}
	}
	w, p, e := sets[0], sets[1], sets[2]
	if missing := purged(p, w); missing != "" {
		return purgedError(f, want, missing)
	}
	if extra := unexecuted(w, e); extra != "" {
		return divergedError(f, want, extra)
	}
	return nil
}

func parseMySQLSet(what, s string) (*mysql.MysqlGTIDSet, error) {
	g, err := mysql.ParseMysqlGTIDSet(s)
	if err != nil {
		return nil, fmt.Errorf("%w: parse %s GTID set %q: %v", ErrConfig, what, s, err)
	}
	return g.(*mysql.MysqlGTIDSet), nil
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

func parseMariaDBPosition(what, s string) (map[uint32]*mysql.MariadbGTID, error) {
	g, err := mysql.ParseMariadbGTIDSet(s)
	if err != nil {
		return nil, fmt.Errorf("%w: parse %s GTID position %q: %v", ErrConfig, what, s, err)
	}
	return g.(*mysql.MariadbGTIDSet).Sets, nil
}

// purgedDomains lists, sorted, the sequence numbers of each domain that
// position want needs and the purged position p no longer has.
func purgedDomains(p, want map[uint32]*mysql.MariadbGTID) string {
	var missing []string
	for d, pg := range p {
		from := uint64(1)
		if wg, ok := want[d]; ok {
			from = wg.SequenceNumber + 1
		}
		if pg.SequenceNumber >= from {
			missing = append(missing, fmt.Sprintf("domain %d sequence %d-%d", d, from, pg.SequenceNumber))
		}
	}
	sort.Strings(missing)
	return strings.Join(missing, ", ")
}

// unexecutedDomains lists, sorted, the GTIDs of want beyond the executed
// position e.
func unexecutedDomains(want, e map[uint32]*mysql.MariadbGTID) string {
	var extra []string
	for d, wg := range want {
		eg, ok := e[d]
		if !ok || wg.SequenceNumber > eg.SequenceNumber {
			extra = append(extra, wg.String())
		}
	}
	sort.Strings(extra)
	return strings.Join(extra, ",")
}
