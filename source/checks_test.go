package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

func goodMariaDB() checkFacts {
	return checkFacts{
		Addr: "db1:3306", Flavor: FlavorMariaDB, User: "`rowcast`@`%`",
		Vars: map[string]string{"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL",
			"binlog_row_metadata": "FULL", "gtid_strict_mode": "ON"},
		Grants: []string{"GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `rowcast`@`%` IDENTIFIED BY PASSWORD '*X'"},
	}
}

func TestCheckSetupRules(t *testing.T) {
	type want struct {
		problems []string // each must appear in one problem
		warnings []string
	}
	cases := []struct {
		name string
		edit func(*checkFacts)
		want want
	}{
		{"good", func(*checkFacts) {}, want{}},
		{"metadata minimal", func(f *checkFacts) { f.Vars["binlog_row_metadata"] = "MINIMAL" },
			want{problems: []string{"binlog_row_metadata is MINIMAL on db1:3306, rowcast needs FULL: binlog_row_metadata=FULL"}}},
		{"old server", func(f *checkFacts) { delete(f.Vars, "binlog_row_metadata") },
			want{problems: []string{"does not have the variable binlog_row_metadata"}}},
		{"statement", func(f *checkFacts) { f.Vars["binlog_format"] = "MIXED"; f.Vars["binlog_row_image"] = "MINIMAL" },
			want{problems: []string{"binlog_format is MIXED", "binlog_row_image is MINIMAL"}}},
		{"no binlog", func(f *checkFacts) { f.Vars["log_bin"] = "OFF" }, want{problems: []string{"log_bin is OFF"}}},
		{"not strict", func(f *checkFacts) { f.Vars["gtid_strict_mode"] = "OFF" }, want{warnings: []string{"gtid_strict_mode is OFF on db1:3306"}}},
		{"two-phase alter", func(f *checkFacts) { f.Vars["binlog_alter_two_phase"] = "ON" }, want{problems: []string{"binlog_alter_two_phase is ON"}}},
		{"no replication slave", func(f *checkFacts) {
			f.Grants = []string{"GRANT SELECT, BINLOG MONITOR ON *.* TO `rowcast`@`%`"}
		}, want{problems: []string{"lacks REPLICATION SLAVE on db1:3306", "GRANT REPLICATION SLAVE ON *.* TO `rowcast`@`%`", "1045"}}},
		{"nothing", func(f *checkFacts) { f.Grants = []string{"GRANT USAGE ON *.* TO `rowcast`@`%`"} },
			want{problems: []string{"lacks REPLICATION SLAVE", "lacks BINLOG MONITOR", "lacks SELECT"}}},
		{"all privileges", func(f *checkFacts) {
			f.Grants = []string{"GRANT ALL PRIVILEGES ON *.* TO `root`@`%` WITH GRANT OPTION"}
		}, want{}},
		{"db select", func(f *checkFacts) {
			f.Grants = []string{"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `r`@`%`", "GRANT SELECT (a, b), INSERT ON `app`.* TO `r`@`%`", "GRANT `reader` TO `r`@`%`"}
		}, want{warnings: []string{"SELECT only on `app`.*"}}},
		{"role note", func(f *checkFacts) { f.Grants = []string{"GRANT USAGE ON *.* TO `r`@`%`", "GRANT `repl` TO `r`@`%`"} },
			want{problems: []string{"lacks REPLICATION SLAVE", "roles that are not active"}}},
		{"mysql good", func(f *checkFacts) {
			f.Flavor = FlavorMySQL
			f.Vars["gtid_mode"], f.Vars["enforce_gtid_consistency"], f.Vars["binlog_row_value_options"] = "ON", "ON", ""
			f.Grants = []string{"GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `rowcast`@`%`"}
		}, want{}},
		{"mysql gtid off", func(f *checkFacts) {
			f.Flavor = FlavorMySQL
			f.Vars["gtid_mode"], f.Vars["enforce_gtid_consistency"] = "OFF_PERMISSIVE", "WARN"
			f.Vars["binlog_row_value_options"], f.Vars["binlog_transaction_compression"] = "PARTIAL_JSON", "ON"
			f.Grants = []string{"GRANT SELECT, REPLICATION SLAVE ON *.* TO `rowcast`@`%`"}
		}, want{problems: []string{"gtid_mode is OFF_PERMISSIVE", "enforce_gtid_consistency is WARN", "binlog_row_value_options is PARTIAL_JSON", "lacks REPLICATION CLIENT"},
			warnings: []string{"binlog_transaction_compression is ON"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := goodMariaDB()
			tc.edit(&f)
			warnings, problems := checkSetup(f)
			checkProblems(t, problems, tc.want.problems)
			checkWarnings(t, warnings, tc.want.warnings)
		})
	}
}

// checkProblems checks that each of want appears in one of problems (none
// when want is empty), and that each problem is a setup or privilege one.
func checkProblems(t *testing.T, problems []error, want []string) {
	t.Helper()
	if len(want) == 0 && len(problems) > 0 {
		t.Errorf("problems %v, want none", problems)
	}
	all := errors.Join(problems...)
	for _, p := range want {
		if all == nil || !strings.Contains(all.Error(), p) {
			t.Errorf("no problem says %q; got %v", p, all)
		}
	}
	for _, p := range problems {
		if !errors.Is(p, ErrMasterSetup) && !errors.Is(p, ErrPrivilege) {
			t.Errorf("problem %v wraps neither ErrMasterSetup nor ErrPrivilege", p)
		}
	}
}

// checkWarnings checks that the warnings say want, in order.
func checkWarnings(t *testing.T, warnings, want []string) {
	t.Helper()
	if len(warnings) != len(want) {
		t.Errorf("warnings %q, want %q", warnings, want)
	}
	for i, w := range want {
		if i < len(warnings) && !strings.Contains(warnings[i], w) {
			t.Errorf("warning %q does not say %q", warnings[i], w)
		}
	}
}

func TestResumeCheckRules(t *testing.T) {
	const u1, u2 = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4e11fa47-71ca-11e1-9e33-c80aa9429562"
	cases := []struct {
		f    resumeFacts
		want string
		err  error
		says string
	}{
		{resumeFacts{Flavor: FlavorMariaDB, Purged: "", Executed: "0-1-100"}, "0-1-50", nil, ""},
		{resumeFacts{Flavor: FlavorMariaDB, Purged: "0-1-100", Executed: "0-1-200"}, "0-1-100", nil, ""},
		{resumeFacts{Flavor: FlavorMariaDB, Purged: "0-1-100", Executed: "0-1-200", Oldest: "bin.000007"}, "0-1-50", ErrPurged, "domain 0 sequence 51-100 were purged (oldest binlog bin.000007)"},
		{resumeFacts{Flavor: FlavorMariaDB, Purged: "0-1-5", Executed: "0-1-9"}, "", ErrPurged, "domain 0 sequence 1-5"},
		{resumeFacts{Flavor: FlavorMariaDB, Purged: "0-1-5,1-2-7", Executed: "0-1-9,1-2-9"}, "0-1-9", ErrPurged, "domain 1 sequence 1-7"},
		{resumeFacts{Flavor: FlavorMariaDB, Purged: "", Executed: "0-1-150"}, "0-1-200", ErrDiverged, "0-1-200"},
		{resumeFacts{Flavor: FlavorMariaDB, Purged: "", Executed: "0-1-150"}, "0-1-100,5-1-3", ErrDiverged, "5-1-3"},
		{resumeFacts{Flavor: FlavorMySQL, Purged: u1 + ":1-100", Executed: u1 + ":1-200"}, u1 + ":1-150", nil, ""},
		{resumeFacts{Flavor: FlavorMySQL, Purged: u1 + ":1-100", Executed: u1 + ":1-200"}, u1 + ":1-50", ErrPurged, u1 + ":51-100"},
		{resumeFacts{Flavor: FlavorMySQL, Purged: u1 + ":1-100", Executed: u1 + ":1-200"}, u1 + ":1-40:60-150", ErrPurged, u1 + ":41-59"},
		{resumeFacts{Flavor: FlavorMySQL, Purged: u1 + ":1-100," + u2 + ":1-3", Executed: u1 + ":1-200," + u2 + ":1-3"}, u1 + ":1-150", ErrPurged, u2 + ":1-3"},
		{resumeFacts{Flavor: FlavorMySQL, Purged: "", Executed: u1 + ":1-200"}, u1 + ":1-150," + u2 + ":1-5", ErrDiverged, u2 + ":1-5"},
		{resumeFacts{Flavor: FlavorMySQL}, "garbage", ErrConfig, "garbage"},
	}
	for i, tc := range cases {
		err := resumeCheck(tc.f, tc.want)
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("case %d: %v, want %v", i, err, tc.err)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tc.says) {
			t.Errorf("case %d: %q does not say %q", i, err, tc.says)
		}
	}
}

