package mysql

import (
	"context"
	"fmt"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// Origin GTIDs, for a master of a master-master topology: the worker that
// applies another master's topic here applies each of that master's own
// transactions under the GTID it had there (domain, server_id, seq_no), so
// that this master's binlog tells them from its own writes and no sink of
// this master's topic sends them back. Only that worker writes the origin's
// domain here, so the highest seq_no of the domain in this binlog is the
// last transaction applied from it: anything at or below it is a duplicate.

// gtid is a MariaDB GTID, domain-server_id-seq_no.
type gtid = gomysql.MariadbGTID

// parseGTID parses a MariaDB GTID.
func parseGTID(s string) (*gtid, error) {
	g, err := gomysql.ParseMariadbGTID(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a MariaDB GTID (domain-server_id-seq_no): %w", s, err)
	}
	return g, nil
}

// DomainSeq is the seq_no of domain in a GTID position ("0-1-5,7-3-9"), 0
// when the position has none.
func DomainSeq(pos string, domain uint32) (uint64, error) {
	set, err := gomysql.ParseMariadbGTIDSet(strings.ReplaceAll(pos, "\n", ""))
	if err != nil {
		return 0, fmt.Errorf("%q is not a MariaDB GTID position: %w", pos, err)
	}
	if g := set.(*gomysql.MariadbGTIDSet).Sets[domain]; g != nil {
		return g.SequenceNumber, nil
	}
	return 0, nil
}

// originState is what the Target knows of the origin's transactions.
type originState struct {
	own     uint32 // this master's own GTID domain
	applied uint64 // highest seq_no of the origin's domain in the binlog
	// adopted is, for the domains an operator adopted (the origin's
	// transactions written under a wrong domain), the highest seq_no per
	// domain and server_id in the binlog, read at their first transaction:
	// other servers may have written those domains too.
	adopted  map[[2]uint32]uint64
	next     *gtid // the GTID the next transaction is applied under
	session  bool  // the session carries an origin's domain and server_id
	unlogged bool  // the session's sql_log_bin is 0
}

// loadOrigin reads how far the replica's binlog holds the origin's domain,
// at Open. The replica must be MariaDB with a domain of its own.
func (t *Target) loadOrigin(ctx context.Context) error {
	if t.cfg.OriginDomain == nil {
		return nil
	}
	domain := *t.cfg.OriginDomain
	if !t.mariadb {
		return fmt.Errorf("master-master topology: %s is not MariaDB; applying under origin GTIDs needs MariaDB's gtid_domain_id (MySQL masters are not supported yet)", t.cfg.Node)
	}
	var own uint32
	var pos string
	if err := t.ex.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_domain_id, @@GLOBAL.gtid_binlog_pos").Scan(&own, &pos); err != nil {
		return fmt.Errorf("read the GTID domain and position of %s: %w", t.cfg.Node, err)
	}
	if own == domain {
		return fmt.Errorf("master-master topology: %s has gtid_domain_id %d, the domain of the master whose topic it applies: give each master its own (SET GLOBAL gtid_domain_id=N and gtid_domain_id=N in its my.cnf, as nodes[].gtid_domain_id says)", t.cfg.Node, own)
	}
	seq, err := DomainSeq(pos, domain)
	if err != nil {
		return fmt.Errorf("gtid_binlog_pos of %s: %w", t.cfg.Node, err)
	}
	t.origin = originState{own: own, applied: seq}
	return t.versionsSession(ctx)
}

// versionsSession keeps this session's writes out of the version triggers
// (it saves the origin's versions itself) and makes sure the versions
// table exists, before this master's own unit has created it.
func (t *Target) versionsSession(ctx context.Context) error {
	if t.cfg.Resolve == nil {
		return nil
	}
	if _, err := t.ex.ExecContext(ctx, "SET @rowcast_applying = 1"); err != nil {
		return err
	}
	if err := t.binlogged(ctx, false); err != nil {
		return err
	}
	if _, err := t.ex.ExecContext(ctx, VersionsTableDDL(t.cfg.Schema)); err != nil {
		return fmt.Errorf("create the row versions table on %s: %w", t.cfg.Node, err)
	}
	return t.binlogged(ctx, true)
}

