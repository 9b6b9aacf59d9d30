package clone

import "errors"

var (
	// ErrNodes: --from or --to names a node that cannot take that role.
	ErrNodes = errors.New("cannot clone between these nodes")
	// ErrSource: the source holds no rowcast checkpoint for the topic (the
	// master, or a node that is not a replica), so the copy's position in
	// the topic would not be known.
	ErrSource = errors.New("cannot clone from this node")
	// ErrNotEmpty: the target holds rows in the replicated databases, or a
	// rowcast checkpoint, and --overwrite was not given.
	ErrNotEmpty = errors.New("the target is not empty")
	// ErrTable: a replicated table that the clone cannot copy faithfully.
	ErrTable = errors.New("cannot copy a table")
	// ErrLoad: the target did not take a batch of rows as sent.
	ErrLoad = errors.New("the target did not load the rows as sent")
	// ErrUnstable: the source's replicated tables kept changing (DDL) while
	// the clone tried to open a read view.
	ErrUnstable = errors.New("the source's tables keep changing")
)
