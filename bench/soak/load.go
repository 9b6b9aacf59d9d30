package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// bankLoad moves money between accounts on the current master and writes
// each transfer into the ledger in the same transaction, as the application
// user. Every transfer has an id of its own: the ledger on the master says
// exactly which committed, also those whose COMMIT got no answer.
type bankLoad struct {
	dbs      map[string]*sql.DB // the application user on each node
	master   atomic.Pointer[string]
	accounts int
	clients  int
	rate     int

	committed  atomic.Int64
	lastCommit atomic.Int64 // unix nanoseconds

	mu        sync.Mutex
	confirmed []int64        // COMMIT acknowledged
	unknown   []int64        // COMMIT sent, no answer: committed or not
	errs      map[string]int // errors the clients saw, by kind

	stop chan struct{}
	wg   sync.WaitGroup
}

func newBankLoad(dbs map[string]*sql.DB, master string, accounts, clients, rate int) *bankLoad {
	l := &bankLoad{dbs: dbs, accounts: accounts, clients: clients, rate: rate, errs: map[string]int{}, stop: make(chan struct{})}
	l.follow(master)
	return l
}

// follow points the writers at a new master, as an operator does after a
// promotion (a proxy, DNS, the application's config).
func (l *bankLoad) follow(master string) { l.master.Store(&master) }

// start runs the clients until stopLoad; ctx bounds each transfer.
func (l *bankLoad) start(ctx context.Context) {
	l.lastCommit.Store(time.Now().UnixNano())
	tick := time.NewTicker(time.Second / time.Duration(l.rate))
	for c := 0; c < l.clients; c++ {
		l.wg.Add(1)
		go l.client(ctx, c, tick.C)
	}
	go func() {
		<-l.stop
		tick.Stop()
	}()
}

// stopLoad stops the clients and waits for their last transfers.
func (l *bankLoad) stopLoad() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *bankLoad) client(ctx context.Context, c int, tick <-chan time.Time) {
	defer l.wg.Done()
	r := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
	for n := int64(1); ; n++ {
		select {
		case <-l.stop:
			return
		case <-ctx.Done():
			return
		case <-tick:
		}
		l.transferOnce(ctx, r, int64(c+1)*1_000_000_000+n)
	}
}

// transferOnce makes one transfer on the master and books its outcome.
func (l *bankLoad) transferOnce(ctx context.Context, r *rand.Rand, id int64) {
	from, to := r.IntN(l.accounts), r.IntN(l.accounts-1)
	if to >= from {
		to++
	}
	node := *l.master.Load()
	sent, err := transfer(ctx, l.dbs[node], node, id, from, to, 1+r.IntN(50))
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		l.confirmed = append(l.confirmed, id)
		l.committed.Add(1)
		l.lastCommit.Store(time.Now().UnixNano())
	case sent:
		l.unknown = append(l.unknown, id)
		l.errs[errKind(err)+" (at COMMIT)"]++
	default:
		l.errs[errKind(err)]++
	}
}

// transfer runs one transfer; sent says whether COMMIT was sent (its outcome
// is unknown when err is not nil).
func transfer(ctx context.Context, db *sql.DB, node string, id int64, from, to, amount int) (sent bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	lo, hi := min(from, to), max(from, to)
	for _, q := range []struct {
		s    string
		args []any
	}{
		{"SELECT id FROM accounts WHERE id IN (?, ?) ORDER BY id FOR UPDATE", []any{lo, hi}},
		{"UPDATE accounts SET balance = balance - ? WHERE id = ?", []any{amount, from}},
		{"UPDATE accounts SET balance = balance + ? WHERE id = ?", []any{amount, to}},
		{"INSERT INTO ledger VALUES (?, ?, ?, ?, ?)", []any{id, from, to, amount, node}},
	} {
		if _, err := tx.ExecContext(ctx, q.s, q.args...); err != nil {
			return false, err
		}
	}
	return true, tx.Commit()
}

// errKind names an error for the report: its server code, or its text.
func errKind(err error) string {
	if c := mysqlerr.Code(err); c != 0 {
		return fmt.Sprintf("error %d", c)
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}

// sinceCommit is how long no transfer committed.
func (l *bankLoad) sinceCommit() time.Duration {
	return time.Since(time.Unix(0, l.lastCommit.Load()))
}

// outcome is the clients' view of the transfers, each list sorted.
func (l *bankLoad) outcome() (confirmed, unknown []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	confirmed, unknown = append([]int64(nil), l.confirmed...), append([]int64(nil), l.unknown...)
	sortIDs(confirmed)
	sortIDs(unknown)
	return confirmed, unknown
}

// errorSummary lists the errors the clients saw, most frequent first.
func (l *bankLoad) errorSummary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	kinds := make([]string, 0, len(l.errs))
	for k := range l.errs {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return l.errs[kinds[i]] > l.errs[kinds[j]] })
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s: %d", k, l.errs[k])
	}
	return strings.Join(parts, "; ")
}

func sortIDs(ids []int64) { sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] }) }

// minus is the ids of a that are not in b; both sorted.
func minus(a, b []int64) []int64 {
	var out []int64
	j := 0
	for _, id := range a {
		for j < len(b) && b[j] < id {
			j++
		}
		if j == len(b) || b[j] != id {
			out = append(out, id)
		}
	}
	return out
}

// merged is the union of two sorted lists of distinct ids, sorted.
func merged(a, b []int64) []int64 {
	out := append(append(make([]int64, 0, len(a)+len(b)), a...), b...)
	sortIDs(out)
	return out
}
