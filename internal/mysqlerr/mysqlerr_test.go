package mysqlerr

import (
	"fmt"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

func TestCode(t *testing.T) {
	dup := fmt.Errorf("apply: %w", &mysql.MySQLError{Number: gomysql.ER_DUP_ENTRY})
	if got := Code(dup); got != 1062 {
		t.Fatalf("Code(wrapped 1062) = %d", got)
	}
	if Code(fmt.Errorf("plain")) != 0 {
		t.Fatal("Code of a non-server error is not 0")
	}
	if !Is(dup, gomysql.ER_LOCK_DEADLOCK, gomysql.ER_DUP_ENTRY) || Is(dup, gomysql.ER_LOCK_DEADLOCK) {
		t.Fatal("Is does not match exactly the codes given")
	}
	if !Missing(&mysql.MySQLError{Number: 1146}) || !Missing(&mysql.MySQLError{Number: 1049}) || Missing(dup) {
		t.Fatal("Missing is not exactly 1146 and 1049")
	}
}
