package mysql

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/rowcast/rowcast/sink"
)

// One worker per replica and checkpoint: the apply connection holds a user
// lock (GET_LOCK) for as long as its session lasts, and takes it again on
// every reconnect. docs/DESIGN.md, "One worker per replica".

// lockWait is how long GET_LOCK waits, in seconds: long enough for the
// server to end the session of a worker that just died, or of the
// connection a reconnecting Target dropped.
var lockWait = 5

// maxLockName is MySQL's limit on user lock names.
const maxLockName = 64

// Querier runs a query that returns one row. *sql.Conn is one; a user lock
// belongs to a session, so pass a connection, not a pool.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// LockName is the user lock of the worker that applies a topic's partition
// with its checkpoint in schema: readable, at most 64 characters, unique
// by a hash of the exact names (lock names compare case-insensitively).
func LockName(schema, topic string, partition int32) string {
	p := strconv.Itoa(int(partition))
	sum := sha256.Sum256([]byte(schema + "\x00" + topic + "\x00" + p))
	suffix := ":" + hex.EncodeToString(sum[:6])
	name := "rowcast:" + printable(schema) + "/" + printable(topic) + "/" + p
	if len(name) > maxLockName-len(suffix) {
		name = name[:maxLockName-len(suffix)]
	}
	return name + suffix
}

// lockNameChars are the characters of a name that LockName keeps.
const lockNameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

// printable replaces the characters of s that are not lockNameChars with
// '_'.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(lockNameChars, r) {
			return r
		}
		return '_'
	}, s)
}

// Lock takes the worker lock of (schema, topic, partition) on conn's
// session, waiting a few seconds for it; it lasts until the session ends
// or Unlock. When another session holds it, the error (ErrLocked) names
// that session and says how to stop it.
func Lock(ctx context.Context, conn Querier, schema, topic string, partition int32) error {
	name := LockName(schema, topic, partition)
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, lockWait).Scan(&got); err != nil {
		return fmt.Errorf("take the worker lock %s: %w", name, err)
	}
	if got.Valid && got.Int64 == 1 {
		return nil
	}
	holder, err := LockHolder(ctx, conn, schema, topic, partition)
	if err != nil {
		return fmt.Errorf("take the worker lock %s: %w", name, err)
	}
	return lockedError(name, topic, partition, holder)
}

// Unlock releases the worker lock that conn's session holds.
func Unlock(ctx context.Context, conn Querier, schema, topic string, partition int32) error {
	var released sql.NullInt64
	return conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", LockName(schema, topic, partition)).Scan(&released)
}

// Holder is the session that holds a worker lock.
type Holder struct {
	ID int64
	// User and Host are the session's account and client address, "" when
	// the asking user may not see them (it lacks PROCESS).
	User, Host string
}

func (h *Holder) String() string {
	if h.User == "" {
		return fmt.Sprintf("connection %d (its user and host are hidden: grant PROCESS to the sink's user to see them)", h.ID)
	}
	return fmt.Sprintf("connection %d of %s@%s", h.ID, h.User, h.Host)
}

// LockHolder returns the session that holds the worker lock of (schema,
// topic, partition), nil when none does.
func LockHolder(ctx context.Context, conn Querier, schema, topic string, partition int32) (*Holder, error) {
	var id sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", LockName(schema, topic, partition)).Scan(&id); err != nil || !id.Valid {
		return nil, err
	}
	h := &Holder{ID: id.Int64}
	err := conn.QueryRowContext(ctx, "SELECT USER, HOST FROM information_schema.PROCESSLIST WHERE ID=?", h.ID).Scan(&h.User, &h.Host)
	if err != nil && err != sql.ErrNoRows {
		return nil, err
	}
	return h, nil
}

// lockedError refuses a second worker: who holds the lock, and how to stop
// it.
func lockedError(name, topic string, partition int32, h *Holder) error {
	if h == nil { // released between GET_LOCK's timeout and the question
		err := fmt.Errorf("%w: the worker lock %s of %s[%d] was held by another session until a moment ago", ErrLocked, name, topic, partition)
		return withFix(err, "start this worker again")
	}
	where := "its host"
	if h.Host != "" {
		where = clientHost(h.Host)
	}
	err := fmt.Errorf("%w: another worker applies %s[%d] to this replica: %s holds the worker lock %s",
		ErrLocked, topic, partition, h, name)
	return withFix(err, fmt.Sprintf("stop that worker (rowcast sink, run or replay on %s) before starting this one; "+
		"if no worker runs there any more and its session lingers, KILL %d on the replica", where, h.ID))
}

// clientHost is the host of a PROCESSLIST client address, host:port.
func clientHost(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		if _, err := strconv.Atoi(addr[i+1:]); err == nil {
			return addr[:i]
		}
	}
	return addr
}

// withFix ends err's text with the fix, as sink.ApplyError does, and gives
// sink.Advice the fix.
func withFix(err error, fix string) error {
	return sink.WithAdvice(fmt.Errorf("%w; fix: %s", err, fix), fix)
}
