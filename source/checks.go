package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	drv "github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/dbtls"
	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// Info describes the master as Check found it.
type Info struct {
	Flavor   string // "mysql" or "mariadb"
	Version  string // SELECT VERSION()
	ServerID uint32 // @@server_id
	// GTIDSet is the master's executed GTID set now: MariaDB
	// @@gtid_binlog_pos, MySQL @@gtid_executed. A reader started from it
	// reads what commits after the check.
	GTIDSet     string
	BinlogFiles []BinlogFile // SHOW BINARY LOGS, oldest first
	// Warnings are settings that work but deserve the operator's attention.
	Warnings []string
}

// BinlogFile is one row of SHOW BINARY LOGS.
type BinlogFile struct {
	Name string
	Size int64
}

// checkFacts is what Check reads from the master; checkSetup, a pure function,
// decides.
type checkFacts struct {
	Addr   string
	Flavor string
	User   string            // CURRENT_USER(), e.g. rowcast@127.0.0.1
	Vars   map[string]string // SHOW GLOBAL VARIABLES, names lower case
	Grants []string          // SHOW GRANTS
}

// OpenDB opens a small pool to the master with the reader's account, for
// what rowcast keeps there (the snapshots table).
func OpenDB(cfg Config) (*sql.DB, error) {
	cfg.setDefaults()
	return openDB(&cfg)
}

// openDB opens a small pool to the master for checks and information_schema.
func openDB(cfg *Config) (*sql.DB, error) {
	c := drv.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = cfg.User, cfg.Password, "tcp", cfg.Addr
	c.TLS = dbtls.ForAddr(cfg.TLS, cfg.Addr)
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 10*time.Second, 30*time.Second, 30*time.Second
	conn, err := drv.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(2)
	db.SetConnMaxIdleTime(time.Minute)
	return db, nil
}

// detectFlavor asks the server what it is.
func detectFlavor(ctx context.Context, db *sql.DB, addr string) (flavor, version string, err error) {
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return "", "", connectError(addr, err)
	}
	if strings.Contains(version, "MariaDB") {
		return FlavorMariaDB, version, nil
	}
	return FlavorMySQL, version, nil
}

func connectError(addr string, err error) error {
	if mysqlerr.Is(err, mysql.ER_ACCESS_DENIED_ERROR) {
		return fmt.Errorf("%w: connect to %s: %v: check User and Password, and TLS (a MariaDB that requires secure transport refuses plaintext with this error too)", ErrConfig, addr, err)
	}
	return fmt.Errorf("%w: connect to %s: %v", ErrStream, addr, err)
}

var checkedVars = []string{"log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata",
	"gtid_mode", "enforce_gtid_consistency", "gtid_strict_mode", "binlog_row_value_options",
	"binlog_transaction_compression", "gtid_binlog_pos", "gtid_executed", "gtid_purged", "server_id",
	"binlog_alter_two_phase"}

// Check verifies that the master can be replicated faithfully and that the
// user has the privileges rowcast needs. The error joins every problem found,
// each naming the setting or privilege, the master's address and the fix.
func (r *Reader) Check(ctx context.Context) (Info, error) {
	cfg := r.cfg
	if err := cfg.Validate(); err != nil {
		return Info{}, err
	}
	db, err := openDB(&cfg)
	if err != nil {
		return Info{}, err
	}
	defer db.Close()
	var info Info
	flavor, version, err := detectFlavor(ctx, db, cfg.Addr)
	if err != nil {
		return info, err
	}
	if cfg.Flavor != "" && cfg.Flavor != flavor {
		return info, fmt.Errorf("%w: Flavor is %q but %s runs %s: set Flavor to %q or leave it empty", ErrConfig, cfg.Flavor, cfg.Addr, version, flavor)
	}
	info.Flavor, info.Version = flavor, version
	f, err := readFacts(ctx, db, cfg.Addr, flavor)
	if err != nil {
		return info, err
	}
	info.ServerID, info.GTIDSet = f.master()
	var problems []error
	info.Warnings, problems = checkSetup(f)
	problems = append(problems, r.checkReplication(ctx, db, f, &info)...)
	return info, errors.Join(problems...)
}

// readFacts reads what checkSetup decides on.
func readFacts(ctx context.Context, db *sql.DB, addr, flavor string) (checkFacts, error) {
	f := checkFacts{Addr: addr, Flavor: flavor}
	if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&f.User); err != nil {
		return f, connectError(addr, err)
	}
	var err error
	if f.Vars, err = globalVariables(ctx, db, addr); err != nil {
		return f, err
	}
	if f.Grants, err = queryStrings(ctx, db, "SHOW GRANTS"); err != nil {
		return f, fmt.Errorf("SHOW GRANTS on %s: %w", addr, err)
	}
	return f, nil
}

// globalVariables reads checkedVars, names lower case.
func globalVariables(ctx context.Context, db *sql.DB, addr string) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('"+strings.Join(checkedVars, "','")+"')")
	if err != nil {
		return nil, fmt.Errorf("read variables of %s: %w", addr, err)
	}
	defer rows.Close()
	vars := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		vars[strings.ToLower(k)] = v
	}
	return vars, nil
}

// master returns the master's server_id and its executed GTID set now.
func (f checkFacts) master() (uint32, string) {
	id, _ := strconv.ParseUint(f.Vars["server_id"], 10, 32)
	set := f.Vars["gtid_executed"]
	if f.Flavor == FlavorMariaDB {
		set = f.Vars["gtid_binlog_pos"]
	}
	return uint32(id), strings.ReplaceAll(set, "\n", "")
}

