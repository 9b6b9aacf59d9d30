package checkpoint_test

import (
	"testing"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/testenv"
)

// Digests are saved, replaced when saved again (a replay), read back by
// transaction, and pruned below a bound.
func TestMySQLDigests(t *testing.T) {
	m, ctx := newStore(t)
	db := testenv.DB(t, testenv.Replica1)
	if err := m.InitDigests(ctx, db); err != nil {
		t.Fatal(err)
	}
	save := func(ds []checkpoint.TxnDigest, prune uint64) {
		t.Helper()
		if err := m.SaveDigests(ctx, db, "t", 0, ds, prune); err != nil {
			t.Fatal(err)
		}
	}
	save([]checkpoint.TxnDigest{{TxnSeq: 1, Digest: 11}, {TxnSeq: 2, Digest: 1 << 63}}, 0)
	save([]checkpoint.TxnDigest{{TxnSeq: 2, Digest: 22}, {TxnSeq: 3, Digest: 33}}, 2)
	for seq, want := range map[uint64]uint64{1: 0, 2: 22, 3: 33, 4: 0} {
		got, found, err := m.LoadDigest(ctx, db, "t", 0, seq)
		if err != nil || got != want || found != (want != 0) {
			t.Errorf("digest of %d: %d, %v, %v; want %d", seq, got, found, err, want)
		}
	}
	if _, found, _ := m.LoadDigest(ctx, db, "other", 0, 3); found {
		t.Error("a digest of another topic was found")
	}
}
