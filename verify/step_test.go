package verify

import (
	"database/sql"
	"slices"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/internal/testenv"
)

// TestSteppedChunks walks integer keys whose values are far from dense:
// negative keys, a dense stretch, a sparse one (the step grows), then a dense
// one right after it (one chunk then holds many more rows than ChunkRows, and
// is split before its rows are listed), and unsigned keys at both ends of
// their range (the step must not overflow). Rows changed, missing and extra,
// also below the master's smallest key and above its largest, are all found
// by key, exactly as with keyset bounds, and repaired.
func TestSteppedChunks(t *testing.T) {
	database := steppedTables(t)
	want := map[string]string{
		"s": sortedList("id=-9223372036854775808 missing, id=-9223372036854775807 extra, id=-7 changed, id=50 changed, id=17000 changed, " +
			"id=30007 missing, id=30150 changed, id=30500 extra, id=9223372036854775806 extra"),
		"u": sortedList("id=18446744073709551614 changed, id=18446744073709551613 extra"),
	}
	cfg := baseConfig(database)
	cfg.ChunkRows = 7
	for _, keyset := range []bool{false, true} {
		cfg.KeysetBounds = keyset
		rep := run(t, cfg)
		for name, w := range want {
			tr := table(t, rep, name)
			if got := diffList(tr); got != w || tr.Error != "" {
				t.Fatalf("keyset %v, %s: %s %s\nwant %s\n%s", keyset, name, got, tr.Error, w, report(rep))
			}
		}
		s := table(t, rep, "s")
		if s.Rows != 352 {
			t.Errorf("keyset %v: %d rows of s compared, want 352", keyset, s.Rows)
		}
		t.Logf("keyset %v: %d chunks", keyset, s.Chunks)
	}
	cfg.KeysetBounds, cfg.Repair = false, true
	rep := run(t, cfg)
	if !rep.Equal() {
		t.Fatalf("repair left differences:\n%s", report(rep))
	}
	if s := table(t, rep, "s"); s.Repaired != 9 {
		t.Fatalf("s: %d rows repaired, want 9\n%s", s.Repaired, report(rep))
	}
	cfg.Repair = false
	if rep := run(t, cfg); !rep.Equal() {
		t.Fatalf("after the repair:\n%s", report(rep))
	}
}

// steppedTables makes the tables of TestSteppedChunks on db1 and db2, and
// changes rows of the replica's.
func steppedTables(t *testing.T) string {
	database, master, replica := sides(t)
	q := "`" + database + "`."
	schema := []string{
		"CREATE TABLE " + q + "s (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(10) NOT NULL)",
		"CREATE TABLE " + q + "u (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, v INT NULL)",
	}
	rows := []string{
		"INSERT INTO " + q + "s SELECT CAST(seq AS SIGNED) - 21, CONCAT('n', seq) FROM " + q + "seq_1_to_20", // -20..-1
		"INSERT INTO " + q + "s SELECT seq, CONCAT('d', seq) FROM " + q + "seq_1_to_100",                     // dense
		"INSERT INTO " + q + "s SELECT seq * 1000, CONCAT('s', seq) FROM " + q + "seq_1_to_30",               // sparse
		"INSERT INTO " + q + "s SELECT 30000 + seq, CONCAT('e', seq) FROM " + q + "seq_1_to_200",             // dense again
		"INSERT INTO " + q + "u VALUES (0, 1), (1, 2), (18446744073709551600, 3), (18446744073709551614, NULL), (18446744073709551615, 5)",
		"INSERT INTO " + q + "s VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max')",
	}
	for _, db := range []*sql.DB{master, replica} {
		testenv.Exec(t, db, schema...)
		testenv.Exec(t, db, rows...)
	}
	testenv.Exec(t, replica,
		"DELETE FROM "+q+"s WHERE id = -9223372036854775808",
		"UPDATE "+q+"s SET v = 'x' WHERE id IN (-7, 50, 17000, 30150)",
		"DELETE FROM "+q+"s WHERE id = 30007",
		"INSERT INTO "+q+"s VALUES (-9223372036854775807, 'low'), (30500, 'gap'), (9223372036854775806, 'high')",
		"UPDATE "+q+"u SET v = 4 WHERE id = 18446744073709551614",
		"INSERT INTO "+q+"u VALUES (18446744073709551613, 9)",
	)
	return database
}

// sortedList sorts a list "a, b, c". Differences are compared as sets:
// they are listed chunk by chunk, and within a chunk the master's rows before
// the replica's extra ones; where the stepped chunks fall depends on how fast
// the parallel workers observed earlier chunks, so two neighbouring keys may
// share a chunk or not.
func sortedList(list string) string {
	s := strings.Split(list, ", ")
	slices.Sort(s)
	return strings.Join(s, ", ")
}

// diffList lists a table's differences as "key kind", sorted.
func diffList(tr TableReport) string {
	var s []string
	for _, d := range tr.Diffs {
		s = append(s, d.KeyString()+" "+d.Kind)
	}
	return sortedList(strings.Join(s, ", "))
}

// TestTwoRowsChangedAlike changes two rows of one chunk the same way (the
// same bytes at the same places of texts of the same length): the XOR of bare
// CRC32s, pt-table-checksum's summary, cancels out; verify's does not.
func TestTwoRowsChangedAlike(t *testing.T) {
	database, master, replica := sides(t)
	create := "CREATE TABLE `" + database + "`.alike (id INT NOT NULL PRIMARY KEY, s CHAR(3) NOT NULL)"
	testenv.Exec(t, master, create, "INSERT INTO `"+database+"`.alike VALUES (10, 'aaa'), (11, 'aaa'), (12, 'zzz')")
	testenv.Exec(t, replica, create, "INSERT INTO `"+database+"`.alike VALUES (10, 'bbb'), (11, 'bbb'), (12, 'zzz')")
	tb, err := describe(t.Context(), master, database, "alike")
	if err != nil {
		t.Fatal(err)
	}
	bare := "SELECT BIT_XOR(CRC32(" + tb.canonical() + ")) FROM " + tb.quoted()
	var m, r string
	if err := master.QueryRow(bare).Scan(&m); err != nil {
		t.Fatal(err)
	}
	if err := replica.QueryRow(bare).Scan(&r); err != nil {
		t.Fatal(err)
	}
	if m != r {
		t.Fatalf("the bare XOR of CRC32 differs (%s, %s): the test no longer shows the cancellation", m, r)
	}
	cfg := baseConfig(database)
	cfg.ChunkRows = 100
	rep := run(t, cfg)
	if tr := table(t, rep, "alike"); tr.Differences != 2 || tr.Chunks != 1 || rep.Hash != HashCRC32 {
		t.Fatalf("alike: %s", report(rep))
	}
}

// TestDuplicateRowsAreSummed: a table without a usable key may hold a row
// twice; XOR would cancel pairs out (master A A B, replica B C C), so such a
// table is summed.
func TestDuplicateRowsAreSummed(t *testing.T) {
	database, master, replica := sides(t)
	create := "CREATE TABLE `" + database + "`.dup (a INT NULL, b VARCHAR(4) NULL)"
	testenv.Exec(t, master, create, "INSERT INTO `"+database+"`.dup VALUES (1, 'a'), (1, 'a'), (2, 'b')")
	testenv.Exec(t, replica, create, "INSERT INTO `"+database+"`.dup VALUES (2, 'b'), (3, 'c'), (3, 'c')")
	rep := run(t, baseConfig(database))
	if tr := table(t, rep, "dup"); tr.Differences != 1 || tr.Rows != 3 || rep.Equal() {
		t.Fatalf("dup: %s", report(rep))
	}
}
