package source

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

// wideTable holds rows of about 190 bytes in the binlog.
const wideTable = `CREATE TABLE w (id INT PRIMARY KEY, a VARCHAR(100), b BIGINT, c DOUBLE, d DATETIME(6), e VARCHAR(60))`

// fillWide inserts n rows into w in transactions of per rows each.
func fillWide(t testing.TB, db *sql.DB, n, per int) {
	t.Helper()
	for from := 1; from <= n; from += per {
		to := min(from+per-1, n)
		testenv.Exec(t, db, fmt.Sprintf(`INSERT INTO w SELECT seq, REPEAT('a', 100), seq * 7, seq / 3,
			'2024-01-02 03:04:05.678901', REPEAT('e', 60) FROM mysql.seq_%d_to_%d`, from, to))
	}
}

// TestLargeTransactionBoundedMemory streams one 200,000-row transaction
// (ROWCAST_BIG_TXN_ROWS to change) and samples the heap: the reader never
// holds the transaction.
func TestLargeTransactionBoundedMemory(t *testing.T) {
	rows := uint64(200000)
	if n, err := strconv.ParseUint(os.Getenv("ROWCAST_BIG_TXN_ROWS"), 10, 64); err == nil && n > 0 {
		rows = n
	}
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, wideTable)
	start := Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 1}
	fillWide(t, db, int(rows), int(rows))

	runtime.GC()
	peak := sampleHeap()
	r := NewReader(testConfig(t, dbName), testLogger(t))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	txn := oneTxn{rows: rows}
	began := time.Now()
	err := r.Run(ctx, start, txn.emit)
	n, last := txn.n, txn.last
	peakHeap := peak()
	if !errors.Is(err, errStop) {
		t.Fatalf("Run: %v after %d rows", err, n)
	}
	if n != rows || last.After[0] != int64(rows) || last.GTIDSet == "" {
		t.Fatalf("%d rows, last %v", n, last.After)
	}
	const limit = 200 << 20
	t.Logf("%d rows in %v, peak heap in use %d MiB", n, time.Since(began).Round(time.Millisecond), peakHeap>>20)
	if peakHeap > limit {
		t.Errorf("peak heap in use %d MiB, limit %d MiB", peakHeap>>20, limit>>20)
	}
}

// oneTxn receives the messages of transaction 1 of rows rows, in order, and
// stops the reader with errStop after the last.
type oneTxn struct {
	rows, n uint64
	last    *pipeline.Event
}

func (o *oneTxn) emit(_ context.Context, ev *pipeline.Event) error {
	if ev.Pos.TxnSeq != 1 || ev.Pos.Row != o.n || ev.Pos.Last != (o.n == o.rows-1) {
		return fmt.Errorf("message %d at %s", o.n, ev.Pos)
	}
	o.n++
	if ev.Pos.Last {
		o.last = ev
		return errStop
	}
	return nil
}

// sampleHeap samples the heap in use every 20 ms until the function it
// returns is called, which returns the peak.
func sampleHeap() (stop func() uint64) {
	var peak uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-sampled
		return peak
	}
}

