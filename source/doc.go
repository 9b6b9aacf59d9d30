// Package source reads a MySQL or MariaDB master's binlog and emits its row
// changes and DDL as pipeline events, grouped into source transactions, in
// commit order.
//
// # Start-up
//
// The binlog must be ROW with a FULL row image and FULL row metadata, with
// GTIDs. Reader.Check verifies that and the replication user's privileges;
// Reader.CheckResume (which Run calls first) verifies that the binlog a resume
// position needs still exists and that the position is in the master's
// history. Neither ever lets the reader continue over a gap.
//
// # Transactions and positions
//
// A source transaction runs from its GTID event (MySQL GTID, MariaDB GTID) to
// its XID event or QUERY "COMMIT"; a DDL is a transaction of its own (MariaDB
// flags it standalone; in MySQL it is a GTID event followed by one QUERY and
// no BEGIN). Each row of a rows event is one message (an update carries the
// before and after image), each DDL one message. The messages of a transaction
// share Position{Epoch, TxnSeq} and count Row from 0; the last carries
// Last=true and the master's whole executed GTID set after the transaction.
// TxnSeq grows by one per transaction that publishes at least one message: a
// transaction whose rows are all filtered out takes no TxnSeq, but its GTID
// joins the set. Only one message is ever held back (to learn whether it is
// the last), so a transaction of any size streams in bounded memory.
//
// # Values
//
// Every value is converted to the Go type of its pipeline.ValueKind, NULL
// stays nil:
//
//	TINYINT..BIGINT           VInt int64; UNSIGNED: VUint uint64 (exact maxima)
//	DECIMAL, NUMERIC          VDecimal string with the column's scale, "-12.3400"
//	FLOAT                     VFloat float64 holding the float32 exactly
//	DOUBLE                    VDouble float64
//	BIT(n)                    VBit uint64
//	DATE                      VDate "2006-01-02", zero date "0000-00-00" kept
//	DATETIME(fsp)             VDateTime "2006-01-02 15:04:05.ffffff", fsp digits
//	TIMESTAMP(fsp)            VTimestamp, same form, in UTC; zero kept
//	TIME(fsp)                 VTime "[-]HHH:MM:SS.ffffff", fsp digits
//	YEAR                      VYear int64 (0 for 0000)
//	CHAR, VARCHAR, TEXT       VString UTF-8 (utf8mb4, utf8mb3, ascii as is; latin1
//	                          converted as MySQL's cp1252; other charsets fail
//	                          closed unless Config.RawUnsupportedCharsets)
//	BINARY, VARBINARY, BLOB   VBytes; BINARY(n) regains the trailing zero bytes
//	                          that the binlog drops
//	ENUM                      VEnum member text, "" for the error value 0
//	SET                       VSet members joined by ","
//	JSON (MySQL)              VJSON text as mysqld renders it
//	JSON (MariaDB)            VJSON: a LONGTEXT with a json_valid(col) CHECK
//	GEOMETRY and subtypes     VGeometry internal form: 4-byte SRID + WKB
//	INET4, INET6, UUID        VString in the server's text form (MariaDB)
//	VECTOR, unknown types     refused with ErrUnsupported, naming the column
//
// CHAR keeps what the server stores: trailing spaces are not part of the value.
//
// # Schema
//
// The TABLE_MAP event (with FULL metadata: names, signedness, charsets,
// ENUM/SET members, geometry type, primary key) is the truth for a table's
// shape, because the binlog may be older than the current schema.
// information_schema only enriches columns whose name and type family match:
// COLUMN_TYPE, MariaDB's JSON and INET4/INET6/UUID. When the table has changed
// or was dropped since the event was written, those columns are described from
// the event alone (LONGTEXT text, BINARY bytes, a synthesized type name) and a
// warning is logged. The cache of table definitions is dropped on every DDL.
//
// # Snapshots
//
// Reader.Snapshot queues a SnapshotJob: the stream emits its tables between
// two transactions, each chunk of rows read in an InnoDB read view whose
// binlog position is known (view.go) and emitted where the stream reaches
// that position, with a start and an end marker per table. The values are
// those the binlog path gives for the same columns (snapshot_values.go).
// Reader.PrepareSnapshot opens one view for an initial snapshot that goes
// out before the binlog stream starts. Why chunks are exact where they are
// emitted: docs/DESIGN.md, "Snapshots".
//
// # Filtering
//
// Config.Include and Config.Exclude match "db.table". Rows of the
// bookkeeping schema are never published, nor its DDL. DDL is matched by the
// table it names when a cheap parse finds one, else by its schema (see
// Config.Exclude).
package source
