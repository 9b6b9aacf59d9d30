package verify

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// positions tells where the master is and waits for the replica to get
// there.
//
// The replica's checkpoint (checkpoint.State.GTIDSet, written in the same
// transaction as the rows) is the master's GTID set after the last
// transaction the replica applied. When it contains the master's position of
// a first check, the replica holds everything the master held then: a
// difference still there is not replication lag.
type positions struct {
	flavor  string // go-mysql flavor of the master
	master  *sql.DB
	replica *sql.DB
	store   *checkpoint.MySQL
	topic   string
	timeout time.Duration
	poll    time.Duration
	// static: the replica is not fed by rowcast (no checkpoint for the
	// topic) or the operator chose not to wait; rows are compared as they
	// are.
	static bool
	// masterName and epoch name the master compared with and its master
	// generation: a checkpoint of a newer epoch means a promotion since.
	masterName string
	epoch      uint64
}

// sameMaster checks that the replica's checkpoint is not of a newer master
// generation than the master compared with: if it is, a promotion happened,
// and neither the master's positions nor its rows say anything about the
// replica any more.
func (p *positions) sameMaster(st checkpoint.State) error {
	if st.Epoch <= p.epoch {
		return nil
	}
	return fmt.Errorf("%w: the replica has applied master generation (epoch) %d, and %s is the master of epoch %d: "+
		"a promotion happened; verify compares with the current master, found from the topic's epoch records (run it again, or check rowcast status)",
		ErrMasterMoved, st.Epoch, p.masterName, p.epoch)
}

// masterPos reads the master's executed GTID set now. q may be a transaction
// holding locks: the position is global, not part of its snapshot.
func (p *positions) masterPos(ctx context.Context, q checkpoint.Querier) (string, error) {
	if p.static {
		return "", nil
	}
	query := "SELECT @@GLOBAL.gtid_executed"
	if p.flavor == gomysql.MariaDBFlavor {
		query = "SELECT @@GLOBAL.gtid_binlog_pos"
	}
	var pos string
	if err := q.QueryRowContext(ctx, query).Scan(&pos); err != nil {
		return "", fmt.Errorf("read the master's GTID position: %w", err)
	}
	return pos, nil
}

// applied loads the replica's checkpoint; found is false when it has none.
func (p *positions) applied(ctx context.Context) (checkpoint.State, bool, error) {
	st, found, err := p.store.Load(ctx, p.replica, p.topic, 0)
	if mysqlerr.Missing(err) { // no checkpoint table, or no bookkeeping schema
		return st, false, nil
	}
	return st, found, err
}

// wait returns once the replica's checkpoint contains pos, or fails with
// ErrBehind after the timeout.
func (p *positions) wait(ctx context.Context, pos string) error {
	return p.waitWithin(ctx, pos, p.timeout)
}

// waitWithin is wait with a limit of its own instead of the configured
// timeout.
func (p *positions) waitWithin(ctx context.Context, pos string, limit time.Duration) error {
	if p.static || pos == "" {
		return nil
	}
	want, err := gomysql.ParseGTIDSet(p.flavor, pos)
	if err != nil {
		return fmt.Errorf("parse the master's GTID position %q: %w", pos, err)
	}
	deadline := time.Now().Add(limit)
	for {
		st, ok, err := p.reached(ctx, want)
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: its checkpoint (offset %d, GTID set %q, saved %s) did not reach the master's position %q within %v: "+
				"check that its sink worker runs and keeps up (rowcast status), then run verify again or raise --wait-timeout; "+
				"--no-wait compares the rows as they are (differences may then be replication lag)",
				ErrBehind, st.Offset, st.GTIDSet, st.UpdatedAt.UTC().Format(time.RFC3339), pos, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(p.poll):
		}
	}
}

// reached reads the replica's checkpoint and reports whether it contains
// want.
func (p *positions) reached(ctx context.Context, want gomysql.GTIDSet) (checkpoint.State, bool, error) {
	st, found, err := p.applied(ctx)
	if err != nil || !found {
		return st, false, err
	}
	if err := p.sameMaster(st); err != nil {
		return st, false, err
	}
	if st.GTIDSet == "" {
		return st, false, nil
	}
	got, err := gomysql.ParseGTIDSet(p.flavor, st.GTIDSet)
	if err != nil {
		return st, false, fmt.Errorf("parse the replica's checkpoint GTID set %q: %w", st.GTIDSet, err)
	}
	return st, got.Contain(want), nil
}
