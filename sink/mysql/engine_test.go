package mysql

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// allowNonTransactional accepts replica tables that cannot roll back.
func allowNonTransactional(c *Config) { c.AllowNonTransactional = true }

// TestNonTransactionalTable: rows of a replica table whose engine cannot
// roll back (MyISAM, Aria) stop the worker before anything is written to
// it, with an error that names the table, its engine and the fix; with
// AllowNonTransactional they are applied.
func TestNonTransactionalTable(t *testing.T) {
	for _, engine := range []string{"MyISAM", "Aria"} {
		t.Run(engine, func(t *testing.T) {
			r := newReplica(t, testenv.Replica1)
			r.Setup(t, "CREATE TABLE `ok` (`id` BIGINT NOT NULL PRIMARY KEY, `v` BIGINT NULL) ENGINE=InnoDB",
				"CREATE TABLE `nt` (`id` BIGINT NOT NULL PRIMARY KEY, `v` BIGINT NULL) ENGINE="+engine)
			cols := []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VInt}}
			s := sinktest.NewScript(r.db)
			s.Table("ok", cols, 0)
			s.Table("nt", cols, 0)
			s.Insert("ok", int64(1), int64(1))
			s.Commit()
			s.Insert("nt", int64(1), int64(1))
			s.Insert("ok", int64(2), int64(2))
			s.Commit()
			ctx := context.Background()
			in := sinktest.NewInput(s.Msgs)
			in.Live = true // a commit per transaction
			_, err := sinktest.RunWorker(ctx, t, r.target(t), in, sink.WorkerConfig{}, nil)
			checkNonTransactional(t, err, "`"+r.db+"`.`nt`", engine)
			if got := r.Count(t, "nt"); got != 0 {
				t.Fatalf("%d rows written to the %s table before the refusal", got, engine)
			}
			sinktest.CompareRows(t, "ok", r.Rows(t, "ok"), []string{"1|1"})

			if _, err := sinktest.RunWorker(ctx, t, r.target(t, allowNonTransactional), sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil); err != nil {
				t.Fatalf("with AllowNonTransactional: %v", err)
			}
			sinktest.CompareRows(t, "nt", r.Rows(t, "nt"), []string{"1|1"})
			sinktest.CompareRows(t, "ok", r.Rows(t, "ok"), []string{"1|1", "2|2"})
		})
	}
}

// checkNonTransactional checks the refusal of table's rows.
func checkNonTransactional(t *testing.T, err error, table, engine string) {
	t.Helper()
	t.Logf("refused: %v", err)
	if !errors.Is(err, ErrNonTransactional) || sink.Classify(err) != sink.Human {
		t.Fatalf("rows of a %s table: %v, want ErrNonTransactional", engine, err)
	}
	for _, want := range []string{table, "the " + engine + " engine", "fix: ALTER TABLE " + table + " ENGINE=InnoDB", "source.exclude",
		"sink.allow_non_transactional"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
