package mysql

import (
	"context"
	"fmt"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// Replica protection (sink.protect_replicas): read_only=ON, which the sink's
// user writes through. It is set on every connect, not once: a replica
// restarted without read_only in its my.cnf comes back writable, and the
// worker's reconnect must close that. Between connects, a commit checks it
// again every readOnlyRefresh, should someone have turned it off.
// docs/DESIGN.md, "Replica protection".

// Read-only states of ReadOnlyState.
const (
	roUnknown int32 = iota
	roOn
	roOff
)

// ReadOnlyState reports the replica's read_only as the target last saw it;
// known is false before it looked.
func (t *Target) ReadOnlyState() (on, known bool) {
	s := t.readOnly.Load()
	return s == roOn, s != roUnknown
}

// protect makes the replica read-only for everyone but the sink, if so
// configured, and checks that the sink's user still writes through it.
func (t *Target) protect(ctx context.Context) error {
	on, _, err := readOnlyState(ctx, t.ex)
	if err != nil {
		return fmt.Errorf("protect replica: read read_only: %w", err)
	}
	t.protectChecked = time.Now()
	wasOn, _ := t.ReadOnlyState()
	t.noteReadOnly(on)
	if !t.cfg.Protect {
		return nil
	}
	if !on {
		if why := t.promotionUnderWay(ctx); why != "" {
			t.log.Info().Str("why", why).Msg("replica protection: leaving read_only OFF while the node is being promoted")
			return nil
		}
		if err := t.turnReadOnly(ctx, wasOn); err != nil {
			return err
		}
	}
	if err := checkWriteThrough(ctx, t.ex, t.cfg.Schema); err != nil {
		if refusedByReadOnly(err) {
			return fmt.Errorf("protect replica: the replica is read-only, but the sink's user cannot write through read_only: "+
				"GRANT %s ON *.* to it (and keep super_read_only off): %w", writePrivilege(t.mariadb), err)
		}
		return fmt.Errorf("protect replica: write check: %w", err)
	}
	return nil
}

// turnReadOnly sets read_only=ON; wasOn says the target had seen it ON
// before, so someone turned it off behind the sink.
func (t *Target) turnReadOnly(ctx context.Context, wasOn bool) error {
	if wasOn {
		t.log.Warn().Msg("read_only was turned OFF on the protected replica (a restart without read_only in its my.cnf, or SET GLOBAL): setting it ON again")
	}
	if _, err := t.ex.ExecContext(ctx, "SET GLOBAL read_only=ON"); err != nil {
		return fmt.Errorf("protect replica: SET GLOBAL read_only=ON: %w; GRANT %s ON *.* to the sink's user, or set sink.protect_replicas: false", err, setPrivilege(t.mariadb))
	}
	t.noteReadOnly(true)
	t.log.Info().Str("schema", t.cfg.Schema).
		Msgf("replica protected: read_only=ON; only users with %s (the rowcast sink) can write to it", writePrivilege(t.mariadb))
	return nil
}

// keepProtected checks read_only again after a commit, every
// readOnlyRefresh, and sets it again when someone turned it off. A failure
// is logged: the rows are committed, and the next check tries again.
func (t *Target) keepProtected(ctx context.Context) {
	if time.Since(t.protectChecked) < readOnlyRefresh {
		return
	}
	if err := t.protect(ctx); err != nil {
		t.log.Warn().Err(err).Msg("replica protection")
	}
}

func (t *Target) noteReadOnly(on bool) {
	if on {
		t.readOnly.Store(roOn)
	} else {
		t.readOnly.Store(roOff)
	}
}

// promotionUnderWay says why a writable replica must not be made read-only
// now, or "": a promotion holds its lease on this node (it may be making the
// node the master: its sink has not read the epoch record yet), or the
// node's epoch index names this node the master. Missing tables mean
// neither.
func (t *Target) promotionUnderWay(ctx context.Context) string {
	schema := quoteIdent(t.cfg.Schema)
	q := "SELECT (SELECT COUNT(*) FROM " + schema + "." + quoteIdent(checkpoint.LeaseTable) +
		" WHERE `topic`=? AND `expires_at` > NOW(6))," +
		" COALESCE((SELECT `master` FROM " + schema + "." + quoteIdent(checkpoint.EpochsTable) +
		" WHERE `topic`=? ORDER BY `epoch` DESC LIMIT 1), '')"
	var leases int
	var master string
	if err := t.ex.QueryRowContext(ctx, q, t.cfg.Topic, t.cfg.Topic).Scan(&leases, &master); err != nil {
		if !mysqlerr.Missing(err) {
			t.log.Warn().Err(err).Msg("replica protection: cannot read the promotion lease and the epoch index")
		}
		return ""
	}
	switch {
	case leases > 0:
		return "a promotion holds its lease on this node"
	case master != "" && master == t.cfg.Node:
		return "the epoch index names this node the master"
	}
	return ""
}