func TestCheckOnMaster(t *testing.T) {
	cfg := testConfig(t, "none")
	r := NewReader(cfg, testLogger(t))
	info, err := r.Check(t.Context())
	if err != nil {
		t.Fatalf("Check on db1: %v", err)
	}
	if !describesMariaDB(info) {
		t.Errorf("info %+v", info)
	}
	if err := r.CheckResume(t.Context(), info.GTIDSet); err != nil {
		t.Errorf("CheckResume(current): %v", err)
	}
	if err := r.CheckResume(t.Context(), "0-1-99999999999"); !errors.Is(err, ErrDiverged) {
		t.Errorf("CheckResume(future): %v, want ErrDiverged", err)
	}
	if err := r.Run(t.Context(), Start{GTIDSet: "0-1-99999999999"}, nil); !errors.Is(err, ErrDiverged) {
		t.Errorf("Run(future): %v, want ErrDiverged", err)
	}
}

// describesMariaDB reports whether Check's info describes a MariaDB master
// with its server id, binlogs and GTID set.
func describesMariaDB(info Info) bool {
	return info.Flavor == FlavorMariaDB && strings.Contains(info.Version, "MariaDB") && info.ServerID != 0 &&
		len(info.BinlogFiles) > 0 && info.BinlogFiles[0].Size != 0 && info.GTIDSet != ""
}

