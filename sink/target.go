// Package sink applies the changelog to one replica. A Worker reads messages
// from an Input (a Kafka consumer in production, a slice in tests), decides
// what to apply, skip or refuse, and drives a Target (a MySQL/MariaDB replica
// in sink/mysql, ClickHouse elsewhere) through transactions that each end with
// the checkpoint.
//
// The worker is where exactly-once apply is decided (docs/DESIGN.md,
// "Exactly-once apply" and "Positions"). Targets only apply what they are
// given and store the checkpoint with it.
package sink

import (
	"context"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
)

// Target is one replica kind (MySQL, ClickHouse). The Worker drives it from a
// single goroutine; a Target need not be safe for concurrent use.
//
// A Target must be reusable after an error: the Worker retries transient
// failures by calling Rollback (which may fail on a dead connection) and then
// Open again, which must reconnect as needed.
type Target interface {
	// Open prepares the target (connection, bookkeeping tables, protection)
	// and returns the stored checkpoint; found is false for a new replica.
	// It is called at start and again after every transient failure, so it
	// must be idempotent.
	Open(ctx context.Context) (st checkpoint.State, found bool, err error)
	// Begin starts a target transaction.
	Begin(ctx context.Context) error
	// ApplyRows applies consecutive row events of ONE table and one op class
	// (inserts, updates and snapshot reads; or deletes), in order, inside the
	// open transaction. An update that changes the primary key must be
	// applied as a delete of the old key and an upsert of the new one, in
	// order. The Target must not keep rows after it returns.
	ApplyRows(ctx context.Context, rows []*pipeline.Event) error
	// ApplyRowsLenient is ApplyRows for a table that a snapshot in the
	// changelog is loading (between its start and end markers): a delete
	// that finds no row does nothing, an update that finds none inserts its
	// after image, an insert of an existing key replaces the row.
	// docs/DESIGN.md, "Bootstrap", says why that is exact.
	ApplyRowsLenient(ctx context.Context, rows []*pipeline.Event) error
	// ApplyDDL runs a DDL statement outside any transaction (the Worker has
	// committed what was open) and stores st, the checkpoint after it. A
	// target that cannot make both atomic records st.DDLPending-style
	// progress so that a restart knows the statement may have run.
	ApplyDDL(ctx context.Context, ev *pipeline.Event, st checkpoint.State) error
	// StartSnapshot applies a table's snapshot start marker (ev.Table,
	// ev.Database, and ev.Statement, the table's CREATE TABLE): outside any
	// transaction, it replaces the table with an empty one of that
	// definition; then, in one transaction, it records the table's bootstrap
	// (checkpoint.ModeSnapshot) and stores st, the checkpoint after the
	// marker. A crash in between makes the Worker call it again, so
	// replacing the table must be idempotent.
	StartSnapshot(ctx context.Context, ev *pipeline.Event, st checkpoint.State) error
	// EndBootstrap deletes the bootstrap entry of db.table in the open
	// transaction, so that it commits with the checkpoint that passes the
	// snapshot's end marker or the clone's floor.
	EndBootstrap(ctx context.Context, db, table string) error
	// Bootstrap returns the bootstrap entries of the Worker's topic (tables a
	// snapshot or rowcast clone is still loading), by "db.table"; nil or
	// empty when none. The Worker calls it after Open and after every
	// rollback, outside any transaction.
	Bootstrap(ctx context.Context) (map[string]checkpoint.Bootstrap, error)
	// RecordSkip records an operator skip in the open transaction, so that
	// the record commits with the checkpoint that moves past the message.
	RecordSkip(ctx context.Context, s checkpoint.Skip) error
	// Commit writes st in the open transaction, then commits it.
	Commit(ctx context.Context, st checkpoint.State) error
	// Rollback abandons the open transaction, if any.
	Rollback(ctx context.Context) error
	// Close releases the target's connections.
	Close() error
}

// Message is one changelog message as the Worker reads it.
type Message struct {
	// Offset of the message in its topic partition.
	Offset int64
	// Event is the decoded message; nil when Err is set.
	Event *pipeline.Event
	// Err is set when the message could not be decoded (pipeline.ErrMalformed).
	// The Worker stops on it unless the operator skips that offset.
	Err error
	// Size is the message's size in bytes (key and value), used to bound
	// batches; 0 when unknown (the Worker then estimates it).
	Size int
	// Refused is set when the message failed the signature check
	// (changelog.ErrUnsigned, changelog.ErrBadSignature): it is not
	// rowcast's, Event is nil, and the Worker records it and goes on
	// without applying or following it.
	Refused error
	// Sum is the digest of the message's key and value (MessageDigest), 0
	// when unknown: a transaction's digest, kept with the checkpoint, is
	// compared with a duplicate's.
	Sum uint64
}

// Input is where the Worker reads messages.
type Input interface {
	// Next blocks until the next message is available, ctx is done, or the
	// input ends (ErrEndOfInput).
	Next(ctx context.Context) (Message, error)
	// SeekTo makes the next Next return the message at offset. (Not named
	// Seek: go vet reserves that name for io.Seeker's signature.)
	SeekTo(offset int64) error
	// Buffered is the number of messages ready without waiting. 0 means the
	// next Next may block, so the Worker commits what it holds first.
	Buffered() int
}
