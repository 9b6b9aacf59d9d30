// Package pipeline is rowcast's event model and wire format: the position of an
// event in the master's commit order, the event itself, and the Codec that
// writes it as a changelog message and reads it back. Moving the messages
// through Kafka is the changelog package's job. It imports no other package
// of rowcast.
package pipeline

import (
	"fmt"
	"time"
)

// Kind says what a message carries.
type Kind uint8

// Message kinds. Only KindRow and KindDDL belong to a source transaction; the
// others are control messages.
const (
	KindRow       Kind = iota + 1 // one row change
	KindDDL                       // a schema change, in commit order with the rows
	KindHeartbeat                 // the reader is alive; carries the master's clock
	KindEpoch                     // a new master generation starts here
	KindSnapshot                  // snapshot start or end marker
)

var kindNames = [...]string{"", "row", "ddl", "heartbeat", "epoch", "snapshot"}

func (k Kind) String() string { return nameOf(kindNames[:], k, "kind") }

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) { return parseName[Kind](kindNames[:], s, "message kind") }

// Op is a row operation, spelled as Debezium spells it.
type Op byte

// Row operations.
const (
	OpInsert Op = 'c'
	OpUpdate Op = 'u'
	OpDelete Op = 'd'
	OpRead   Op = 'r' // a row read by a snapshot
)

func (o Op) String() string { return string(o) }

// Position is where a message stands in the changelog, independent of Kafka
// offsets: a retried produce or a transaction republished after a crash has the
// same Position as its first copy, so sinks recognise and skip it.
//
// Positions order by (Epoch, TxnSeq, Row). TxnSeq increases by one per published
// source transaction and continues across reader restarts and promotions (it is
// read back from the topic), so it alone orders transactions; Epoch fences
// events from an older master generation.
type Position struct {
	Epoch  uint64 `json:"epoch"`
	TxnSeq uint64 `json:"txn_seq"`
	Row    uint64 `json:"row"`  // index of the message within its transaction
	Last   bool   `json:"last"` // the transaction's last message
}

func (p Position) String() string {
	s := fmt.Sprintf("e%d/t%d/r%d", p.Epoch, p.TxnSeq, p.Row)
	if p.Last {
		s += "/last"
	}
	return s
}

// Less orders positions by transaction and row, ignoring the epoch: TxnSeq is
// global across epochs.
func (p Position) Less(q Position) bool {
	if p.TxnSeq != q.TxnSeq {
		return p.TxnSeq < q.TxnSeq
	}
	return p.Row < q.Row
}

// ValueKind says how a column's values are represented in memory and on the
// wire. Source maps every MySQL/MariaDB type to one of these; sinks convert
// back. The mapping is documented in docs/FORMAT.md.
type ValueKind uint8

// Value kinds. The Go type each is held in, in Event.Before and Event.After,
// is given beside it; a NULL is always nil.
const (
	VInt       ValueKind = iota + 1 // int64: TINYINT..BIGINT signed
	VUint                           // uint64: unsigned integers, BIGINT UNSIGNED exactly
	VFloat                          // float64 holding a FLOAT (32-bit) value
	VDouble                         // float64: DOUBLE
	VDecimal                        // string: DECIMAL, exact, e.g. "-12.3400"
	VString                         // string: CHAR, VARCHAR, TEXT (UTF-8)
	VBytes                          // []byte: BINARY, VARBINARY, BLOB; base64 on the wire
	VDate                           // string: "2006-01-02", zero dates kept as "0000-00-00"
	VDateTime                       // string: "2006-01-02 15:04:05[.ffffff]", no zone
	VTimestamp                      // string: "2006-01-02 15:04:05[.ffffff]" in UTC
	VTime                           // string: "[-]HHH:MM:SS[.ffffff]"
	VYear                           // int64
	VBit                            // uint64: BIT(n), n <= 64
	VEnum                           // string: the member's text ("" for the error value 0)
	VSet                            // string: members joined by ","
	VJSON                           // string: the JSON text
	VGeometry                       // []byte: MySQL internal form (4-byte SRID + WKB)
)

var valueKindNames = [...]string{"", "int", "uint", "float", "double", "decimal", "string",
	"bytes", "date", "datetime", "timestamp", "time", "year", "bit", "enum", "set", "json", "geometry"}

func (k ValueKind) String() string { return nameOf(valueKindNames[:], k, "valuekind") }

