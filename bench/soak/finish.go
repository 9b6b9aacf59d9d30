package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
	"github.com/rowcast/rowcast/internal/workload"
)

// finish checks the outcome once the load stopped: the replicas converge to
// the master, `rowcast verify` finds each equal, the ledgers and the topic
// hold exactly the committed transfers, no sink logged a difference, and
// every process stops cleanly.
func (s *soak) finish(ctx context.Context, res *result) error {
	benchkit.Logf("load stopped after %d transfers; waiting for the replicas to converge", s.load.committed.Load())
	if err := s.servicesUp(ctx); err != nil {
		return err
	}
	t0 := time.Now()
	if err := s.converge(ctx, 5*time.Minute); err != nil {
		return err
	}
	res.converged = time.Since(t0)
	for _, n := range s.replicas() {
		if err := s.verify(ctx, n); err != nil {
			return err
		}
	}
	ids, err := s.checkLedgers(ctx, res)
	if err != nil {
		return err
	}
	if err := s.auditTopic(ctx, ids, res); err != nil {
		return fmt.Errorf("the topic: %w", err)
	}
	if err := s.noDifferencesLogged(); err != nil {
		return err
	}
	return s.procs.stopAll(time.Minute)
}

// converge waits until every replica's checksum of the database equals the
// master's (which no longer changes).
func (s *soak) converge(ctx context.Context, timeout time.Duration) error {
	master := s.currentMaster()
	want, err := workload.Checksum(ctx, s.c.root[master], s.c.database)
	if err != nil {
		return fmt.Errorf("checksum of the master %s: %w", master, err)
	}
	for _, n := range s.replicas() {
		diff := ""
		err := s.waitUntil(ctx, timeout, n+" to equal the master", func() bool {
			got, err := workload.Checksum(ctx, s.c.root[n], s.c.database)
			if err != nil {
				diff = err.Error()
				return false
			}
			diff = workload.Diff(want, got)
			return diff == ""
		})
		if err != nil {
			return fmt.Errorf("%w: %s", err, diff)
		}
	}
	return nil
}

// verify runs `rowcast verify` on a replica, which must exit 0 (equal).
func (s *soak) verify(ctx context.Context, node string) error {
	out, code := s.procs.command(ctx, 10*time.Minute, "verify", "--config", s.cfg, "--replica", node)
	if code != 0 {
		return fmt.Errorf("rowcast verify --replica %s: exit %d\n%s", node, code, out)
	}
	return nil
}

// checkLedgers checks that the master's ledger holds every acknowledged
// transfer and nothing a client did not commit (a transfer whose COMMIT got
// no answer is settled by the ledger), that every replica holds exactly the
// master's ledger, and that on every node each balance is the opening
// balance moved by the ledger: no transfer lost, applied twice or in part.
// It returns the master's ledger.
func (s *soak) checkLedgers(ctx context.Context, res *result) ([]int64, error) {
	master := s.currentMaster()
	ids, err := s.ledgerIDs(ctx, master)
	if err != nil {
		return nil, err
	}
	confirmed, unknown := s.load.outcome()
	res.confirmed, res.unknown, res.ledger = len(confirmed), len(unknown), len(ids)
	res.unknownCommitted = len(unknown) - len(minus(unknown, ids))
	var errs []error
	if lost := minus(confirmed, ids); len(lost) > 0 {
		errs = append(errs, fmt.Errorf("%d acknowledged transfers are not in the master's ledger, e.g. %v", len(lost), lost[:min(5, len(lost))]))
	}
	if extra := minus(ids, merged(confirmed, unknown)); len(extra) > 0 {
		errs = append(errs, fmt.Errorf("%d ledger rows on the master were never committed by a client, e.g. %v", len(extra), extra[:min(5, len(extra))]))
	}
	for _, n := range s.replicas() {
		errs = append(errs, s.sameLedger(ctx, n, ids))
	}
	for _, n := range nodes {
		errs = append(errs, s.balancesFollowLedger(ctx, n))
	}
	return ids, errors.Join(errs...)
}

// sameLedger checks that a replica's ledger holds exactly the ids of the
// master's.
func (s *soak) sameLedger(ctx context.Context, node string, want []int64) error {
	got, err := s.ledgerIDs(ctx, node)
	if err != nil {
		return err
	}
	missing, extra := minus(want, got), minus(got, want)
	if len(missing)+len(extra) > 0 {
		return fmt.Errorf("%s's ledger: %d of the master's transfers missing, %d not on the master", node, len(missing), len(extra))
	}
	return nil
}

// ledgerIDs are the ids of a node's ledger, sorted.
func (s *soak) ledgerIDs(ctx context.Context, node string) ([]int64, error) {
	rows, err := s.c.root[node].QueryContext(ctx, "SELECT id FROM `"+s.c.database+"`.ledger ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("%s's ledger: %w", node, err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// balancesFollowLedger checks one node: every account holds the opening
// balance minus what the ledger moved out of it plus what it moved in.
func (s *soak) balancesFollowLedger(ctx context.Context, node string) error {
	db := "`" + s.c.database + "`"
	want := make([]int64, s.o.accounts)
	for i := range want {
		want[i] = initialBalance
	}
	for _, q := range []struct {
		sql  string
		sign int64
	}{
		{"SELECT src, SUM(amount) FROM " + db + ".ledger GROUP BY src", -1},
		{"SELECT dst, SUM(amount) FROM " + db + ".ledger GROUP BY dst", 1},
	} {
		if err := scanSums(ctx, s.c.root[node], q.sql, len(want), func(id int, sum int64) { want[id] += q.sign * sum }); err != nil {
			return fmt.Errorf("%s: %w", node, err)
		}
	}
	var bad []string
	err := scanSums(ctx, s.c.root[node], "SELECT id, balance FROM "+db+".accounts", len(want), func(id int, balance int64) {
		if balance != want[id] {
			bad = append(bad, fmt.Sprintf("account %d holds %d, the ledger says %d", id, balance, want[id]))
		}
	})
	if err != nil {
		return fmt.Errorf("%s: %w", node, err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: %d accounts differ from the ledger: %s", node, len(bad), strings.Join(bad[:min(5, len(bad))], "; "))
	}
	return nil
}

// scanSums runs a query of (account id, amount) rows and hands each to f;
// an id outside [0, accounts) is an error.
func scanSums(ctx context.Context, db *sql.DB, query string, accounts int, f func(int, int64)) error {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			return err
		}
		if id < 0 || id >= accounts {
			return fmt.Errorf("account %d: the bank has accounts 0 to %d", id, accounts-1)
		}
		f(id, v)
	}
	return rows.Err()
}

// noDifferencesLogged checks that no sink's continuous verification logged
// a row that differs from the master.
func (s *soak) noDifferencesLogged() error {
	for _, n := range nodes {
		path := s.procs.logPath(sinkRole(n))
		b, err := os.ReadFile(path)
		if err != nil {
			continue // db1 has a sink only after the switchover
		}
		if k := strings.Count(string(b), "row differs from the master"); k > 0 {
			return fmt.Errorf("%s's sink logged %d rows that differ from the master (continuous verification): see %s", n, k, path)
		}
	}
	return nil
}