// Executed reports whether the replica's binlog holds the transaction with
// this GTID already (a duplicate after a crash or a replay).
func (t *Target) Executed(ctx context.Context, s string) (bool, error) {
	g, err := parseGTID(s)
	if err != nil {
		return false, err
	}
	if t.cfg.OriginDomain != nil && g.DomainID != *t.cfg.OriginDomain {
		return t.executedAdopted(ctx, g)
	}
	return g.SequenceNumber <= t.origin.applied, nil
}

// executedAdopted is Executed for a transaction of an adopted domain: by
// the binlog state's seq_no of its domain and server_id.
func (t *Target) executedAdopted(ctx context.Context, g *gtid) (bool, error) {
	if t.origin.adopted == nil {
		var state string
		if err := t.ex.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_state").Scan(&state); err != nil {
			return false, fmt.Errorf("read the GTID binlog state of %s: %w", t.cfg.Node, err)
		}
		t.origin.adopted = map[[2]uint32]uint64{}
		for _, part := range strings.Split(strings.ReplaceAll(state, "\n", ""), ",") {
			if part == "" {
				continue
			}
			h, err := parseGTID(part)
			if err != nil {
				return false, fmt.Errorf("gtid_binlog_state of %s: %w", t.cfg.Node, err)
			}
			t.origin.adopted[[2]uint32{h.DomainID, h.ServerID}] = h.SequenceNumber
		}
	}
	return g.SequenceNumber <= t.origin.adopted[[2]uint32{g.DomainID, g.ServerID}], nil
}

// ApplyAs makes the next transaction the Target begins carry GTID s.
func (t *Target) ApplyAs(s string) error {
	g, err := parseGTID(s)
	if err != nil {
		return err
	}
	t.origin.next = g
	return nil
}

// takeOrigin hands out the pending origin GTID, if any.
func (t *Target) takeOrigin() *gtid {
	g := t.origin.next
	t.origin.next = nil
	return g
}

// sessionGTID sets the session so that the next transaction is binlogged
// under g, or, g nil, under the replica's own domain and server_id again.
func (t *Target) sessionGTID(ctx context.Context, g *gtid) error {
	var stmts []string
	switch {
	case g != nil:
		stmts = []string{fmt.Sprintf("SET SESSION gtid_domain_id=%d, SESSION server_id=%d", g.DomainID, g.ServerID),
			fmt.Sprintf("SET SESSION gtid_seq_no=%d", g.SequenceNumber)}
	case t.origin.session:
		stmts = []string{"SET SESSION gtid_domain_id=@@GLOBAL.gtid_domain_id, SESSION server_id=@@GLOBAL.server_id"}
	}
	for _, q := range stmts {
		if _, err := t.ex.ExecContext(ctx, q); err != nil {
			if mysqlerr.Is(err, erGTIDStrictOutOfOrder) {
				return fmt.Errorf("%s: the replica's binlog holds a later transaction of that domain (a transaction of the origin master written here directly?): %w", q, err)
			}
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	t.origin.session = g != nil
	return nil
}

// binlogged turns the session's binary logging on or off, when it changes.
func (t *Target) binlogged(ctx context.Context, on bool) error {
	if t.origin.unlogged == !on {
		return nil
	}
	q := "SET SESSION sql_log_bin=" + map[bool]string{true: "1", false: "0"}[on]
	if _, err := t.ex.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("%s on %s (a master of a master-master set keeps its checkpoint-only commits out of its binlog; the sink's user needs the privilege to): %w", q, t.cfg.Node, err)
	}
	t.origin.unlogged = !on
	return nil
}

// erGTIDStrictOutOfOrder is MariaDB's ER_GTID_STRICT_OUT_OF_ORDER.
const erGTIDStrictOutOfOrder = 1950

// appliedOrigin records that the transaction under g committed.
func (t *Target) appliedOrigin(g *gtid) {
	switch {
	case g == nil:
	case t.cfg.OriginDomain != nil && g.DomainID != *t.cfg.OriginDomain:
		if t.origin.adopted != nil {
			k := [2]uint32{g.DomainID, g.ServerID}
			t.origin.adopted[k] = max(t.origin.adopted[k], g.SequenceNumber)
		}
	default:
		t.origin.applied = max(t.origin.applied, g.SequenceNumber)
	}
}
