package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	drv "github.com/go-sql-driver/mysql"
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

// openDB opens a small pool to the master for checks and information_schema.
func openDB(cfg *Config) (*sql.DB, error) {
	c := drv.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = cfg.User, cfg.Password, "tcp", cfg.Addr
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
	var me *drv.MySQLError
	if errors.As(err, &me) && me.Number == 1045 {
		return fmt.Errorf("%w: connect to %s: %v: check User and Password", ErrConfig, addr, err)
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
	f := checkFacts{Addr: cfg.Addr, Flavor: flavor, Vars: map[string]string{}}
	if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&f.User); err != nil {
		return info, connectError(cfg.Addr, err)
	}
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('"+strings.Join(checkedVars, "','")+"')")
	if err != nil {
		return info, fmt.Errorf("read variables of %s: %w", cfg.Addr, err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return info, err
		}
		f.Vars[strings.ToLower(k)] = v
	}
	rows.Close()
	if f.Grants, err = queryStrings(ctx, db, "SHOW GRANTS"); err != nil {
		return info, fmt.Errorf("SHOW GRANTS on %s: %w", cfg.Addr, err)
	}
	id, _ := strconv.ParseUint(f.Vars["server_id"], 10, 32)
	info.ServerID = uint32(id)
	info.GTIDSet = f.Vars["gtid_executed"]
	if flavor == FlavorMariaDB {
		info.GTIDSet = f.Vars["gtid_binlog_pos"]
	}
	info.GTIDSet = strings.ReplaceAll(info.GTIDSet, "\n", "")
	var problems []error
	info.Warnings, problems = checkSetup(f)
	if info.ServerID == cfg.ServerID {
		problems = append(problems, fmt.Errorf("%w: ServerID %d is the server_id of the master %s itself: choose another", ErrConfig, cfg.ServerID, cfg.Addr))
	}
	if ids, err := replicaServerIDs(ctx, db); err == nil && ids[cfg.ServerID] {
		info.Warnings = append(info.Warnings, fmt.Sprintf("a replica with server_id %d is connected to %s now: if it is not an earlier rowcast reader of this pipeline, give rowcast another ServerID, or the master drops one of the two connections",
			cfg.ServerID, cfg.Addr))
	}
	if files, err := binlogFiles(ctx, db); err != nil {
		problems = append(problems, fmt.Errorf("%w: SHOW BINARY LOGS on %s failed (%v): GRANT %s ON *.* TO %s",
			ErrPrivilege, cfg.Addr, err, monitorPriv(flavor), f.User))
	} else {
		info.BinlogFiles = files
	}
	return info, errors.Join(problems...)
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
	ids := map[uint32]bool{}
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		for i, c := range cols {
			if strings.EqualFold(c, "Server_id") {
				if id, err := strconv.ParseUint(vals[i].String, 10, 32); err == nil {
					ids[uint32(id)] = true
				}
			}
		}
	}
	return ids, rows.Err()
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
	cfg := r.cfg
	if err := cfg.Validate(); err != nil {
		return err
	}
	db, err := openDB(&cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	flavor := cfg.Flavor
	if flavor == "" {
		if flavor, _, err = detectFlavor(ctx, db, cfg.Addr); err != nil {
			return err
		}
	}
	return checkResume(ctx, db, cfg.Addr, flavor, gtidSet)
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
