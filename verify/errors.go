package verify

import "errors"

var (
	// ErrBehind means the replica did not reach the master's position of a
	// check in time, so a difference could be neither confirmed nor
	// dismissed.
	ErrBehind = errors.New("the replica is behind the master")
	// ErrNoTable means a table to verify does not exist (on the replica: the
	// difference is the whole table).
	ErrNoTable = errors.New("no such table")
	// ErrNoCheckpoint means the replica holds no checkpoint for the topic,
	// so nothing tells how far it has applied.
	ErrNoCheckpoint = errors.New("the replica has no checkpoint")
	// ErrConfig is a setting verify cannot work with.
	ErrConfig = errors.New("verify config")
	// ErrMasterUnknown means the current master could not be determined
	// (Config.Locate failed): verify does not compare with a master it is
	// not sure of.
	ErrMasterUnknown = errors.New("the current master cannot be determined")
	// ErrMasterMoved means the replica has applied a newer master generation
	// (epoch) than the master verify compares with: a promotion happened.
	ErrMasterMoved = errors.New("the master changed")
)
