package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// Session is the connection read_only is set on: a *sql.Conn, or the
// Target's recorded one in tests.
type Session interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readOnlyRefresh is how often a held read_only is checked again: another
// session may have turned it off.
const readOnlyRefresh = 10 * time.Second

// holdLockWait bounds how long SET GLOBAL read_only=ON waits for running
// statements (MariaDB waits as FLUSH TABLES does); a timeout is retried.
const holdLockWait = 30

// ReadOnly keeps a server read-only while tables on it are being loaded (a
// snapshot's or a clone's), for every user but those that may write through
// read_only, such as rowcast's, whatever sink.protect_replicas says, and
// then puts read_only back OFF unless it was ON before the loading began.
// docs/DESIGN.md, "Replica protection".
type ReadOnly struct {
	schema  string // the bookkeeping schema, whose checkpoint table the write check uses
	log     zerolog.Logger
	held    bool // the server is held read-only
	putBack bool // read_only goes back OFF when the hold ends
	checked time.Time
}

// NewReadOnly returns a ReadOnly for a server whose bookkeeping schema
// (with its checkpoint table) is schema.
func NewReadOnly(schema string, log zerolog.Logger) *ReadOnly {
	return &ReadOnly{schema: schema, log: log}
}

// Held reports whether the server is held read-only.
func (r *ReadOnly) Held() bool { return r.held }

// Hold makes the server read-only, unless it is already, and checks that
// the session's user still writes through it; if not, read_only is put
// back and the error names the privilege to grant. fresh says that the
// loading begins now: a read_only found ON was set before it and stays ON
// after it. Otherwise the loading was under way before this process saw
// it, and a read_only found ON is taken for the one it set.
func (r *ReadOnly) Hold(ctx context.Context, s Session, fresh bool) error {
	on, mariadb, err := readOnlyState(ctx, s)
	if err != nil {
		return fmt.Errorf("read read_only: %w", err)
	}
	r.checked = time.Now()
	switch {
	case on && r.held:
	case on && fresh:
		r.log.Info().Msg("the replica starts loading tables and read_only is ON already: it stays ON after the loading")
	case on:
		r.putBack = true
		r.log.Info().Msg("the replica is loading tables and read_only is ON: it goes OFF when the loading ends (sink.protect_replicas keeps it ON)")
	default:
		if err := r.turnOn(ctx, s, mariadb); err != nil {
			return err
		}
		r.putBack = true
		r.log.Info().Msg("the replica is loading tables: read_only=ON until it is done (users that may write through it, like rowcast's, still write)")
	}
	r.held = true
	return nil
}

// turnOn sets read_only and checks the write through it.
func (r *ReadOnly) turnOn(ctx context.Context, s Session, mariadb bool) error {
	if err := setReadOnly(ctx, s, mariadb, true); err != nil {
		return fmt.Errorf("keep the replica read-only while it loads tables: %w; GRANT %s ON *.* to the user", err, setPrivilege(mariadb))
	}
	err := checkWriteThrough(ctx, s, r.schema)
	if err == nil {
		return nil
	}
	if perr := setReadOnly(ctx, s, mariadb, false); perr != nil {
		r.log.Warn().Err(perr).Msg("could not put read_only back OFF: SET GLOBAL read_only=OFF by hand")
	}
	if refusedByReadOnly(err) {
		return fmt.Errorf("keep the replica read-only while it loads tables: the user cannot write through read_only: "+
			"GRANT %s ON *.* to it (and keep super_read_only off): %w", writePrivilege(mariadb), err)
	}
	return fmt.Errorf("keep the replica read-only while it loads tables: write check: %w", err)
}

// Refresh holds read_only again when it was last checked a while ago.
func (r *ReadOnly) Refresh(ctx context.Context, s Session) error {
	if !r.held || time.Since(r.checked) < readOnlyRefresh {
		return nil
	}
	return r.Hold(ctx, s, false)
}

// Release ends the hold: read_only goes back OFF unless it was ON before.
func (r *ReadOnly) Release(ctx context.Context, s Session) error {
	if !r.held {
		return nil
	}
	r.held = false
	if !r.putBack {
		r.log.Info().Msg("the replica's tables are loaded; read_only was ON before: it stays ON")
		return nil
	}
	_, mariadb, err := readOnlyState(ctx, s)
	if err == nil {
		err = setReadOnly(ctx, s, mariadb, false)
	}
	if err != nil {
		r.held = true // released again at the next chance
		return fmt.Errorf("put read_only back OFF after loading tables: %w", err)
	}
	r.putBack = false
	r.log.Info().Msg("the replica's tables are loaded: read_only=OFF again, as it was")
	return nil
}

// readOnlyState reads read_only and whether the server is MariaDB.
func readOnlyState(ctx context.Context, s Session) (on, mariadb bool, err error) {
	var version string
	err = s.QueryRowContext(ctx, "SELECT @@global.read_only, VERSION()").Scan(&on, &version)
	return on, isMariaDB(version), err
}

// setReadOnly sets read_only, waiting at most holdLockWait seconds on
// MariaDB for running statements.
func setReadOnly(ctx context.Context, s Session, mariadb, on bool) error {
	q := "SET GLOBAL read_only=OFF"
	if on {
		q = "SET GLOBAL read_only=ON"
		if mariadb {
			q = fmt.Sprintf("SET STATEMENT lock_wait_timeout=%d FOR %s", holdLockWait, q)
		}
	}
	_, err := s.ExecContext(ctx, q)
	return err
}

// checkWriteThrough writes nothing to the bookkeeping schema: it fails when
// read_only stops the session's user.
func checkWriteThrough(ctx context.Context, s Session, schema string) error {
	probe := "UPDATE " + quoteIdent(schema) + ".`checkpoint` SET `next_offset`=`next_offset` WHERE 1=0"
	_, err := s.ExecContext(ctx, probe)
	return err
}

// refusedByReadOnly reports the errors of a write that read_only stops.
func refusedByReadOnly(err error) bool {
	return mysqlerr.Is(err, gomysql.ER_OPTION_PREVENTS_STATEMENT, gomysql.ER_READ_ONLY_MODE)
}

// setPrivilege is what a user needs to set read_only; writePrivilege, to
// write through it.
func setPrivilege(mariadb bool) string {
	if mariadb {
		return "READ_ONLY ADMIN"
	}
	return "SYSTEM_VARIABLES_ADMIN"
}

func writePrivilege(mariadb bool) string {
	if mariadb {
		return "READ_ONLY ADMIN"
	}
	return "CONNECTION_ADMIN"
}
