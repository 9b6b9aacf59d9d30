package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/changelog/history"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/failover"
	"github.com/rowcast/rowcast/pipeline"
)

// Paths of the routing checks, in the convention of Patroni's REST API
// (/master, /replica?max_lag=) with one path per node, so that one port
// serves a load balancer's health check of every server
// (docs/OPERATIONS.md, "Routing applications (HAProxy)").
const (
	RouteMasterPath  = "GET /node/{name}/master"
	RouteReplicaPath = "GET /node/{name}/replica"
)

// routeTTL is how long one look at the cluster answers the checks: a
// load balancer checks every server every second or so, and one look reads
// every node and the topic.
const routeTTL = time.Second

// routeProbeTimeout bounds one look at the cluster.
const routeProbeTimeout = 3 * time.Second

// RouteView is what the routing checks answer from: the current master by
// the epoch records, and each mysql node's state.
type RouteView struct {
	// Master is the current master; "" when it cannot be found (Error says
	// why).
	Master string `json:"master"`
	Epoch  uint64 `json:"epoch"`
	Error  string `json:"error,omitempty"`
	// Nodes are the config's mysql nodes by name.
	Nodes map[string]NodeRoute `json:"nodes"`
	At    time.Time            `json:"at"`
}

// NodeRoute is one mysql node as the routing checks see it.
type NodeRoute struct {
	Node      string `json:"node"`
	Reachable bool   `json:"reachable"`
	ReadOnly  bool   `json:"read_only"`
	// Offset is the node's checkpoint (the next offset to apply), -1 when
	// it has none for the topic.
	Offset int64 `json:"applied_offset"`
	// Lag is how long the oldest message the node has not applied has
	// waited; 0 when it holds the whole topic, -1 when unknown.
	Lag time.Duration `json:"-"`
	// LagSeconds is Lag in seconds, -1 when unknown.
	LagSeconds float64 `json:"lag_seconds"`
	Error      string  `json:"error,omitempty"`
}

// Router answers the routing checks of the nodes of one cluster from a
// look at the cluster that is at most routeTTL old.
type Router struct {
	cfg   *config.Config
	kc    changelog.Config
	log   zerolog.Logger
	probe func(ctx context.Context) RouteView

	mu   sync.Mutex
	view RouteView
	at   time.Time
}

// NewRouter returns the Router of cfg's cluster and topic.
func NewRouter(cfg *config.Config, kc changelog.Config, log zerolog.Logger) *Router {
	r := &Router{cfg: cfg, kc: kc, log: log}
	r.probe = r.look
	return r
}

// Register adds the routing checks to mux.
func (r *Router) Register(handle func(pattern string, h http.Handler)) {
	handle(RouteMasterPath, http.HandlerFunc(r.serveMaster))
	handle(RouteReplicaPath, http.HandlerFunc(r.serveReplica))
}

func (r *Router) serveMaster(w http.ResponseWriter, req *http.Request) {
	v := r.current(req.Context())
	code, why := v.masterCheck(req.PathValue("name"))
	writeRoute(w, code, "master", req.PathValue("name"), why, v)
}

