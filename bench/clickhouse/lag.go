package main

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

// lagResult is the lag measurement: commit on the master to the row
// visible in ClickHouse, per transaction.
type lagResult struct {
	txns          int
	rate          float64 // transactions per second the writer reached
	p50, p99, max time.Duration
	sinkRSS       int64
	pipelineRSS   int64
	seconds       float64
}

// commit is a transaction of the lag writer: its last id and when its
// COMMIT returned.
type commit struct {
	id int64
	at time.Time
}

// seen is one poll of ClickHouse: the newest id it held.
type seen struct {
	id int64
	at time.Time
}

// measureLag runs `rowcast pipeline` and `rowcast sink` while one client
// commits small transactions at a steady rate.
func (b *bench) measureLag(ctx context.Context) (*lagResult, error) {
	topic := b.name + "_lag"
	b.topics = append(b.topics, topic)
	cfg, err := b.writeConfig(topic, time.Second)
	if err != nil {
		return nil, err
	}
	pipe, err := b.start("pipeline-lag", "pipeline", "--config", cfg)
	if err != nil {
		return nil, err
	}
	defer pipe.stop()
	sink, err := b.start("sink-lag", "sink", "--config", cfg, "--replica", "olap")
	if err != nil {
		return nil, err
	}
	defer sink.stop()
	db, err := masterDB(b.o.master, b.database)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := b.createLagTable(ctx, db, pipe, sink); err != nil {
		return nil, err
	}
	logf("lag: %d transactions/s of %d rows for %v ...", b.o.lagRate, b.o.lagTxn, b.o.lagDuration)
	stopPoll := b.poll(ctx)
	commits, err := b.writeSteady(ctx, db)
	if err != nil {
		stopPoll()
		return nil, err
	}
	last := commits[len(commits)-1].id
	err = b.waitUntil(ctx, "ClickHouse to hold the lag writer's rows", 100*time.Millisecond, func() bool {
		return b.ch.count(ctx, "SELECT max(id) FROM `"+b.database+"`.lag") >= last
	}, pipe, sink)
	seenList := stopPoll()
	if err != nil {
		return nil, err
	}
	res := lagOf(commits, seenList)
	res.seconds = b.o.lagDuration.Seconds()
	res.rate = float64(len(commits)) / res.seconds
	res.sinkRSS, res.pipelineRSS = benchkit.Status(sink.pid(), "VmHWM"), benchkit.Status(pipe.pid(), "VmHWM")
	logf("lag: p50 %v, p99 %v, max %v over %d transactions", res.p50, res.p99, res.max, res.txns)
	return res, nil
}

// createLagTable creates the lag table on the master until ClickHouse has
// it (the pipeline may start reading after a first CREATE).
func (b *bench) createLagTable(ctx context.Context, db *sql.DB, procs ...*proc) error {
	for try := 0; try < 6; try++ {
		for _, q := range []string{"DROP TABLE IF EXISTS lag", "CREATE TABLE lag (id BIGINT NOT NULL PRIMARY KEY, v INT NOT NULL, note VARCHAR(64) NOT NULL)"} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if v, _ := b.ch.value(ctx, "EXISTS TABLE `"+b.database+"`.lag"); v == "1" {
				return nil
			}
			for _, p := range procs {
				if err := p.alive(); err != nil {
					return err
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return fmt.Errorf("ClickHouse never got the lag table")
}

// poll reads ClickHouse's newest id every lagPoll until stopped.
func (b *bench) poll(ctx context.Context) (stop func() []seen) {
	var mu sync.Mutex
	var out []seen
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for pctx.Err() == nil {
			id := b.ch.count(pctx, "SELECT max(id) FROM `"+b.database+"`.lag")
			at := time.Now()
			mu.Lock()
			out = append(out, seen{id: id, at: at})
			mu.Unlock()
			time.Sleep(b.o.lagPoll)
		}
	}()
	return func() []seen { cancel(); <-done; return out }
}

// writeSteady commits lagTxn-row transactions at lagRate per second for
// lagDuration, one connection.
func (b *bench) writeSteady(ctx context.Context, db *sql.DB) ([]commit, error) {
	every := time.Second / time.Duration(b.o.lagRate)
	tick := time.NewTicker(every)
	defer tick.Stop()
	end := time.Now().Add(b.o.lagDuration)
	var out []commit
	var id int64
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		q, args := lagInsert(id+1, b.o.lagTxn)
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			return nil, err
		}
		id += int64(b.o.lagTxn)
		out = append(out, commit{id: id, at: time.Now()})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no transaction written")
	}
	return out, nil
}

func lagInsert(first int64, n int) (string, []any) {
	vals := make([]string, n)
	args := make([]any, 0, 3*n)
	for i := range n {
		vals[i] = "(?,?,?)"
		args = append(args, first+int64(i), i, "row "+strconv.FormatInt(first+int64(i), 10))
	}
	return "INSERT INTO lag (id, v, note) VALUES " + strings.Join(vals, ","), args
}

// lagOf matches each commit with the first poll that saw its rows.
func lagOf(commits []commit, polls []seen) *lagResult {
	var lags []time.Duration
	j := 0
	for _, c := range commits {
		for j < len(polls) && polls[j].id < c.id {
			j++
		}
		if j == len(polls) {
			break
		}
		lags = append(lags, max(0, polls[j].at.Sub(c.at)))
	}
	slices.Sort(lags)
	res := &lagResult{txns: len(lags)}
	if len(lags) > 0 {
		res.p50, res.p99, res.max = lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1]
	}
	return res
}