// BenchmarkDecode measures rows per second through Run with a no-op emit, and
// go-mysql's BinlogSyncer alone (events decoded, rows counted) on the same
// binlog: 200,000 rows of ~190 bytes in 20 transactions.
func BenchmarkDecode(b *testing.B) {
	const rows = 200000
	dbName, start, cfg := benchBinlog(b, wideTable, fillWide, rows)

	b.Run("rowcast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithCancel(b.Context())
			n := 0
			err := NewReader(cfg, testLogger(b)).Run(ctx, start, func(ctx context.Context, ev *pipeline.Event) error {
				if n++; n == rows {
					cancel()
				}
				return nil
			})
			cancel()
			if n != rows || !errors.Is(err, context.Canceled) {
				b.Fatalf("%d rows: %v", n, err)
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("go-mysql", func(b *testing.B) {
		b.ReportAllocs()
		r := NewReader(cfg, testLogger(b))
		for b.Loop() {
			sc := r.SyncerConfig(FlavorMariaDB)
			sc.ServerID = uniqueServerID()
			syncer := replication.NewBinlogSyncer(sc)
			set, _ := mysql.ParseGTIDSet(FlavorMariaDB, start.GTIDSet)
			st, err := syncer.StartSyncGTID(set)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for n < rows {
				ev, err := st.GetEvent(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				if re, ok := ev.Event.(*replication.RowsEvent); ok && string(re.Table.Schema) == dbName {
					n += len(re.Rows)
				}
			}
			syncer.Close()
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// benchTable is the table of scripts/bench source (scripts/benchsource): two
// INT, a DECIMAL, a DATETIME and a DATETIME(3) beside a BIGINT key and three
// VARCHARs.
const benchTable = `CREATE TABLE w (id BIGINT NOT NULL PRIMARY KEY, account_id INT NOT NULL, qty INT NOT NULL,
	amount DECIMAL(12,2) NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME(3) NOT NULL,
	name VARCHAR(64) NOT NULL, email VARCHAR(96) NOT NULL, note VARCHAR(255) NOT NULL) DEFAULT CHARSET=utf8mb4`

// fillBench inserts n rows like scripts/bench source's into w, per rows per
// transaction.
func fillBench(t testing.TB, db *sql.DB, n, per int) {
	t.Helper()
	for from := 1; from <= n; from += per {
		to := min(from+per-1, n)
		testenv.Exec(t, db, fmt.Sprintf(`INSERT INTO w SELECT seq, seq * 7919 %% 100000, seq %% 1000, seq * 12.34 %% 1000000,
			'2024-01-01' + INTERVAL seq SECOND, '2024-01-01' + INTERVAL seq SECOND + INTERVAL seq %% 1000 * 1000 MICROSECOND,
			REPEAT('n', 36), CONCAT(REPEAT('e', 28), '@example.com'), REPEAT('x', 76) FROM mysql.seq_%d_to_%d`, from, to))
	}
}

// BenchmarkDecodeOffline replays the same binlog from memory, without the
// server and the network: go-mysql's parser alone ("go-mysql") against the
// parser plus rowcast's transaction and value handling ("rowcast"), with the
// reader's settings (SyncerConfig), on the wide table and on the table of
// scripts/bench source ("bench").
func BenchmarkDecodeOffline(b *testing.B) {
	b.Run("wide", func(b *testing.B) { benchmarkDecodeOffline(b, wideTable, fillWide) })
	b.Run("bench", func(b *testing.B) { benchmarkDecodeOffline(b, benchTable, fillBench) })
}

func benchmarkDecodeOffline(b *testing.B, table string, fill func(testing.TB, *sql.DB, int, int)) {
	const rows = 200000
	dbName, start, cfg := benchBinlog(b, table, fill, rows)
	cfg.setDefaults()
	r := NewReader(cfg, testLogger(b))
	raw := captureBinlog(b, r, start, dbName, rows)

	// replay decodes the captured binlog b.N times; each pass gets a fresh
	// handler.
	replay := func(b *testing.B, handler func() func(*replication.BinlogEvent) error) {
		for b.Loop() {
			p, handle := readerParser(r.SyncerConfig(FlavorMariaDB)), handler()
			for _, data := range raw {
				ev, err := p.Parse(data)
				if err == nil {
					err = handle(ev)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	}
	b.Run("go-mysql", func(b *testing.B) {
		b.ReportAllocs()
		replay(b, func() func(*replication.BinlogEvent) error {
			return func(*replication.BinlogEvent) error { return nil }
		})
	})
	b.Run("rowcast", func(b *testing.B) {
		b.ReportAllocs()
		sdb, err := openDB(&cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer sdb.Close()
		f, _ := newFilter(&cfg)
		tables := newTableCache(&sqlLoader{db: sdb, flavor: FlavorMariaDB}, f, FlavorMariaDB, false, zerolog.Nop())
		n := 0
		replay(b, func() func(*replication.BinlogEvent) error {
			gs, _ := mysql.ParseGTIDSet(FlavorMariaDB, start.GTIDSet)
			s := &stream{flavor: FlavorMariaDB, set: gs, seq: 1, tables: tables, filter: f,
				emit:       func(context.Context, *pipeline.Event) error { n++; return nil },
				onPosition: func(string, uint64) {}}
			return func(ev *replication.BinlogEvent) error {
				return s.handle(b.Context(), ev, eventOffset(ev.Header), s.crcLen)
			}
		})
		if n != rows*b.N {
			b.Fatalf("%d rows emitted, want %d", n, rows*b.N)
		}
	})
}

// benchBinlog creates table in a new database and fills it with rows rows,
// in 20 transactions, and returns the database, where its binlog starts and
// the reader's config.
func benchBinlog(b *testing.B, table string, fill func(testing.TB, *sql.DB, int, int), rows int) (string, Start, Config) {
	dbName := testenv.CreateDatabase(b, testenv.Master)
	db := testenv.DBAt(b, testenv.Master, dbName)
	testenv.Exec(b, db, table)
	start := Start{GTIDSet: binlogPos(b, db), NextTxnSeq: 1}
	fill(b, db, rows, rows/20)
	return dbName, start, testConfig(b, dbName)
}

// captureBinlog reads the raw events of the binlog from start to the XID
// after the rows-th row of dbName.
func captureBinlog(b *testing.B, r *Reader, start Start, dbName string, rows int) [][]byte {
	sc := r.SyncerConfig(FlavorMariaDB)
	sc.RawModeEnabled = true
	syncer := replication.NewBinlogSyncer(sc)
	defer syncer.Close()
	set, _ := mysql.ParseGTIDSet(FlavorMariaDB, start.GTIDSet)
	st, err := syncer.StartSyncGTID(set)
	if err != nil {
		b.Fatal(err)
	}
	var raw [][]byte
	p := replication.NewBinlogParser()
	p.SetFlavor(FlavorMariaDB)
	for n, done := 0, false; !done; { // to the XID after the last row
		ev, err := st.GetEvent(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		raw = append(raw, bytes.Clone(ev.RawData))
		if ev.Header.EventType == replication.ROTATE_EVENT {
			continue
		}
		full, err := p.Parse(ev.RawData)
		if err != nil {
			b.Fatal(err)
		}
		if re, ok := full.Event.(*replication.RowsEvent); ok && string(re.Table.Schema) == dbName {
			n += len(re.Rows)
		}
		done = n == rows && full.Header.EventType == replication.XID_EVENT
	}
	return raw
}

// readerParser is a binlog parser with the reader's settings sc, a fresh
// rows decoder included.
func readerParser(sc replication.BinlogSyncerConfig) *replication.BinlogParser {
	p := replication.NewBinlogParser()
	p.SetFlavor(FlavorMariaDB)
	p.SetParseTime(sc.ParseTime)
	p.SetTimestampStringLocation(sc.TimestampStringLocation)
	p.SetUseDecimal(sc.UseDecimal)
	p.SetUseFloatWithTrailingZero(sc.UseFloatWithTrailingZero)
	p.SetRenderJSONAsMySQLText(sc.RenderJSONAsMySQLText)
	p.SetVerifyChecksum(sc.VerifyChecksum)
	p.SetRowsEventDecodeFunc(sc.RowsEventDecodeFunc)
	return p
}
