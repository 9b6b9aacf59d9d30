package main

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/internal/workload"
)

// waitConverged waits until both replicas hold exactly the master's data.
func waitConverged(t *testing.T, database string, timeout time.Duration) {
	t.Helper()
	master := testenv.DB(t, testenv.Master)
	want, err := workload.Checksum(context.Background(), master, database)
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{testenv.Replica1, testenv.Replica2} {
		db := testenv.DB(t, node)
		var diff string
		deadline := time.Now().Add(timeout)
		for {
			got, err := workload.Checksum(context.Background(), db, database)
			if err == nil {
				if diff = workload.Diff(want, got); diff == "" {
					break
				}
			} else {
				diff = err.Error()
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not converge to the master within %v: %s", node, timeout, diff)
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("%s equals the master: %+v", node, want)
	}
}

// watchTotals reads the bank total on both replicas at random moments until
// ctx ends. Each read is one snapshot; it must see either no accounts yet or
// all of them with the opening total, never anything in between.
func watchTotals(ctx context.Context, t *testing.T, database string, accounts int, total int64) (reads *int64, wg *sync.WaitGroup) {
	var n int64
	var mu sync.Mutex
	wg = &sync.WaitGroup{}
	for _, node := range []string{testenv.Replica1, testenv.Replica2} {
		db := testenv.DB(t, node)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
			for ctx.Err() == nil {
				time.Sleep(time.Duration(r.IntN(50)) * time.Millisecond)
				sum, count, err := snapshotTotal(db, database)
				if err != nil {
					if mysqlerr.Missing(err) {
						continue // not created yet
					}
					t.Errorf("%s: %v", node, err)
					return
				}
				if count == 0 {
					continue
				}
				if count != int64(accounts) || sum != total {
					t.Errorf("%s shows %d accounts holding %d; want %d accounts holding %d", node, count, sum, accounts, total)
					return
				}
				mu.Lock()
				n++
				mu.Unlock()
			}
		}()
	}
	return &n, wg
}

func snapshotTotal(db *sql.DB, database string) (int64, int64, error) {
	tx, err := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	var sum, n int64
	err = tx.QueryRow("SELECT COALESCE(SUM(balance),0), COUNT(*) FROM `"+database+"`.accounts").Scan(&sum, &n)
	return sum, n, err
}

// TestBankTransfersStayConsistent runs `rowcast run` while clients transfer
// money on the master. Read at random moments, each replica's total never
// changes; at the end both replicas equal the master.
func TestBankTransfersStayConsistent(t *testing.T) {
	r := startReplication(t, "run")
	database := r.database
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bank := newBank(ctx, t, database, 200, 1000)
	wctx, stopWatch := context.WithCancel(ctx)
	reads, wg := watchTotals(wctx, t, database, bank.Accounts, int64(bank.Accounts)*bank.Initial)
	lctx, stopLoad := context.WithTimeout(ctx, 15*time.Second)
	if err := bank.Run(lctx, 6, 0); err != nil {
		t.Fatal(err)
	}
	stopLoad()
	waitConverged(t, database, time.Minute)
	stopWatch()
	wg.Wait()
	r.proc.stop(t)
	if *reads < 20 {
		t.Fatalf("only %d consistent reads of the replicas; the check saw too little", *reads)
	}
	t.Logf("%d transfers; %d replica reads, every one with the opening total", bank.Transfers.Load(), *reads)
}

// replicatedNamed is replicated with a name chosen beforehand (the config's
// include filter needs it).
func replicatedNamed(t *testing.T, database string) {
	t.Helper()
	testenv.Exec(t, testenv.DB(t, testenv.Master), "CREATE DATABASE `"+database+"`")
	for _, node := range []string{testenv.Master, testenv.Replica1, testenv.Replica2} {
		db := testenv.DB(t, node)
		t.Cleanup(func() { db.Exec("DROP DATABASE IF EXISTS `" + database + "`") })
	}
}

// TestSinkCrash SIGKILLs the sink worker of db2 at random moments during a
// transfer load. Afterwards both replicas equal the master: no row lost or
// doubled, and the total never changed on either.
func TestSinkCrash(t *testing.T) {
	r := startReplication(t, "pipeline")
	cfg, database := r.cfg, r.database
	db3 := startRowcast(t, "sink", "--config", cfg, "--replica", "db3")
	db2 := startRowcast(t, "sink", "--config", cfg, "--replica", "db2")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bank := newBank(ctx, t, database, 100, 500)
	wctx, stopWatch := context.WithCancel(ctx)
	_, wg := watchTotals(wctx, t, database, bank.Accounts, int64(bank.Accounts)*bank.Initial)
	lctx, stopLoad := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bank.Run(lctx, 4, 0) }()
	rnd := rand.New(rand.NewPCG(9, uint64(time.Now().UnixNano())))
	const kills = 6
	for i := 0; i < kills; i++ {
		time.Sleep(time.Duration(300+rnd.IntN(1200)) * time.Millisecond)
		db2.kill(t)
		db2 = startRowcast(t, "sink", "--config", cfg, "--replica", "db2")
	}
	stopLoad()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitConverged(t, database, 90*time.Second)
	stopWatch()
	wg.Wait()
	db2.stop(t)
	db3.stop(t)
	r.proc.stop(t)
	t.Logf("%d transfers across %d kills of the db2 sink", bank.Transfers.Load(), kills)
}

// TestRunStopsWhileStarting: SIGTERM while `rowcast run` still waits for
// Kafka (unreachable here) is a clean stop, exit 0: it had nothing to
// finish.
func TestRunStopsWhileStarting(t *testing.T) {
	cfg := clusterConfig{database: testenv.UniqueName(t, "rc"), topic: "rc_never_created", brokers: "127.0.0.1:1"}.write(t)
	p := startRowcast(t, "run", "--config", cfg)
	waitFor(t, 30*time.Second, "rowcast run to start", func() bool { return strings.Contains(p.out.String(), "rowcast run starting") })
	time.Sleep(500 * time.Millisecond)
	p.stop(t)
	if !strings.Contains(p.out.String(), "stopped on request while starting") {
		t.Fatalf("no clean stop while starting:\n%s", p.out)
	}
}
