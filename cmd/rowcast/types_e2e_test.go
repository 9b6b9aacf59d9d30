package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// TestTypeMatrixReplicates replicates every MariaDB column type with edge
// values (inserted, updated, deleted, NULL) through Kafka into both replicas,
// and compares master and replicas by checksum: HEX of every value, NULL
// distinct from empty.
func TestTypeMatrixReplicates(t *testing.T) {
	r := startReplication(t, "run")
	database, p := r.database, r.proc

	db := testenv.DBAt(t, testenv.Master, database)
	defs := []string{"id INT PRIMARY KEY"}
	names := []string{"id"}
	for _, c := range testenv.TypeMatrix {
		defs = append(defs, fmt.Sprintf("`%s` %s NULL", c.Name, strings.TrimSuffix(c.Def, " NULL")))
		names = append(names, "`"+c.Name+"`")
	}
	testenv.Exec(t, db, "SET SESSION sql_mode = ''", "CREATE TABLE tm ("+strings.Join(defs, ", ")+")")
	for row := 0; row < 4; row++ {
		vals := []string{fmt.Sprint(row + 1)}
		for _, c := range testenv.TypeMatrix {
			vals = append(vals, c.Values[row])
		}
		testenv.Exec(t, db, "INSERT INTO tm ("+strings.Join(names, ", ")+") VALUES ("+strings.Join(vals, ", ")+")")
	}
	testenv.Exec(t, db,
		"INSERT INTO tm (id) VALUES (5)", // every other column NULL
		// An update that swaps edge values between rows, and a delete.
		"BEGIN",
		"UPDATE tm t1 JOIN tm t2 ON t1.id = 3 AND t2.id = 2 SET "+setFrom("t1", "t2"),
		"DELETE FROM tm WHERE id = 4",
		"COMMIT",
		"UPDATE tm SET id = 40 WHERE id = 1", // a primary-key change
	)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rowcast run output:\n%s", p.out.String())
		}
	})
	waitConverged(t, database, 2*time.Minute)
	p.stop(t)
}

func setFrom(dst, src string) string {
	var sets []string
	for _, c := range testenv.TypeMatrix {
		sets = append(sets, fmt.Sprintf("%s.`%s` = %s.`%s`", dst, c.Name, src, c.Name))
	}
	return strings.Join(sets, ", ")
}
