package source

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	drv "github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/dbtls"
	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// readView is an InnoDB consistent read view held open on a connection of
// its own, with the binlog position whose state it shows: the master's state
// after every transaction up to (file, pos), whose executed GTID set is set.
// Why this gives positioned chunks: docs/DESIGN.md, "Snapshots".
type readView struct {
	conn     *sql.Conn
	set      mysql.GTIDSet
	file     string
	pos      uint32
	serverID uint32
	at       time.Time // the master's clock when the view opened
	// savepoint: ROLLBACK TO it after each chunk releases the table's
	// metadata lock while the view stays open, as mysqldump relies on, on
	// MySQL; MariaDB keeps the locks until the view ends.
	savepoint bool
}

// snapshotSession is how a snapshot connection is set up: UTC for
// TIMESTAMP, results in each column's own character set (converted to UTF-8
// by the same decoders as the binlog's values), a server that waits for a
// reader held up by Kafka, and repeatable read (a consistent snapshot needs
// it).
var snapshotSession = map[string]string{
	"time_zone":             "'+00:00'",
	"character_set_results": "binary",
	"net_write_timeout":     "600",
	"sql_mode":              "''",
}

// openSnapshotDB opens the pool a snapshot reads through: the view's
// connection and one for the table definitions.
func openSnapshotDB(cfg *Config) (*sql.DB, error) {
	c := drv.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = cfg.User, cfg.Password, "tcp", cfg.Addr
	c.TLS = dbtls.ForAddr(cfg.TLS, cfg.Addr)
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 10*time.Second, 5*time.Minute, 30*time.Second
	c.InterpolateParams = true // text protocol: the values parsed as the server prints them
	c.Params = snapshotSession
	conn, err := drv.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(1)
	return db, nil
}

// openView opens a read view on a connection of db and reads its position.
func openView(ctx context.Context, db *sql.DB, flavor string) (*readView, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot connection: %v", ErrStream, err)
	}
	v := &readView{conn: conn}
	if _, err = conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err == nil {
		if flavor == FlavorMariaDB {
			err = v.startMariaDB(ctx)
		} else {
			err = v.startMySQL(ctx)
		}
	}
	if err == nil {
		err = v.readClock(ctx)
	}
	if err != nil {
		v.close()
		return nil, fmt.Errorf("open a read view: %w", err)
	}
	return v, nil
}

// startMariaDB opens the view without a lock: MariaDB tells the binlog
// position of a consistent snapshot (Binlog_snapshot_file and _position)
// and BINLOG_GTID_POS turns it into the GTID position there.
func (v *readView) startMariaDB(ctx context.Context) error {
	if _, err := v.conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return err
	}
	status, err := statusRows(ctx, v.conn, "SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return err
	}
	v.file = status["Binlog_snapshot_file"]
	pos, err := strconv.ParseUint(status["Binlog_snapshot_position"], 10, 32)
	if err != nil || v.file == "" {
		return fmt.Errorf("%w: no binlog snapshot position (%v): is log_bin on?", ErrMasterSetup, status)
	}
	v.pos = uint32(pos)
	var gtid sql.NullString
	if err := v.conn.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", v.file, v.pos).Scan(&gtid); err != nil {
		return err
	}
	if !gtid.Valid {
		return fmt.Errorf("%w: BINLOG_GTID_POS(%q, %d) is NULL", ErrProtocol, v.file, v.pos)
	}
	return v.parseSet(FlavorMariaDB, gtid.String)
}

// startMySQL opens the view under a global read lock held for the few
// statements that read the position, as mysqldump --single-transaction
// --source-data does (MySQL has no lock-free way; it needs RELOAD). Not
// tested here: the local stack runs MariaDB.
func (v *readView) startMySQL(ctx context.Context) error {
	if _, err := v.conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
		return fmt.Errorf("%w: FLUSH TABLES WITH READ LOCK (a snapshot of MySQL needs RELOAD): %v", ErrPrivilege, err)
	}
	defer v.conn.ExecContext(context.WithoutCancel(ctx), "UNLOCK TABLES")
	if _, err := v.conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return err
	}
	status, err := statusRows(ctx, v.conn, "SHOW BINARY LOG STATUS")
	if mysqlerr.Is(err, mysql.ER_PARSE_ERROR) { // before 8.4
		status, err = statusRows(ctx, v.conn, "SHOW MASTER STATUS")
	}
	if err != nil {
		return err
	}
	v.file = status["File"]
	pos, _ := strconv.ParseUint(status["Position"], 10, 32)
	v.pos = uint32(pos)
	return v.parseSet(FlavorMySQL, strings.ReplaceAll(status["Executed_Gtid_Set"], "\n", ""))
}

func (v *readView) parseSet(flavor, s string) error {
	set, err := mysql.ParseGTIDSet(flavor, s)
	if err != nil {
		return fmt.Errorf("%w: snapshot GTID set %q: %v", ErrProtocol, s, err)
	}
	v.set = set
	return nil
}

// readClock reads the master's server_id and clock, stamped on the
// snapshot's messages, and sets the savepoint.
func (v *readView) readClock(ctx context.Context) error {
	var unix int64
	if err := v.conn.QueryRowContext(ctx, "SELECT @@server_id, UNIX_TIMESTAMP()").Scan(&v.serverID, &unix); err != nil {
		return err
	}
	v.at = time.Unix(unix, 0).UTC()
	_, err := v.conn.ExecContext(ctx, "SAVEPOINT rowcast_snapshot")
	v.savepoint = err == nil
	return err
}

// release drops the metadata locks the view's statements took since it
// opened (MySQL; not MariaDB); the view itself stays.
func (v *readView) release(ctx context.Context) error {
	_, err := v.conn.ExecContext(ctx, "ROLLBACK TO SAVEPOINT rowcast_snapshot")
	return err
}

// close ends the view and returns its connection.
func (v *readView) close() {
	if v == nil || v.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v.conn.ExecContext(ctx, "ROLLBACK")
	v.conn.Close()
	v.conn = nil
}

// String names the view's position, for logs.
func (v *readView) String() string {
	return fmt.Sprintf("%s:%d (%s)", v.file, v.pos, v.set)
}

// statusRows reads a statement's first row as column name -> value, or the
// Variable_name/Value rows of a SHOW STATUS.
func statusRows(ctx context.Context, conn *sql.Conn, query string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		addStatus(out, cols, vals)
	}
	return out, rows.Err()
}

// addStatus adds one row: a Variable_name/Value pair, or every column.
func addStatus(out map[string]string, cols []string, vals []sql.NullString) {
	if len(cols) == 2 && strings.EqualFold(cols[0], "Variable_name") {
		out[vals[0].String] = vals[1].String
		return
	}
	if len(out) > 0 {
		return
	}
	for i, c := range cols {
		out[c] = vals[i].String
	}
}
