package mysql

import (
	"context"
	"errors"
	"testing"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// keepDigests makes a Target keep transaction digests, as the service's.
func keepDigests(c *Config) { c.KeepDigests = true }

// TestRefusedAndDuplicates on a real replica: refused messages are recorded
// in the skip table and the real transactions around them applied; the
// transactions' digests are kept with the checkpoint, so that a copy of an
// applied transaction that differs stops a restarted worker; a DDL that is
// no schema statement of a replicated object stops it too.
func TestRefusedAndDuplicates(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL)")
	s := sinktest.NewScript(r.db)
	s.Table("t", []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}}, 0)
	for i := int64(1); i <= 5; i++ {
		s.Insert("t", i, "a")
		s.Insert("t", i+100, "b")
		s.Commit()
	}
	var msgs []sink.Message
	for i, m := range s.Msgs {
		m.Sum = uint64(i) + 1
		msgs = append(msgs, m)
		if i == 1 { // between the two rows of transaction 1
			msgs = append(msgs, sink.Message{Refused: changelog.ErrUnsigned})
		}
	}
	ctx := context.Background()
	if _, err := sinktest.RunWorker(ctx, t, r.target(t, keepDigests), sinktest.NewInput(msgs), sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	sinktest.Compare(t, r, s)
	var n int
	r.root.QueryRow("SELECT COUNT(*) FROM "+quoteIdent(r.schema)+".`skipped` WHERE `offset` = 2 AND `operator` = ?", sink.RefusedBy).Scan(&n)
	var digests int
	r.root.QueryRow("SELECT COUNT(*) FROM " + quoteIdent(r.schema) + ".`applied_txns`").Scan(&digests)
	if n != 1 || digests != 5 {
		t.Fatalf("skip records of offset 2: %d, digests kept: %d; want 1 and 5", n, digests)
	}

	// A copy of transaction 2 (both rows) whose second row differs.
	first := -1
	for i, m := range msgs {
		if m.Event != nil && m.Event.Pos.TxnSeq == 2 && first < 0 {
			first = i
		}
	}
	dup := []sink.Message{msgs[first], msgs[first+1]}
	dup[1].Sum++
	in := sinktest.NewInput(append(append([]sink.Message{}, msgs...), dup...))
	_, err := sinktest.RunWorker(ctx, t, r.target(t, keepDigests), in, sink.WorkerConfig{}, nil)
	if !errors.Is(err, sink.ErrDuplicateDiffers) {
		t.Fatalf("a differing copy after a restart: %v", err)
	}

	s.DDL("GRANT SELECT ON *.* TO CURRENT_USER")
	grant := append(append([]sink.Message{}, msgs...), s.Msgs[len(s.Msgs)-1])
	_, err = sinktest.RunWorker(ctx, t, r.target(t), sinktest.NewInput(grant), sink.WorkerConfig{DDLInclude: []string{"^" + r.db + `\.`}}, nil)
	if !errors.Is(err, sink.ErrDDLRefused) {
		t.Fatalf("a GRANT in the changelog: %v", err)
	}
}
