package failover

import "errors"

// Sentinel errors of the failover package.
var (
	// ErrLeaseHeld: another actor holds the promotion lease.
	ErrLeaseHeld = errors.New("the promotion lease is held by another actor")
	// ErrNoQuorum: fewer than a majority of the mysql nodes could be
	// written, so the lease (or the epoch index) cannot be trusted.
	ErrNoQuorum = errors.New("no majority of the mysql nodes")
	// ErrLostRace: another promotion wrote its epoch record first.
	ErrLostRace = errors.New("another promotion won")
	// ErrLoss: an old master holds transactions that never reached the
	// topic (rejoin).
	ErrLoss = errors.New("the old master holds transactions that never reached the topic")
)
