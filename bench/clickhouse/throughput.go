package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

// result is one workload's measurement.
type result struct {
	w              workload
	rowcastSec     float64
	nativeSec      float64
	sinkCPU, chCPU float64 // during rowcast's apply
	nativeCPU      float64 // clickhouse-server during its own ingest
	kafkaCPU       float64
	sinkRSS        int64
	nativeBytes    int64
	writeSec       float64
	firstSec       float64 // from the sink's start to its first rows in ClickHouse
}

func (r result) rowcastRate() float64 { return float64(r.w.rows) / r.rowcastSec }
func (r result) nativeRate() float64  { return float64(r.w.rows) / r.nativeSec }
func (r result) ratio() float64       { return r.rowcastRate() / r.nativeRate() }

// pids of the processes a CPU meter watches: the sink, clickhouse-server,
// the Kafka broker.
func (b *bench) meter(sink *proc) *benchkit.CPUMeter {
	chPID, _ := strconv.Atoi(b.o.chPID)
	return benchkit.NewCPUMeter(benchkit.PID(sink.pid()), benchkit.PID(chPID), b.o.Kafka.BrokerPID)
}

// throughput measures one workload: published into a topic of its own while
// written, then applied by a `rowcast sink` started on the full topic, then
// ingested by ClickHouse itself from a Native file of the same rows.
func (b *bench) throughput(ctx context.Context, w workload) (result, error) {
	r := result{w: w}
	topic := b.name + "_" + w.name
	b.topics = append(b.topics, topic)
	cfg, err := b.writeConfig(topic, time.Hour) // no heartbeats: the topic holds the workload only
	if err != nil {
		return r, err
	}
	if err := b.publish(ctx, w, cfg, topic, &r); err != nil {
		return r, err
	}
	if err := b.apply(ctx, w, cfg, &r); err != nil {
		return r, err
	}
	if err := b.ingest(ctx, w, &r); err != nil {
		return r, err
	}
	logf("%s: rowcast %.1fk rows/s (%.2fs), ClickHouse's own ingest %.1fk rows/s (%.2fs): %.2fx",
		w.name, r.rowcastRate()/1000, r.rowcastSec, r.nativeRate()/1000, r.nativeSec, r.ratio())
	return r, b.checkCounts(ctx, w)
}

// publish runs `rowcast pipeline` while the workload is written and stops it
// once the topic holds every row.
func (b *bench) publish(ctx context.Context, w workload, cfg, topic string, r *result) error {
	pipe, err := b.start("pipeline-"+w.name, "pipeline", "--config", cfg)
	if err != nil {
		return err
	}
	defer pipe.stop()
	db, err := masterDB(b.o.master, b.database)
	if err != nil {
		return err
	}
	defer db.Close()
	before, err := b.createWhileReading(ctx, pipe, db, topic, w.table)
	if err != nil {
		return err
	}
	logf("%s: writing %d rows in %d-row transactions ...", w.name, w.rows, w.txn)
	t0 := time.Now()
	load := benchkit.Load{Name: w.name, Table: w.table, Kind: benchkit.Insert, Rows: w.rows, Txn: w.txn}
	if err := (benchkit.Writer{DB: db, Conns: b.o.conns}).Write(ctx, load); err != nil {
		return err
	}
	r.writeSec = time.Since(t0).Seconds()
	want := before + int64(w.rows)
	return b.waitUntil(ctx, "the topic to hold the workload", 200*time.Millisecond, func() bool {
		end, err := b.topicEnd(ctx, topic)
		return err == nil && end >= want
	}, pipe)
}