// ParseValueKind is the inverse of ValueKind.String.
func ParseValueKind(s string) (ValueKind, error) {
	return parseName[ValueKind](valueKindNames[:], s, "value kind")
}

// nameOf is names[v], or type(v) for 0 and values without a name.
func nameOf[T ~uint8](names []string, v T, typ string) string {
	if int(v) < len(names) && v != 0 {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, uint8(v))
}

// parseName is the value named s in names (0 has no name); what says what
// is parsed, in the error.
func parseName[T ~uint8](names []string, s, what string) (T, error) {
	for i, n := range names {
		if i > 0 && n == s {
			return T(i), nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q: %w", what, s, ErrMalformed)
}

// Column describes one column of a row event.
type Column struct {
	Name string
	Kind ValueKind
	// SQLType is the column's type as information_schema.COLUMNS.COLUMN_TYPE
	// spells it, e.g. "decimal(10,2)" or "bigint(20) unsigned".
	SQLType string
}

// Table is the shape of a table as one row event saw it. Events of one table
// share the same *Table until a DDL changes it, so it must not be modified.
type Table struct {
	Database string
	Name     string
	Columns  []Column
	// PrimaryKey holds indexes into Columns. Empty when the table has none;
	// sinks then match rows on the whole before image.
	PrimaryKey []int
}

// Event is one changelog message in memory.
type Event struct {
	Kind Kind
	Pos  Position

	// Source transaction identity, on every message of a transaction.
	GTID string // "uuid:n" (MySQL) or "domain-server-seq" (MariaDB)
	// GTIDSet is the master's whole executed GTID set after this transaction.
	// Set on the transaction's last message, on heartbeats and on epoch records.
	GTIDSet string
	Flavor  string // "mysql" or "mariadb"
	// ServerID is the master's server_id that wrote the transaction.
	ServerID uint32
	// CommitTime is the source commit time (binlog header, second precision).
	CommitTime time.Time
	// File and Offset locate the event in the master's binlog, for operators.
	File   string
	Offset uint32

	// Row events.
	Table  *Table
	Op     Op
	Before []any // nil for inserts; aligned with Table.Columns
	After  []any // nil for deletes

	// DDL events: the schema the statement ran in, and the statement.
	Database  string
	Statement string
	// Session is the master session's settings the DDL statement ran
	// under; nil in messages written before rowcast recorded it.
	Session *Session

	// Epoch records.
	Epoch *EpochRecord

	// Skip, on a heartbeat, records a transaction an operator had the
	// reader leave out.
	Skip *SkipRecord

	// Snapshot markers: "start" or "end". A start marker of a table carries
	// the table's definition (SHOW CREATE TABLE) in Statement and its
	// database in Database.
	Snapshot string
}

// EpochRecord starts a new master generation. From its offset on, sinks ignore
// every event whose epoch is lower.
type EpochRecord struct {
	Epoch  uint64 `json:"epoch"`
	Master string `json:"master"` // node name from the config
	// StartGTIDSet is the new master's executed GTID set when it was promoted:
	// the reader resumes from it.
	StartGTIDSet string `json:"start_gtid_set"`
	// Flavor of the new master.
	Flavor string `json:"flavor"`
	// TxnSeq is the last transaction sequence published before the promotion;
	// the new master's first transaction gets TxnSeq+1.
	TxnSeq uint64 `json:"txn_seq"`
}

// InTxn reports whether the message belongs to a transaction: a source
// transaction's rows and DDL, and snapshot markers, which are transactions of
// one message each so that sinks apply them once, with a checkpoint. (A
// snapshot's rows are KindRow messages in transactions of their own.)
func (e *Event) InTxn() bool { return e.Kind == KindRow || e.Kind == KindDDL || e.Kind == KindSnapshot }

// KeyValues returns the primary key values of a row event, from the after image,
// or from the before image of a delete.
func (e *Event) KeyValues() []any {
	if e.Table == nil {
		return nil
	}
	img := e.keyImage()
	out := make([]any, len(e.Table.PrimaryKey))
	for i, c := range e.Table.PrimaryKey {
		if c < len(img) {
			out[i] = img[c]
		}
	}
	return out
}

// keyImage is the image the key is taken from: the after image, or the
// before image of a delete.
func (e *Event) keyImage() []any {
	if e.After != nil {
		return e.After
	}
	return e.Before
}