// checkReplication checks that the reader can register as a replica and list
// the binlogs, and records them in info.
func (r *Reader) checkReplication(ctx context.Context, db *sql.DB, f checkFacts, info *Info) []error {
	cfg := &r.cfg
	var problems []error
	if info.ServerID == cfg.ServerID {
		problems = append(problems, fmt.Errorf("%w: ServerID %d is the server_id of the master %s itself: choose another", ErrConfig, cfg.ServerID, cfg.Addr))
	}
	if ids, err := replicaServerIDs(ctx, db); err == nil && ids[cfg.ServerID] {
		info.Warnings = append(info.Warnings, fmt.Sprintf("a replica with server_id %d is connected to %s now: if it is not an earlier rowcast reader of this pipeline, give rowcast another ServerID, or the master drops one of the two connections",
			cfg.ServerID, cfg.Addr))
	}
	files, err := binlogFiles(ctx, db)
	if err != nil {
		return append(problems, fmt.Errorf("%w: SHOW BINARY LOGS on %s failed (%v): GRANT %s ON *.* TO %s",
			ErrPrivilege, cfg.Addr, err, monitorPriv(f.Flavor), f.User))
	}
	info.BinlogFiles = files
	return problems
}

// replicaServerIDs lists the server_ids of the replicas connected now (SHOW
// SLAVE HOSTS; it needs a privilege rowcast does not otherwise need, so
// callers ignore its error).
func replicaServerIDs(ctx context.Context, db *sql.DB) (map[uint32]bool, error) {
	rows, err := db.QueryContext(ctx, "SHOW SLAVE HOSTS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	col := slices.IndexFunc(cols, func(c string) bool { return strings.EqualFold(c, "Server_id") })
	ids := map[uint32]bool{}
	for rows.Next() {
		id, ok, err := scanServerID(rows, len(cols), col)
		if err != nil {
			return nil, err
		}
		if ok {
			ids[id] = true
		}
	}
	return ids, rows.Err()
}

// scanServerID reads a row of n columns, of which column col (-1: none)
// holds a server_id.
func scanServerID(rows *sql.Rows, n, col int) (uint32, bool, error) {
	vals := make([]sql.NullString, n)
	dest := make([]any, n)
	for i := range vals {
		dest[i] = &vals[i]
	}
	if err := rows.Scan(dest...); err != nil || col < 0 {
		return 0, false, err
	}
	id, err := strconv.ParseUint(vals[col].String, 10, 32)
	return uint32(id), err == nil, nil
}

func queryStrings(ctx context.Context, db *sql.DB, q string) ([]string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func binlogFiles(ctx context.Context, db *sql.DB) ([]BinlogFile, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []BinlogFile
	for rows.Next() {
		var f BinlogFile
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

func monitorPriv(flavor string) string {
	if flavor == FlavorMariaDB {
		return "BINLOG MONITOR"
	}
	return "REPLICATION CLIENT"
}

// CheckResume verifies that the master still has every binlog needed to
// stream from gtidSet, and that gtidSet is part of the master's history. It
// fails with ErrPurged (naming the purged GTIDs and the fix: re-seed the
// replicas or move the start position) or ErrDiverged. Run calls it first.
func (r *Reader) CheckResume(ctx context.Context, gtidSet string) error {
	if err := r.cfg.Validate(); err != nil {
		return err
	}
	db, flavor, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	return checkResume(ctx, db, r.cfg.Addr, flavor, gtidSet)
}

// connect opens a pool to the master and tells its flavor, unless the
// config says it.
func (r *Reader) connect(ctx context.Context) (*sql.DB, string, error) {
	db, err := openDB(&r.cfg)
	if err != nil {
		return nil, "", err
	}
	flavor := r.cfg.Flavor
	if flavor == "" {
		if flavor, _, err = detectFlavor(ctx, db, r.cfg.Addr); err != nil {
			db.Close()
			return nil, "", err
		}
	}
	return db, flavor, nil
}

func checkResume(ctx context.Context, db *sql.DB, addr, flavor, gtidSet string) error {
	f := resumeFacts{Addr: addr, Flavor: flavor}
	files, err := binlogFiles(ctx, db)
	if err != nil {
		return fmt.Errorf("%w: SHOW BINARY LOGS on %s failed (%v): GRANT %s to the replication user", ErrPrivilege, addr, err, monitorPriv(flavor))
	}
	if len(files) == 0 {
		return fmt.Errorf("%w: %s has no binary logs: enable log_bin", ErrMasterSetup, addr)
	}
	f.Oldest = files[0].Name
	if flavor == FlavorMariaDB {
		err = db.QueryRowContext(ctx, "SELECT IFNULL(BINLOG_GTID_POS(?, 4), ''), @@GLOBAL.gtid_binlog_pos", f.Oldest).Scan(&f.Purged, &f.Executed)
	} else {
		err = db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_purged, @@GLOBAL.gtid_executed").Scan(&f.Purged, &f.Executed)
	}
	if err != nil {
		return fmt.Errorf("read the GTID history of %s: %w", addr, err)
	}
	f.Purged = strings.ReplaceAll(f.Purged, "\n", "")
	f.Executed = strings.ReplaceAll(f.Executed, "\n", "")
	return resumeCheck(f, gtidSet)
}
