package service

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	drv "github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rowcast/rowcast/internal/dbtls"
	"github.com/rowcast/rowcast/source"
)

// purgePollInterval is how often the reader asks its master which binlogs
// it keeps: a purge is a rare, coarse event.
const purgePollInterval = 30 * time.Second

// purgeMetrics warn before the master purges a binlog the reader still needs,
// and tell whether the reader knows its master. They are vectors without
// labels so that a process without a reader (rowcast sink) exports none of
// them: a series appears at the reader's first poll.
type purgeMetrics struct {
	filesAhead *prometheus.GaugeVec
	bytesAhead *prometheus.GaugeVec
	behind     *prometheus.GaugeVec
	reachable  *prometheus.GaugeVec
	epoch      *prometheus.GaugeVec
}

func newPurgeMetrics() purgeMetrics {
	return purgeMetrics{
		filesAhead: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_source_binlog_files_ahead_of_purge",
			Help: "Binlog files the master keeps before the one the reader reads (SHOW BINARY LOGS): 0 means the next purge removes the file the reader needs; -1 when the reader's file is no longer kept."}, nil),
		bytesAhead: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_source_binlog_bytes_ahead_of_purge",
			Help: "Bytes of the binlog files the master keeps before the one the reader reads."}, nil),
		behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_source_binlog_files_behind",
			Help: "Binlog files the master keeps after the one the reader reads: 0 while it reads the newest, which the master never purges."}, nil),
		reachable: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_source_master_reachable",
			Help: "1 when the reader's last poll of its master (SHOW BINARY LOGS, every 30 s) answered, 0 when it did not."}, nil),
		epoch: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_source_epoch",
			Help: "The master generation the reader reads and stamps on its messages; it goes up by one at each promotion."}, nil),
	}
}

func (m purgeMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.filesAhead, m.bytesAhead, m.behind, m.reachable, m.epoch}
}

// binlogAt is the binlog file the reader reads, as its events and heartbeats
// tell it: end is set while it waits at the end of the master's binlog.
type binlogAt struct {
	file string
	end  bool
}

// readerBinlog holds the reader's binlog file for the purge watcher; the
// reader's goroutine writes it, only when it changes.
type readerBinlog struct {
	last binlogAt
	at   atomic.Pointer[binlogAt]
}

// event records the file of an event the reader emits.
func (r *readerBinlog) event(file string) {
	if file != "" {
		r.set(binlogAt{file: file})
	}
}

// idle records that the reader waits at the end of the binlog (a heartbeat).
func (r *readerBinlog) idle() { r.set(binlogAt{file: r.last.file, end: true}) }

// reset forgets the file when another master is read: its binlogs are others.
func (r *readerBinlog) reset() {
	r.last = binlogAt{}
	r.at.Store(nil)
}

func (r *readerBinlog) set(at binlogAt) {
	if at == r.last {
		return
	}
	r.last = at
	r.at.Store(&at)
}

func (r *readerBinlog) load() (binlogAt, bool) {
	at := r.at.Load()
	if at == nil {
		return binlogAt{}, false
	}
	return *at, true
}

// filesAhead counts the files, and their bytes, that the master keeps before
// the reader's: how many purges the reader's position survives. found is
// false when the reader's file is not among them (purged, or not yet known).
func filesAhead(files []source.BinlogFile, at binlogAt) (n int, bytes int64, found bool) {
	if at.end && len(files) > 0 {
		at.file = files[len(files)-1].Name
	}
	for i, f := range files {
		if f.Name == at.file {
			return i, bytes, true
		}
		bytes += f.Size
	}
	return 0, 0, false
}

// watchPurge polls the master read now for its binlogs until ctx ends,
// and sets the purge metrics, the master's reachability and the epoch.
func (p *Publisher) watchPurge(ctx context.Context, src source.Config) {
	db, err := openMaster(src)
	if err != nil {
		p.log.Warn().Err(err).Msg("binlog purge margin not watched")
		return
	}
	defer db.Close()
	t := time.NewTicker(purgePollInterval)
	defer t.Stop()
	for {
		p.pollPurge(ctx, db)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pollPurge is one poll of watchPurge.
func (p *Publisher) pollPurge(ctx context.Context, db *sql.DB) {
	m := p.metrics.purge
	_, epoch := p.currentMaster()
	m.epoch.WithLabelValues().Set(float64(epoch))
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	files, err := listBinlogs(qctx, db)
	if err != nil {
		if ctx.Err() == nil {
			m.reachable.WithLabelValues().Set(0)
			p.log.Debug().Err(err).Msg("SHOW BINARY LOGS on the master failed")
		}
		return
	}
	m.reachable.WithLabelValues().Set(1)
	at, ok := p.binlog.load()
	if !ok {
		return
	}
	n, bytes, found := filesAhead(files, at)
	behind := len(files) - 1 - n
	if !found {
		n, behind = -1, len(files)
	}
	m.filesAhead.WithLabelValues().Set(float64(n))
	m.bytesAhead.WithLabelValues().Set(float64(bytes))
	m.behind.WithLabelValues().Set(float64(behind))
}

// openMaster opens a small pool to the master with the reader's account,
// which may list binlogs (source.Check requires it).
func openMaster(src source.Config) (*sql.DB, error) {
	c := drv.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = src.User, src.Password, "tcp", src.Addr
	c.TLS = dbtls.ForAddr(src.TLS, src.Addr)
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 10*time.Second, 30*time.Second, 30*time.Second
	conn, err := drv.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("master %s: %w", src.Addr, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	return db, nil
}

// listBinlogs is SHOW BINARY LOGS, oldest first.
func listBinlogs(ctx context.Context, db *sql.DB) ([]source.BinlogFile, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []source.BinlogFile
	for rows.Next() {
		var f source.BinlogFile
		dest := []any{&f.Name, &f.Size}
		for len(dest) < len(cols) { // MySQL 8 adds an Encrypted column
			dest = append(dest, new(sql.RawBytes))
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}
