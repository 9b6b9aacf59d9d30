// Package mysqlerr names the server errors rowcast acts on. MySQL's codes come
// from go-mysql's list (mysql.ER_*, which ends at 1863); this package adds the
// codes that list lacks (MariaDB's own, MySQL 8's, client-side ones) and one
// way to read a code off an error.
package mysqlerr

import (
	"errors"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

// Codes missing from go-mysql's list.
const (
	ErConnectionKilled         = 1927 // MariaDB: the connection was killed
	ErClientLocalFilesDisabled = 3948 // MySQL 8: LOAD DATA LOCAL refused by the client or server
	ErClientInteractionTimeout = 4031 // MySQL 8: disconnected for inactivity
	ErLoadInfileCapability     = 4166 // MariaDB: LOAD DATA LOCAL is disabled (local_infile=OFF)
	CrServerGone               = 2006 // client: the server has gone away
	CrServerLost               = 2013 // client: lost connection during a query
)

// Code is the server's error number of err, or 0 when err is no server error.
func Code(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// Is reports whether err is a server error with one of codes.
func Is(err error, codes ...uint16) bool {
	c := Code(err)
	if c == 0 {
		return false
	}
	for _, want := range codes {
		if c == want {
			return true
		}
	}
	return false
}

// Missing reports an error that says the table or its schema does not exist.
func Missing(err error) bool {
	return Is(err, gomysql.ER_NO_SUCH_TABLE, gomysql.ER_BAD_DB_ERROR)
}
