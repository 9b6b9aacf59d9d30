package mysql

import (
	"context"
	"fmt"
	"strings"

	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// Row events in BINLOG statements run through the server's replication
// code, which obeys the replica's slave_exec_mode and slave_skip_errors: a
// delete or update of a missing row, or a duplicate insert, would pass
// silently instead of going to the SQL path. docs/DESIGN.md, "Binary
// apply".

// binErrorSettings reads the replica's replication error settings and
// says why row events must not be used, "" when they are strict. err is a
// failure to read them that is not the server's answer (a lost connection).
func (t *Target) binErrorSettings(ctx context.Context) (string, error) {
	var mode, skip string
	err := t.ex.QueryRowContext(ctx, "SELECT @@GLOBAL.slave_exec_mode, @@GLOBAL.slave_skip_errors").Scan(&mode, &skip)
	if err != nil {
		if mysqlerr.Code(err) == 0 {
			return "", fmt.Errorf("connect: %w", err)
		}
		return fmt.Sprintf("reading slave_exec_mode and slave_skip_errors failed (%v)", err), nil
	}
	return strictErrors(mode, skip), nil
}

// strictErrors says why row events would not stop where SQL does under
// these settings, "" when slave_exec_mode is STRICT and slave_skip_errors
// OFF.
func strictErrors(execMode, skipErrors string) string {
	var why []string
	if !strings.EqualFold(strings.TrimSpace(execMode), "STRICT") {
		why = append(why, fmt.Sprintf("slave_exec_mode=%s (row events would skip missing and duplicate rows)", execMode))
	}
	if s := strings.TrimSpace(skipErrors); s != "" && !strings.EqualFold(s, "OFF") {
		why = append(why, fmt.Sprintf("slave_skip_errors=%s (row events would skip those errors)", skipErrors))
	}
	return strings.Join(why, ", ")
}

// logBinRefusal logs why rows go as SQL ("": they need not), once until
// the reason changes.
func (t *Target) logBinRefusal(why string) {
	if why == t.binWhy {
		return
	}
	t.binWhy = why
	if why == "" {
		return
	}
	t.log.Warn().Str("reason", why).Msg("rows are applied as SQL, not as row events: the replica's replication error settings are not strict; " +
		"SET GLOBAL slave_exec_mode=STRICT (and slave_skip_errors=OFF in its config) for the binary apply")
}
