package failover

import (
	"context"
	"sync"
	"time"

	"github.com/rowcast/rowcast/config"
)

// ReachDetail is the /healthz detail under which a process reports its
// Reach: what the automatic failover of another host asks it
// (failover.observers).
const ReachDetail = "reach"

// instance names this process in reports, so that an automatic failover
// listed among its own observers does not count itself twice.
var instance = Holder("rowcast")

// Reach is this process's view, as a vantage point of the automatic
// failover, of whether each mysql node of the config answers: every node
// is connected to every failover.check_interval, as the automatic mode
// checks its master.
type Reach struct {
	cfg      *config.Config
	every    time.Duration
	instance string // tests: another process's

	mu    sync.Mutex
	nodes map[string]*nodeView
}

// nodeView is what the checks of one node found.
type nodeView struct {
	ok      bool
	since   time.Time // of the first check in a row with the same outcome
	checked time.Time
	err     string
}

// NewReach returns the view of cfg's mysql nodes from this process.
func NewReach(cfg *config.Config) *Reach {
	return &Reach{cfg: cfg, every: cfg.Failover.CheckInterval.D(), instance: instance, nodes: map[string]*nodeView{}}
}

// Run checks every node every check interval until ctx ends.
func (r *Reach) Run(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		r.checkAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkAll checks every mysql node at once, each within a check interval.
func (r *Reach) checkAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, n := range mysqlNodes(r.cfg) {
		wg.Go(func() {
			err := ping(ctx, n, r.every)
			if ctx.Err() == nil {
				r.note(n.Name, err, time.Now())
			}
		})
	}
	wg.Wait()
}

// note records the outcome of one check of a node.
func (r *Reach) note(name string, err error, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.nodes[name]
	if v == nil || v.ok != (err == nil) {
		v = &nodeView{ok: err == nil, since: at}
		r.nodes[name] = v
	}
	v.checked, v.err = at, ""
	if err != nil {
		v.err = err.Error()
	}
}

// ReachReport is what a vantage point reports on /healthz.
type ReachReport struct {
	// Instance names the process (tag@host:pid).
	Instance string `json:"instance"`
	// Nodes are the mysql nodes checked so far, by name.
	Nodes map[string]NodeReach `json:"nodes"`
}

// NodeReach is the view of one node.
type NodeReach struct {
	// OK is whether the last check connected to the node.
	OK bool `json:"ok"`
	// ForMS is how long every check has had that outcome.
	ForMS int64 `json:"for_ms"`
	// CheckedAgoMS is how long ago the last check ended.
	CheckedAgoMS int64 `json:"checked_ago_ms"`
	// Error is why the last check failed.
	Error string `json:"error,omitempty"`
}

// Report is the view now.
func (r *Reach) Report() ReachReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	rep := ReachReport{Instance: r.instance, Nodes: make(map[string]NodeReach, len(r.nodes))}
	for name, v := range r.nodes {
		rep.Nodes[name] = NodeReach{OK: v.ok, ForMS: now.Sub(v.since).Milliseconds(), CheckedAgoMS: now.Sub(v.checked).Milliseconds(), Error: v.err}
	}
	return rep
}
