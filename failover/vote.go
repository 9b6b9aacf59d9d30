package failover

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rowcast/rowcast/config"
)

// vote is one vantage point's view of the master.
type vote struct {
	name string
	kind string // of view: down, up, short (down, not long enough), stale, none (no view of the master), silent (no answer)
	why  string
}

func (v vote) down() bool { return v.kind == "down" }

// tally is the views of the vantage points of one master, this host's
// first. The master is down when a majority sees it down: a partition
// between this host and the master alone promotes nothing
// (docs/DESIGN.md, "Who decides that the master is down").
type tally struct {
	master string
	votes  []vote
}

func (t tally) down() int {
	n := 0
	for _, v := range t.votes {
		if v.down() {
			n++
		}
	}
	return n
}

func (t tally) majority() bool { return t.down()*2 > len(t.votes) }

// key changes when a vantage point's kind of view does.
func (t tally) key() string {
	var b strings.Builder
	for _, v := range t.votes {
		b.WriteString(v.name + ":" + v.kind + " ")
	}
	return b.String()
}

func (t tally) String() string {
	var down, up []string
	for _, v := range t.votes {
		if v.down() {
			down = append(down, fmt.Sprintf("%s (%s)", v.name, v.why))
		} else {
			up = append(up, fmt.Sprintf("%s: %s", v.name, v.why))
		}
	}
	s := fmt.Sprintf("%d of %d vantage points see %s down", len(down), len(t.votes), t.master)
	if len(down) > 0 {
		s += ": " + strings.Join(down, ", ")
	}
	if len(up) > 0 {
		s += "; " + strings.Join(up, "; ")
	}
	return s
}

// ballot asks the observers how they see a master.
type ballot struct {
	observers []config.Observer
	// after is how long an observer must have seen the master down for its
	// vote to count; every is the check interval: a view older than a few
	// intervals is stale.
	after, every time.Duration
	client       *http.Client
}

func newBallot(cfg *config.Config) *ballot {
	f := cfg.Failover
	every := f.CheckInterval.D()
	return &ballot{observers: cfg.FailoverObservers(), after: f.UnreachableAfter.D(), every: every,
		client: &http.Client{Timeout: min(max(every, time.Second), 3*time.Second)}}
}

// count asks every observer at once and tallies their votes with this
// host's, which has seen master down for downFor. An observer that turns
// out to be this process is left out.
func (b *ballot) count(ctx context.Context, master string, downFor time.Duration) tally {
	votes := make([]vote, len(b.observers))
	self := make([]bool, len(b.observers))
	var wg sync.WaitGroup
	for i, o := range b.observers {
		wg.Go(func() { votes[i], self[i] = b.ask(ctx, o, master) })
	}
	wg.Wait()
	t := tally{master: master, votes: []vote{{name: "this host", kind: "down", why: "for " + downFor.Round(time.Second).String()}}}
	for i, v := range votes {
		if !self[i] {
			t.votes = append(t.votes, v)
		}
	}
	return t
}

// ask is one observer's vote on master, and whether it is this process.
func (b *ballot) ask(ctx context.Context, o config.Observer, master string) (vote, bool) {
	v := vote{name: o.Name, kind: "silent"}
	rep, err := b.report(ctx, o.Addr)
	if err != nil {
		v.why = fmt.Sprintf("no answer (%v)", err)
		return v, false
	}
	if rep.Instance == instance {
		return v, true
	}
	nr, seen := rep.Nodes[master]
	v.kind, v.why = b.judge(nr, seen)
	return v, false
}

// judge reads an observer's view of the master (its kind, and why): down
// only when its last check is recent and every check has failed for at
// least after.
func (b *ballot) judge(nr NodeReach, seen bool) (kind, why string) {
	checkedAgo, forDur := time.Duration(nr.CheckedAgoMS)*time.Millisecond, time.Duration(nr.ForMS)*time.Millisecond
	switch {
	case !seen:
		return "none", "no view of it"
	case checkedAgo > 3*b.every+time.Second:
		return "stale", fmt.Sprintf("its last check is %v old", checkedAgo.Round(time.Millisecond))
	case nr.OK:
		return "up", "reaches it"
	case forDur < b.after:
		return "short", fmt.Sprintf("does not reach it, for only %v", forDur.Round(time.Millisecond))
	}
	return "down", "for " + forDur.Round(time.Second).String()
}

// report reads an observer's /healthz details.
func (b *ballot) report(ctx context.Context, addr string) (ReachReport, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return ReachReport{}, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return ReachReport{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Details map[string]json.RawMessage `json:"details"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return ReachReport{}, fmt.Errorf("http://%s/healthz: %w", addr, err)
	}
	raw, ok := body.Details[ReachDetail]
	if !ok {
		return ReachReport{}, fmt.Errorf("http://%s/healthz reports no view of the nodes: does that process run with failover.mode auto, or `rowcast observe`?", addr)
	}
	var rep ReachReport
	err = json.Unmarshal(raw, &rep)
	return rep, err
}
