package mysql

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"slices"
	"testing"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestBigRows: rows of at least bigRowBytes go alone through a prepared
// statement, in order with the small rows around them, also when an update
// moves one to another key; no statement text carries them.
func TestBigRows(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` LONGBLOB NULL)")
	big := func(c byte) []byte { return bytes.Repeat([]byte{c, 0, '\'', '\\'}, bigRowBytes/4+1) }
	s := sinktest.NewScript(r.db)
	s.Table("t", []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VBytes}}, 0)
	s.Insert("t", int64(1), []byte("small"))
	s.Insert("t", int64(2), big('a'))
	s.Insert("t", int64(3), []byte("small"))
	s.Commit()
	s.Update("t", []any{int64(2)}, int64(5), big('b'))
	s.Update("t", []any{int64(3)}, int64(3), big('c'))
	s.Delete("t", int64(1))
	s.Commit()
	rec := runOK(t, r.target(t), s.Msgs)

	want := []string{"3|" + sum(big('c')), "5|" + sum(big('b'))}
	if got := queryStrings(t, r.root, "SELECT CONCAT(id, '|', MD5(v)) FROM "+q(r.db, "t")+" ORDER BY id"); !slices.Equal(got, want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
	for _, stmt := range rec.get() {
		if len(stmt) >= bigRowBytes {
			t.Fatalf("a %d-byte statement carried a big row: %.80s...", len(stmt), stmt)
		}
	}
}

func sum(b []byte) string { return fmt.Sprintf("%x", md5.Sum(b)) }
