package source

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/internal/dbtls"
	"github.com/rowcast/rowcast/pipeline"
)

// Reader streams one master's binlog. Run may be called again after it
// returns, e.g. from Resume() after a stream error; it must not run twice at
// the same time.
type Reader struct {
	cfg Config
	log zerolog.Logger

	mu     sync.Mutex
	resume Start

	snaps *snapQueue

	withheld atomic.Uint64 // account statements not published
}

// NewReader returns a reader of the master cfg describes. cfg's zero fields
// take their defaults; Run and Check validate it.
func NewReader(cfg Config, log zerolog.Logger) *Reader {
	cfg.setDefaults()
	r := &Reader{cfg: cfg, log: log.With().Str("component", "source").Str("master", cfg.Addr).Logger()}
	r.snaps = newSnapQueue(&r.cfg, r.log)
	return r
}

// Position returns the master's executed GTID set after the last transaction
// Run handled completely: all its messages were emitted, or it had none to
// publish. It is "" before Run starts, then Start.GTIDSet until the first
// transaction completes.
func (r *Reader) Position() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resume.GTIDSet
}

// Resume returns where a new Run continues without loss or duplicate:
// Position() and the TxnSeq the next published transaction gets.
func (r *Reader) Resume() Start {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resume
}

// AccountStatementsWithheld counts the account and privilege statements
// that were not published (see Config.ReplicateAccounts).
func (r *Reader) AccountStatementsWithheld() uint64 { return r.withheld.Load() }

// withhold counts an account statement that was not published.
func (r *Reader) withhold() {
	r.withheld.Add(1)
	if r.cfg.OnWithheld != nil {
		r.cfg.OnWithheld()
	}
}

func (r *Reader) setResume(set string, nextSeq uint64) {
	r.mu.Lock()
	r.resume.GTIDSet, r.resume.NextTxnSeq = set, nextSeq
	r.mu.Unlock()
}

// Run streams the binlog after start.GTIDSet and calls emit for every message,
// in commit order, until ctx ends (it returns ctx.Err()), emit fails (it
// returns that error, wrapped), or the stream or the decoding fails.
//
// Reconnection is the caller's: go-mysql's own retry is disabled. After a
// reconnect go-mysql resends the transaction it was reading, and after a break
// between two transactions the one before as well, since it advances its own
// resume set only when the next GTID event arrives (binlogsyncer.go,
// handleEventAndACK): the GTID event would arrive inside an open transaction,
// or a finished transaction would be published again under a new TxnSeq.
// After an error wrapping ErrStream, call Run again with Resume() (a backoff
// in between): the transaction that was cut short is then emitted again from
// its first message under the same positions, which sinks skip as duplicates.
// Every other error needs a human (see the message).
func (r *Reader) Run(ctx context.Context, start Start, emit func(ctx context.Context, ev *pipeline.Event) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("source: panic while reading %s (a bug; please report it with this stack): %v\n%s", r.cfg.Addr, p, debug.Stack())
		}
	}()
	if err := r.cfg.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	r.resume = start
	r.mu.Unlock()
	db, flavor, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	set, s, err := r.newStream(ctx, db, flavor, start, emit)
	if err != nil {
		return err
	}
	// Snapshot work due at the start (the initial snapshot) goes out before
	// the binlog stream opens, which would otherwise wait on it.
	if err := s.snapshotsDue(ctx); err != nil {
		return err
	}
	cfg := r.SyncerConfig(flavor)
	stop := make(chan struct{})
	big := newBigEvents(bigEventBytes, stop)
	if r.cfg.HoldReads != nil {
		big.holdReads(r.cfg.HoldReads, min(maxHoldReads, r.cfg.ReadTimeout/3))
	}
	cfg.RowsEventDecodeFunc = big.wrap(cfg.RowsEventDecodeFunc)
	cfg.Dialer = big.dialer((&net.Dialer{}).DialContext)
	syncer := replication.NewBinlogSyncer(cfg)
	defer syncer.Close()
	defer close(stop) // first: Close waits for a syncer held back by big
	streamer, err := syncer.StartSyncGTID(set)
	if err != nil {
		return r.streamError(err, start.GTIDSet)
	}
	r.log.Info().Str("flavor", flavor).Str("gtid_set", start.GTIDSet).Uint64("next_txn_seq", start.NextTxnSeq).Msg("binlog stream started")
	return r.follow(ctx, streamer, s, big)
}