// execNoBinlog runs qs on one connection that does not write the binlog.
func execNoBinlog(t *testing.T, db *sql.DB, qs ...string) {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range append([]string{"SET SESSION sql_log_bin = 0"}, qs...) {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}

// TestCheckUserWithoutReplicationSlave creates a user without REPLICATION
// SLAVE (outside the binlog) and checks that Check names the privilege and
// that Run explains MariaDB's misleading "Access denied".
func TestCheckUserWithoutReplicationSlave(t *testing.T) {
	root := testenv.DB(t, testenv.Master)
	name := testenv.UniqueName(t, "u")
	user := "rc_norepl_" + name[len(name)-8:] // the random suffix; user names are short
	// Keep the account out of the binlog that other tests' readers read.
	execNoBinlog(t, root, fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY 'pw'", user),
		fmt.Sprintf("GRANT SELECT, BINLOG MONITOR ON *.* TO '%s'@'127.0.0.1'", user))
	t.Cleanup(func() { execNoBinlog(t, root, fmt.Sprintf("DROP USER '%s'@'127.0.0.1'", user)) })

	var pos string
	if err := root.QueryRow("SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "none")
	cfg.User, cfg.Password = user, "pw"
	r := NewReader(cfg, testLogger(t))
	_, err := r.Check(t.Context())
	if !errors.Is(err, ErrPrivilege) || !strings.Contains(err.Error(), "lacks REPLICATION SLAVE on "+cfg.Addr) {
		t.Errorf("Check: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err = r.Run(ctx, Start{GTIDSet: pos}, func(context.Context, *pipeline.Event) error { return nil })
	if !errors.Is(err, ErrPrivilege) || !strings.Contains(err.Error(), "REPLICATION SLAVE") || !strings.Contains(err.Error(), "1045") {
		t.Errorf("Run: %v", err)
	}
	t.Logf("Run says: %v", err)
}
