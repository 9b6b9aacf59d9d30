package sink

import (
	"context"
	"fmt"

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
	if domain != *w.cfg.OriginDomain {
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

// gtidDomain is the domain of a MariaDB GTID (domain-server_id-seq_no).
func gtidDomain(gtid string) (uint32, error) {
	g, err := gomysql.ParseMariadbGTID(gtid)
	if err != nil {
		return 0, fmt.Errorf("master-master topology: GTID %q is not a MariaDB GTID (domain-server_id-seq_no); only MariaDB masters are supported: %w", gtid, err)
	}
	return g.DomainID, nil
}