// newStream checks that the master can stream from start and returns the
// GTID set to ask it for and the stream that turns its events into
// pipeline events.
func (r *Reader) newStream(ctx context.Context, db *sql.DB, flavor string, start Start,
	emit func(ctx context.Context, ev *pipeline.Event) error) (mysql.GTIDSet, *stream, error) {
	cfg := &r.cfg
	if err := checkResume(ctx, db, cfg.Addr, flavor, start.GTIDSet); err != nil {
		return nil, nil, err
	}
	set, err := mysql.ParseGTIDSet(flavor, start.GTIDSet)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: Start.GTIDSet %q is not a %s GTID set: %v", ErrConfig, start.GTIDSet, flavor, err)
	}
	f, err := newFilter(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	skip, err := r.skipGTID(flavor, set)
	if err != nil {
		return nil, nil, err
	}
	s := &stream{
		flavor: flavor, epoch: start.Epoch, emit: emit, seq: start.NextTxnSeq, set: set.Clone(),
		onPosition:  r.setResume,
		onHeartbeat: cfg.OnHeartbeat,
		tables:      newTableCache(&sqlLoader{db: db, flavor: flavor}, f, flavor, cfg.RawUnsupportedCharsets, r.log),
		filter:      f,
		snaps:       r.snaps,
		log:         r.log,
		skipGTID:    skip,
		onSkipped:   func() { r.cfg.SkipGTID = "" }, // once: not again after a reconnect
		accounts:    cfg.ReplicateAccounts,
		onWithheld:  r.withhold,
	}
	r.snaps.flavor = flavor
	return set, s, nil
}

// follow hands every event of the stream to s, until ctx ends or an error.
// A wait for the master also ends when snapshot work is due (snapQueue.wake).
func (r *Reader) follow(ctx context.Context, streamer *replication.BinlogStreamer, s *stream, big *bigEvents) error {
	r.snaps.arm(ctx)
	defer r.snaps.disarm()
	if r.snaps.active.Load() {
		r.snaps.wake() // work queued before this wait could be woken
	}
	var deadline time.Time
	for {
		// go-mysql may hold events already read; stop emitting them once
		// the caller has cancelled.
		if err := ctx.Err(); err != nil {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(r.cfg.ReadTimeout)
		}
		stopStarve := big.awaitNext(s.pending != nil)
		ev, err := r.nextEvent(ctx, streamer, deadline)
		stopStarve()
		if err != nil {
			return err
		}
		if ev == nil {
			// Woken: the time snapshot work takes is no time spent waiting.
			t0 := time.Now()
			if err := s.snapshotsDue(ctx); err != nil {
				return err
			}
			deadline = deadline.Add(time.Since(t0))
			continue
		}
		deadline = time.Time{}
		if err := s.handle(ctx, ev, eventOffset(ev.Header), s.crcLen); err != nil {
			return err
		}
		big.handled(ev, s.pending == nil)
	}
}

// eventOffset is where an event starts in its binlog file.
func eventOffset(h *replication.EventHeader) uint32 {
	if h.LogPos >= h.EventSize {
		return h.LogPos - h.EventSize
	}
	return 0
}

// nextEvent waits for the next binlog event until deadline; nil, nil when
// the wait was woken for snapshot work. The read timeout is enforced here,
// not by go-mysql: go-mysql arms its socket deadline before it hands an
// event over, so a slow emit (Kafka pushing back) would look like a dead
// master. Here only time spent waiting for the master counts.
func (r *Reader) nextEvent(ctx context.Context, streamer *replication.BinlogStreamer, deadline time.Time) (*replication.BinlogEvent, error) {
	wait, cancel := context.WithDeadline(r.snaps.waitCtx(), deadline)
	defer cancel()
	ev, err := streamer.GetEvent(wait)
	switch {
	case err == nil:
		return ev, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case r.snaps.rearm(ctx):
		return nil, nil
	case wait.Err() != nil:
		return nil, fmt.Errorf("%w: nothing from %s for %v although heartbeats were requested every %v: check the network and the master; restart Run from Reader.Resume()",
			ErrStream, r.cfg.Addr, r.cfg.ReadTimeout, r.cfg.HeartbeatPeriod)
	}
	return nil, r.streamError(err, r.Position())
}

