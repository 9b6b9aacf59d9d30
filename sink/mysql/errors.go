package mysql

import "errors"

// Sentinel errors of the MySQL target.
var (
	// ErrNonTransactional is a replica table whose engine cannot roll back:
	// its rows cannot commit with the checkpoint (engine.go).
	ErrNonTransactional = errors.New("table engine is not transactional")
	// ErrLocked is a second worker for one replica and checkpoint: another
	// session holds the worker lock (lock.go).
	ErrLocked = errors.New("another worker holds the replica's worker lock")
	// ErrDDLUndecided is a DDL that may have run before a restart and cannot
	// safely run again, nor be told applied (rerun.go).
	ErrDDLUndecided = errors.New("cannot tell whether the DDL ran before the restart")
)
