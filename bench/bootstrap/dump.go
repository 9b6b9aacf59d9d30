package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// dumpMethod is the baseline's name in the report.
const dumpMethod = "`mariadb-dump --single-transaction \\| mariadb`"

// clientArgs are the command-line clients' connection to a server: no
// option files (the machine's /etc/mysql would otherwise add its own), root
// over TCP.
func clientArgs(s *server) []string {
	return []string{"--no-defaults", "-h127.0.0.1", "-P" + strconv.Itoa(s.port), "-uroot"}
}

// measureDump copies the master's database into the empty dump replica
// with mariadb-dump piped straight into mariadb (an OS pipe: nothing of the
// benchmark's in between).
func (b *bench) measureDump(ctx context.Context, r *round) error {
	logf("round %d: mariadb-dump --single-transaction %s | mariadb into an empty replica ...", r.n, benchDB)
	mt := newMeter(part{"master mariadbd", b.master.pidFunc()}, part{"replica mariadbd", b.dump.pidFunc()}, b.kafkaPart())
	t0 := time.Now()
	dump, load, err := b.startDump(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	if err := errors.Join(load.wait(ctx), dump.wait(ctx)); err != nil {
		return err
	}
	d := time.Since(t0)
	r.dump = measurement{method: dumpMethod, seconds: d.Seconds(), rows: b.o.rows, steps: "-",
		cpu: mt.since(named{"mariadb-dump", dump.cpu()}, named{"mariadb", load.cpu()}),
		rss: []named{{"mariadb-dump", float64(dump.peakRSS())}, {"mariadb", float64(load.peakRSS())}}}
	logf("round %d: dump | restore: %.1fs, %.0f rows/s", r.n, d.Seconds(), r.dump.rate())
	return nil
}

// startDump starts mariadb-dump and mariadb, joined by a pipe.
func (b *bench) startDump(r *round) (dump, load *proc, err error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer pr.Close()
	defer pw.Close()
	logs := filepath.Join(b.o.dir, "round"+strconv.Itoa(r.n)+"-")
	load = newProc("mariadb", logs+"mariadb.log", "mariadb", clientArgs(b.dump)...)
	load.cmd.Stdin = pr
	if err := load.start(); err != nil {
		return nil, nil, err
	}
	dump = newProc("mariadb-dump", logs+"mariadb-dump.log", "mariadb-dump",
		append(clientArgs(b.master), "--single-transaction", "--databases", benchDB)...)
	dump.cmd.Stdout = pw
	if err := dump.start(); err != nil {
		load.stop()
		return nil, nil, err
	}
	return dump, load, nil
}