// SyncerConfig returns the go-mysql settings Run reads the binlog of a master
// of flavor with, including a fresh rows-event decoder (see rowsDecoder): for
// benchmarks and tools that compare the reader with go-mysql alone. The values
// it decodes are only meant for the reader's converters: temporal and short
// DECIMAL columns come out as packed integers, unsigned integers as signed.
func (r *Reader) SyncerConfig(flavor string) replication.BinlogSyncerConfig {
	host, portStr, _ := net.SplitHostPort(r.cfg.Addr) // validated
	port, _ := strconv.Atoi(portStr)
	return replication.BinlogSyncerConfig{
		ServerID: r.cfg.ServerID,
		Flavor:   flavor,
		Host:     host,
		Port:     uint16(port),
		User:     r.cfg.User,
		Password: r.cfg.Password,
		// The same TLS as the checks' connections: without it go-mysql
		// would stream in plaintext whatever the DSN said.
		TLSConfig: dbtls.ForAddr(r.cfg.TLS, r.cfg.Addr),
		// Values that rowsDecoder leaves to go-mysql come as strings where
		// strings are exact: DECIMAL of more than 8 bytes, whose
		// UseDecimal=false form is the exact digits with the column's scale
		// ("-12.3400"; UseDecimal=true would give a shopspring Decimal that
		// drops trailing zeros), and pre-5.6 DATETIME, TIMESTAMP and TIME,
		// which ParseTime=false gives as the server's text, TIMESTAMP in UTC.
		// ParseTime=true would turn the invalid dates ALLOW_INVALID_DATES
		// stores into other dates.
		ParseTime:                false,
		TimestampStringLocation:  time.UTC,
		UseDecimal:               false,
		UseFloatWithTrailingZero: false,
		// MySQL binary JSON: render as mysqld does (1.0 stays 1.0, key order
		// kept); the default json.Marshal path loses DOUBLE-ness.
		RenderJSONAsMySQLText: true,
		RowsEventDecodeFunc:   newRowsDecoder().decode,
		HeartbeatPeriod:       r.cfg.HeartbeatPeriod,
		ReadTimeout:           0, // see nextEvent
		DisableRetrySync:      true,
		VerifyChecksum:        true,
		EventCacheCount:       r.cfg.EventBuffer,
		Logger:                newSlogLogger(r.log),
	}
}

// plaintextHint names the other cause of a 1045 on a plaintext link:
// MariaDB refuses plaintext this way when it requires secure transport.
func plaintextHint(c *tls.Config) string {
	if c != nil {
		return ""
	}
	return " (or, if the master requires TLS, which it also answers with 1045 in plaintext, configure TLS for the node)"
}

// streamError wraps a failure of the binlog stream with what it probably
// means and what to do.
func (r *Reader) streamError(err error, pos string) error {
	code := uint16(0)
	var me *mysql.MyError
	if errors.As(err, &me) {
		code = me.Code
	} else {
		code = uint16(mysql.ErrorCode(err.Error()))
	}
	switch code {
	case mysql.ER_ACCESS_DENIED_ERROR:
		return fmt.Errorf("%w: %s refused the binlog stream for %s with Access denied (1045). MariaDB answers a missing REPLICATION SLAVE privilege this way, so it need not be the password: run Check, or GRANT REPLICATION SLAVE ON *.* TO the user%s: %v",
			ErrPrivilege, r.cfg.Addr, r.cfg.User, plaintextHint(r.cfg.TLS), err)
	case mysql.ER_MASTER_FATAL_ERROR_READING_BINLOG:
		return fmt.Errorf("%w: %s cannot send the binlog from %q (1236): %v. If binlogs were purged, re-seed the replicas or move the start position; if the position is not in the master's history, check that this is the right master",
			ErrStream, r.cfg.Addr, pos, err)
	}
	return fmt.Errorf("%w: binlog stream from %s after %q: %v: restart Run from Reader.Resume() after a backoff; if it keeps failing, check the network and the master's error log",
		ErrStream, r.cfg.Addr, pos, err)
}