// createWhileReading creates the workload's table once the pipeline reads
// the master (the CREATE reaches the topic) and returns the topic's end
// offset after it.
func (b *bench) createWhileReading(ctx context.Context, pipe *proc, db *sql.DB, topic, table string) (int64, error) {
	var end int64 = -1
	if err := b.waitUntil(ctx, "the pipeline to create the topic", 200*time.Millisecond, func() bool {
		e, err := b.topicEnd(ctx, topic)
		end = e
		return err == nil
	}, pipe); err != nil {
		return 0, err
	}
	for try := 0; ; try++ {
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
			return 0, err
		}
		if _, err := db.ExecContext(ctx, benchkit.CreateTable(table)); err != nil {
			return 0, err
		}
		time.Sleep(2 * time.Second)
		now, err := b.topicEnd(ctx, topic)
		if err == nil && now >= end+2 {
			return now, nil
		}
		if err := pipe.alive(); err != nil || try == 10 {
			return 0, fmt.Errorf("the pipeline did not publish the CREATE TABLE of %s (%v)", table, err)
		}
		end = now
	}
}

// apply times `rowcast sink --replica olap` from its start on the full topic
// until ClickHouse holds every row of the workload.
func (b *bench) apply(ctx context.Context, w workload, cfg string, r *result) error {
	table := "`" + b.database + "`." + w.table
	m0 := time.Now()
	sink, err := b.start("sink-"+w.name, "sink", "--config", cfg, "--replica", "olap")
	if err != nil {
		return err
	}
	defer sink.stop()
	meter := b.meter(sink)
	c0 := meter.Now()
	if err := b.waitUntil(ctx, "ClickHouse to hold the workload", 50*time.Millisecond, func() bool {
		n := b.ch.count(ctx, "SELECT count() FROM "+table)
		if n > 0 && r.firstSec == 0 {
			r.firstSec = time.Since(m0).Seconds()
		}
		return n >= int64(w.rows)
	}, sink); err != nil {
		return err
	}
	r.rowcastSec = time.Since(m0).Seconds()
	cpu := meter.Now().Since(c0)
	r.sinkCPU, r.chCPU, r.kafkaCPU = cpu.Proc(0), cpu.Proc(1), cpu.Proc(2)
	r.sinkRSS = benchkit.Status(sink.pid(), "VmHWM")
	return nil
}

// ingest exports the sink's table as one Native file and times ClickHouse's
// own insert of it into an empty copy of the table.
func (b *bench) ingest(ctx context.Context, w workload, r *result) error {
	table := "`" + b.database + "`." + w.table
	copyTable := "`" + b.database + "`." + w.table + "_copy"
	path := filepath.Join(b.o.dir, "copy.native")
	n, err := b.ch.exportNative(ctx, table, path)
	if err != nil {
		return err
	}
	r.nativeBytes = n
	if _, err := b.ch.post(ctx, "CREATE TABLE "+copyTable+" AS "+table, nil); err != nil {
		return err
	}
	chPID, _ := strconv.Atoi(b.o.chPID)
	meter := benchkit.NewCPUMeter(benchkit.PID(chPID))
	c0, t0 := meter.Now(), time.Now()
	if err := b.ch.importNative(ctx, copyTable, path); err != nil {
		return err
	}
	r.nativeSec = time.Since(t0).Seconds()
	r.nativeCPU = meter.Now().Since(c0).Proc(0)
	return nil
}

// checkCounts compares the workload's row counts: the master's, the
// replica's current rows and the copy's.
func (b *bench) checkCounts(ctx context.Context, w workload) error {
	db, err := masterDB(b.o.master, b.database)
	if err != nil {
		return err
	}
	defer db.Close()
	var master int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+w.table).Scan(&master); err != nil {
		return err
	}
	table := "`" + b.database + "`." + w.table
	replica := b.ch.count(ctx, "SELECT count() FROM "+table+" FINAL WHERE _deleted = 0")
	cp := b.ch.count(ctx, "SELECT count() FROM "+table+"_copy FINAL WHERE _deleted = 0")
	line := fmt.Sprintf("%s: rows on the master %d, ClickHouse replica (FINAL, not deleted) %d, ClickHouse's own ingest %d", w.name, master, replica, cp)
	b.checks = append(b.checks, line)
	if master != int64(w.rows) || replica != master || cp != master {
		return fmt.Errorf("row counts differ: %s", line)
	}
	return nil
}
