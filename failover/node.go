package failover

import (
	"context"
	"database/sql"
	"time"

	"github.com/rowcast/rowcast/config"
)

// execer sends statements to a node: *sql.DB, *sql.Conn and *sql.Tx satisfy
// it. The steps send every statement through a node's execer, so that tests
// can record their order (statements_test.go).
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// txn is an open transaction: *sql.Tx satisfies it.
type txn interface {
	execer
	Commit() error
	Rollback() error
}

// recorder wraps what a node sends statements through: its pool, its
// sessions and its transactions. Tests set one; it is nil otherwise.
type recorder interface {
	wrap(node string, ex execer) execer
	wrapTx(node string, tx txn) txn
}

// node is a small pool of connections to one mysql node.
type node struct {
	name string
	db   *sql.DB
	rec  recorder
}

// openNode opens n and checks within timeout that it answers.
func openNode(ctx context.Context, n config.Node, timeout time.Duration, rec recorder) (*node, error) {
	db, err := n.Open(ctx, timeout)
	if err != nil {
		return nil, err
	}
	return &node{name: n.Name, db: db, rec: rec}, nil
}

// ex sends statements on any connection of the pool.
func (n *node) ex() execer {
	if n.rec == nil {
		return n.db
	}
	return n.rec.wrap(n.name, n.db)
}

// session runs fn on one connection of its own, for statements that set
// session variables.
func (n *node) session(ctx context.Context, fn func(execer) error) error {
	conn, err := n.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var ex execer = conn
	if n.rec != nil {
		ex = n.rec.wrap(n.name, conn)
	}
	return fn(ex)
}

// begin starts a transaction.
func (n *node) begin(ctx context.Context) (txn, error) {
	tx, err := n.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if n.rec == nil {
		return tx, nil
	}
	return n.rec.wrapTx(n.name, tx), nil
}

func (n *node) close() error { return n.db.Close() }
