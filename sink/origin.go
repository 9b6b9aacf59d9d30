package sink

import (
	"context"
	"fmt"
	"slices"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// OriginApplier is a Target that applies each transaction of a master of
// a master-master topology under the GTID it had on that master, so that
// its binlog tells applied transactions from its own writes.
type OriginApplier interface {
	// Executed reports whether the target holds the transaction with this
	// GTID already.
	Executed(ctx context.Context, gtid string) (bool, error)
	// ApplyAs makes the next transaction the Target begins carry gtid.
	ApplyAs(gtid string) error
}

// ConflictCounter is a Target that resolves master-master conflicts by a
// policy and counts them.
type ConflictCounter interface {
	// TakeConflicts returns the conflicts resolved since the last call.
	TakeConflicts() int
}

// admit decides, at the first message of a transaction, whether the target
// applies it: only a transaction that the topic's master wrote itself (one
// it applied from another master reached the target from that master's
// topic), and only once.
func (w *Worker) admit(ctx context.Context, msg Message) error {
	ev := msg.Event
	if ev.GTID == "" {
		return nil // a snapshot's rows: written by no transaction
	}
	oa, ok := w.t.(OriginApplier)
	if !ok {
		return fmt.Errorf("master-master topology: this target cannot apply transactions under their origin GTID")
	}
	domain, err := gtidDomain(ev.GTID)
	if err != nil {
		p := ev.Pos
		return &ApplyError{Offset: msg.Offset, Pos: &p, Err: err}
	}
	if domain != *w.cfg.OriginDomain && !slices.Contains(w.cfg.AdoptDomains, domain) {
		if !slices.Contains(w.cfg.MasterDomains, domain) {
			return w.unknownDomain(msg, domain)
		}
		w.cur.leftOut = true
		w.m.Add(OtherOriginSkipped, 1)
		return nil
	}
	done, err := oa.Executed(ctx, ev.GTID)
	switch {
	case err != nil:
		return err
	case done:
		w.cur.leftOut = true
		w.m.Add(DuplicatesSkipped, 1)
		return nil
	}
	return oa.ApplyAs(ev.GTID)
}

// unknownDomain is the error of a transaction in the topic whose domain is
// no master's: the topic's master wrote it under a wrong @@gtid_domain_id.
func (w *Worker) unknownDomain(msg Message, domain uint32) error {
	ev, p, own := msg.Event, msg.Event.Pos, *w.cfg.OriginDomain
	err := fmt.Errorf("%w: transaction %s (server_id %d, committed %s) carries GTID domain %d, but the topic's master has domain %d (the masters' domains are %v): "+
		"the master wrote it while its @@gtid_domain_id was %d; skipped as another master's, it would be lost on every other master, so the worker stops",
		ErrUnknownDomain, ev.GTID, ev.ServerID, ev.CommitTime.UTC().Format(time.RFC3339), domain, own, w.cfg.MasterDomains, domain)
	fix := fmt.Sprintf("SET GLOBAL gtid_domain_id=%d on the topic's master, and gtid_domain_id=%d in its my.cnf so that a restart keeps it; "+
		"then restart this unit with --adopt-domain %d: its sinks apply what the master wrote under domain %d, under those GTIDs (docs/MASTER-MASTER.md)", own, own, domain, domain)
	return &ApplyError{Offset: msg.Offset, Pos: &p, Err: WithAdvice(err, fix)}
}

// gtidDomain is the domain of a MariaDB GTID (domain-server_id-seq_no).
func gtidDomain(gtid string) (uint32, error) {
	g, err := gomysql.ParseMariadbGTID(gtid)
	if err != nil {
		return 0, fmt.Errorf("master-master topology: GTID %q is not a MariaDB GTID (domain-server_id-seq_no); only MariaDB masters are supported: %w", gtid, err)
	}
	return g.DomainID, nil
}
