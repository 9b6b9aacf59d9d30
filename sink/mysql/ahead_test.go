package mysql

import (
	"fmt"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/sink"
)

// TestAheadOfDDL: on a master of a master-master set, a row naming a
// column or table the target lacks is retried (the DDL may come through
// another master's topic); on a read replica it needs a human.
func TestAheadOfDDL(t *testing.T) {
	domain := uint32(3)
	mm, replica := &Target{cfg: Config{OriginDomain: &domain}}, &Target{}
	for _, code := range []uint16{gomysql.ER_BAD_FIELD_ERROR, gomysql.ER_NO_SUCH_TABLE} {
		err := fmt.Errorf("apply: %w", &mysql.MySQLError{Number: code, Message: "x"})
		if c := sink.Classify(mm.aheadOfDDL(err)); c != sink.Transient {
			t.Errorf("master-master, error %d: class %v, want transient", code, c)
		}
		if c := sink.Classify(replica.aheadOfDDL(err)); c != sink.Human {
			t.Errorf("read replica, error %d: class %v, want human", code, c)
		}
	}
	dup := &mysql.MySQLError{Number: gomysql.ER_DUP_ENTRY, Message: "x"}
	if c := sink.Classify(mm.aheadOfDDL(dup)); c != sink.Human {
		t.Errorf("master-master, duplicate key: class %v, want human", c)
	}
}
