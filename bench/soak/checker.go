package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// checker reads the bank's total on every node at random moments, each
// time in one statement (one consistent read view): a replica shows a
// prefix of the master's transactions, so the total never changes there
// either. A node that does not answer (restarting) is skipped.
type checker struct {
	dbs      map[string]*sql.DB // root on each node
	database string
	accounts int64
	total    int64
	fail     func(error)

	reads  map[string]*atomic.Int64 // consistent reads, by node
	misses map[string]*atomic.Int64 // reads that got no answer

	stop chan struct{}
	wg   sync.WaitGroup
}

func newChecker(dbs map[string]*sql.DB, database string, accounts int, total int64, fail func(error)) *checker {
	c := &checker{dbs: dbs, database: database, accounts: int64(accounts), total: total, fail: fail,
		reads: map[string]*atomic.Int64{}, misses: map[string]*atomic.Int64{}, stop: make(chan struct{})}
	for n := range dbs {
		c.reads[n], c.misses[n] = new(atomic.Int64), new(atomic.Int64)
	}
	return c
}

func (c *checker) start() {
	for n := range c.dbs {
		c.wg.Add(1)
		go c.watch(n)
	}
}

func (c *checker) stopChecking() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
}

// watch reads one node until stopped, and reports the first read whose
// total is not the opening total.
func (c *checker) watch(node string) {
	defer c.wg.Done()
	r := rand.New(rand.NewPCG(uint64(len(node)), uint64(time.Now().UnixNano())))
	for {
		select {
		case <-c.stop:
			return
		case <-time.After(time.Duration(r.IntN(300)) * time.Millisecond):
		}
		if err := c.readOnce(node); err != nil {
			c.fail(err)
			return
		}
	}
}

// readOnce reads the total once; an error only for a wrong total.
func (c *checker) readOnce(node string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var sum, n int64
	err := c.dbs[node].QueryRowContext(ctx, "SELECT COALESCE(SUM(balance), 0), COUNT(*) FROM `"+c.database+"`.accounts").Scan(&sum, &n)
	if err != nil {
		c.misses[node].Add(1)
		return nil
	}
	if n != c.accounts || sum != c.total {
		return fmt.Errorf("%s showed %d accounts holding %d at %s; the bank has %d accounts holding %d",
			node, n, sum, time.Now().Format("15:04:05.000"), c.accounts, c.total)
	}
	c.reads[node].Add(1)
	return nil
}