func (r *Router) serveReplica(w http.ResponseWriter, req *http.Request) {
	maxLag, err := parseMaxLag(req.URL.Query().Get("max_lag"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v := r.current(req.Context())
	code, why := v.replicaCheck(req.PathValue("name"), maxLag)
	writeRoute(w, code, "replica", req.PathValue("name"), why, v)
}

// parseMaxLag reads max_lag: a Go duration ("2s", "500ms") or, as Patroni
// takes it, a number of seconds. "" is no bound (-1).
func parseMaxLag(s string) (time.Duration, error) {
	if s == "" {
		return -1, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || secs < 0 {
		return 0, fmt.Errorf("max_lag %q: give a duration such as 2s or 500ms", s)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// routeAnswer is the body of a routing check.
type routeAnswer struct {
	Node   string     `json:"node"`
	Role   string     `json:"role"`
	OK     bool       `json:"ok"`
	Reason string     `json:"reason"`
	Master string     `json:"master"`
	Epoch  uint64     `json:"epoch"`
	State  *NodeRoute `json:"state,omitempty"`
}

func writeRoute(w http.ResponseWriter, code int, role, node, why string, v RouteView) {
	a := routeAnswer{Node: node, Role: role, OK: code == http.StatusOK, Reason: why, Master: v.Master, Epoch: v.Epoch}
	if n, ok := v.Nodes[node]; ok {
		a.State = &n
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(a)
}

// current returns the last look at the cluster, or a new one when it is
// older than routeTTL. Checks that arrive meanwhile wait for it.
func (r *Router) current(ctx context.Context) RouteView {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && time.Since(r.at) < routeTTL {
		return r.view
	}
	// One request's end must not cut the look that the others share.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), routeProbeTimeout)
	defer cancel()
	v := r.probe(ctx)
	if v.Error != "" && v.Error != r.view.Error {
		r.log.Warn().Str("error", v.Error).Msg("routing checks: the current master is unknown, /master answers 503 on every node")
	}
	r.view, r.at = v, time.Now()
	return r.view
}

// masterCheck answers /master for node: 200 only on the current master,
// reachable and writable (a fenced master takes no writes).
func (v RouteView) masterCheck(node string) (int, string) {
	n, ok := v.Nodes[node]
	switch {
	case !ok:
		return http.StatusNotFound, "not a mysql node of the config"
	case v.Master == "":
		return http.StatusServiceUnavailable, "the current master is unknown: " + v.Error
	case v.Master != node:
		return http.StatusServiceUnavailable, fmt.Sprintf("not the master: the master is %s (epoch %d)", v.Master, v.Epoch)
	case !n.Reachable:
		return http.StatusServiceUnavailable, "the master does not answer: " + n.Error
	case n.ReadOnly:
		return http.StatusServiceUnavailable, "the master is read-only (fenced: a switchover under way?)"
	}
	return http.StatusOK, fmt.Sprintf("the master (epoch %d)", v.Epoch)
}

// replicaCheck answers /replica for node: 200 only on a replica that
// answers, is read-only, applies the topic and lags at most maxLag (-1: any
// known lag).
func (v RouteView) replicaCheck(node string, maxLag time.Duration) (int, string) {
	n, ok := v.Nodes[node]
	switch {
	case !ok:
		return http.StatusNotFound, "not a mysql node of the config"
	case node == v.Master:
		return http.StatusServiceUnavailable, "the master"
	case !n.Reachable:
		return http.StatusServiceUnavailable, "does not answer: " + n.Error
	case !n.ReadOnly:
		return http.StatusServiceUnavailable, "writable (read_only=OFF): not a protected replica"
	case n.Offset < 0:
		return http.StatusServiceUnavailable, "no checkpoint for the topic: not a replica of it yet"
	case n.Lag < 0:
		return http.StatusServiceUnavailable, "lag unknown: " + n.Error
	case maxLag >= 0 && n.Lag > maxLag:
		return http.StatusServiceUnavailable, fmt.Sprintf("lag %s over max_lag %s", n.Lag.Round(time.Millisecond), maxLag)
	}
	return http.StatusOK, fmt.Sprintf("a replica, lag %s", n.Lag.Round(time.Millisecond))
}

// look reads the current master, the topic's end and every mysql node.
func (r *Router) look(ctx context.Context) RouteView {
	v := RouteView{Nodes: map[string]NodeRoute{}, At: time.Now().UTC()}
	var cur failover.Current
	var locErr, endErr error
	var end int64
	nodes := mysqlNodesOf(r.cfg)
	states := make([]NodeRoute, len(nodes))
	var wg sync.WaitGroup
	wg.Go(func() { cur, locErr = failover.NewLocator(r.cfg, r.kc, zerolog.Nop()).Current(ctx) })
	wg.Go(func() { end, endErr = changelog.EndOffset(ctx, r.kc) })
	for i, n := range nodes {
		wg.Go(func() { states[i] = r.lookNode(ctx, n) })
	}
	wg.Wait()
	if locErr != nil {
		v.Error = locErr.Error()
	} else {
		v.Master, v.Epoch = cur.Master, cur.Epoch
	}
	log := history.New(changelog.TopicOf(r.kc), &pipeline.Codec{}, nil)
	for _, s := range states {
		s.measureLag(ctx, log, end, endErr, v.At)
		s.LagSeconds = -1
		if s.Lag >= 0 {
			s.LagSeconds = s.Lag.Seconds()
		}
		v.Nodes[s.Node] = s
	}
	return v
}

// mysqlNodesOf are the config's mysql nodes: those that can be a master or
// a read replica behind a load balancer.
func mysqlNodesOf(cfg *config.Config) []config.Node {
	var out []config.Node
	for _, n := range cfg.Nodes {
		if n.Kind == config.KindMySQL {
			out = append(out, n)
		}
	}
	return out
}

// lookNode reads a node's read_only flag and its checkpoint of the topic.
func (r *Router) lookNode(ctx context.Context, n config.Node) NodeRoute {
	s := NodeRoute{Node: n.Name, Offset: -1, Lag: -1}
	db, err := n.Open(ctx, routeProbeTimeout)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&s.ReadOnly); err != nil {
		s.Error = err.Error()
		return s
	}
	s.Reachable = true
	st, found, err := r.cfg.CheckpointStore().Load(ctx, db, r.kc.Topic, 0)
	if err == nil && found {
		s.Offset = st.Offset
	}
	return s
}

// measureLag sets Lag: 0 when the node holds the whole topic, else how long
// ago the first message it has not applied was committed on the master.
func (s *NodeRoute) measureLag(ctx context.Context, log *history.Log, end int64, endErr error, now time.Time) {
	switch {
	case s.Offset < 0:
		return
	case endErr != nil:
		s.Error = "topic end: " + endErr.Error()
		return
	case s.Offset >= end:
		s.Lag = 0
		return
	}
	t, err := firstCommitTime(ctx, log, s.Offset)
	if err != nil {
		s.Error = err.Error()
		return
	}
	s.Lag = max(0, now.Sub(t))
}

// lagReadAhead is how many messages measureLag reads for a commit time
// (epoch records and snapshot markers carry none).
const lagReadAhead = 16

// firstCommitTime is the master's commit time of the first message at or
// after offset that carries one.
func firstCommitTime(ctx context.Context, log *history.Log, offset int64) (time.Time, error) {
	es, err := log.Read(ctx, offset, lagReadAhead)
	if err != nil {
		return time.Time{}, fmt.Errorf("read offset %d: %w", offset, err)
	}
	for _, e := range es {
		if !e.Event.CommitTime.IsZero() {
			return e.Event.CommitTime, nil
		}
	}
	return time.Time{}, fmt.Errorf("no commit time in the %d messages from offset %d", lagReadAhead, offset)
}
