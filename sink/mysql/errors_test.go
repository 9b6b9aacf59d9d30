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

// TestHumanErrors: errors that need an operator stop the worker with the
// exact offset, position, table and fix, even when the failing row was in
// the middle of a multi-row batch; what was committed before stays.
func TestHumanErrors(t *testing.T) {
	cols := []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}}
	cases := []struct {
		name  string
		build func(s *sinktest.Script, r *replica)
		want  []string // substrings of the error
		is    error
	}{{
		name: "DataTooLong",
		build: func(s *sinktest.Script, r *replica) {
			for i := int64(1); i <= 5; i++ {
				v := "short"
				if i == 4 {
					v = strings.Repeat("x", 11)
				}
				s.Insert("t", i, v)
			}
			s.Commit()
		},
		want: []string{"offset 5 (e1/t2/r3)", ".t (op c)", "1406", "fix: a value is too long"},
	}, {
		name: "UnknownTable",
		build: func(s *sinktest.Script, r *replica) {
			s.Table("missing", cols, 0)
			s.Insert("missing", int64(1), "a")
			s.Commit()
		},
		want: []string{"offset 2 (e1/t2/r0/last)", ".missing (op c)", "1146", "fix: the table does not exist on the replica"},
	}, {
		name: "RowMissing",
		build: func(s *sinktest.Script, r *replica) {
			s.Insert("t", int64(10), "a")
			s.Insert("t", int64(11), "b")
			s.Insert("t", int64(12), "c")
			s.Commit()
			// The replica diverges: someone deletes a row behind rowcast's back.
			s.Append(&pipeline.Event{Kind: pipeline.KindHeartbeat})
			s.Delete("t", int64(10))
			s.Delete("t", int64(11))
			s.Delete("t", int64(12))
			s.Commit()
		},
		want: []string{"offset 7 (e1/t3/r1)", "has no row with key (id=11)", "fix: the replica has diverged"},
		is:   sink.ErrRowMissing,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newReplica(t, testenv.Replica1)
			r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NOT NULL)")
			s := sinktest.NewScript(r.db)
			s.Table("t", cols, 0)
			s.Insert("t", int64(100), "before")
			s.Commit()
			c.build(s, r)
			in := sinktest.NewInput(s.Msgs)
			in.Live = true // commit each transaction: what precedes the error stays
			if c.name == "RowMissing" {
				in.Hook = func(o int64) {
					if o == 5 { // the heartbeat: rows 10-12 are committed
						testenv.Exec(t, r.root, "DELETE FROM `t` WHERE `id`=11")
					}
				}
			}
			w, err := sinktest.RunWorker(context.Background(), t, r.target(t), in, sink.WorkerConfig{}, nil)
			checkStopped(t, w, err, c.want, c.is)
			if got := r.Rows(t, "t"); len(got) == 0 || got[0] != "100|before" {
				t.Errorf("committed rows lost: %v", got)
			}
		})
	}
}

// checkStopped checks that the worker stopped with an error holding every
// one of want and, if is is not nil, wrapping is.
func checkStopped(t *testing.T, w *sink.Worker, err error, want []string, is error) {
	t.Helper()
	if err == nil {
		t.Fatal("the worker did not stop")
	}
	for _, sub := range want {
		if !strings.Contains(err.Error(), sub) {
			t.Errorf("error %q\ndoes not contain %q", err, sub)
		}
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error %v is not %v", err, is)
	}
	if st := w.Status(); st.State != sink.StateError || st.TxnSeq < 1 {
		t.Errorf("status %+v", st)
	}
}
