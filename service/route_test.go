package service

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// routeCluster is a cluster of three nodes: db1 the master, db2 a caught-up
// replica, db3 a replica two minutes behind; db4 does not answer, db5 is
// writable without being the master, db6 has no checkpoint.
func routeCluster() RouteView {
	return RouteView{Master: "db1", Epoch: 3, Nodes: map[string]NodeRoute{
		"db1": {Node: "db1", Reachable: true, Offset: -1, Lag: -1},
		"db2": {Node: "db2", Reachable: true, ReadOnly: true, Offset: 90, Lag: 0},
		"db3": {Node: "db3", Reachable: true, ReadOnly: true, Offset: 40, Lag: 2 * time.Minute},
		"db4": {Node: "db4", Offset: -1, Lag: -1, Error: "connection refused"},
		"db5": {Node: "db5", Reachable: true, Offset: 90, Lag: 0},
		"db6": {Node: "db6", Reachable: true, ReadOnly: true, Offset: -1, Lag: -1},
	}}
}

func TestRouteChecks(t *testing.T) {
	fenced := routeCluster()
	fenced.Nodes["db1"] = NodeRoute{Node: "db1", Reachable: true, ReadOnly: true, Offset: -1, Lag: -1}
	unknown := routeCluster()
	unknown.Master, unknown.Error = "", "the epoch index disagrees"
	for _, c := range []struct {
		view   RouteView
		path   string
		code   int
		reason string
	}{
		{routeCluster(), "/node/db1/master", 200, "the master (epoch 3)"},
		{routeCluster(), "/node/db1/replica", 503, "the master"},
		{routeCluster(), "/node/db2/master", 503, "not the master: the master is db1 (epoch 3)"},
		{routeCluster(), "/node/db2/replica?max_lag=2s", 200, "a replica, lag 0s"},
		{routeCluster(), "/node/db2/replica", 200, "a replica"},
		{routeCluster(), "/node/db3/replica?max_lag=2s", 503, "lag 2m0s over max_lag 2s"},
		{routeCluster(), "/node/db3/replica?max_lag=300", 200, "a replica, lag 2m0s"},
		{routeCluster(), "/node/db3/replica", 200, "a replica"},
		{routeCluster(), "/node/db4/replica", 503, "does not answer: connection refused"},
		{routeCluster(), "/node/db5/replica", 503, "writable (read_only=OFF)"},
		{routeCluster(), "/node/db6/replica", 503, "no checkpoint for the topic"},
		{routeCluster(), "/node/ch/master", 404, "not a mysql node"},
		{routeCluster(), "/node/db2/replica?max_lag=soon", 400, "max_lag \"soon\""},
		{fenced, "/node/db1/master", 503, "read-only (fenced"},
		{unknown, "/node/db1/master", 503, "the current master is unknown: the epoch index disagrees"},
		{unknown, "/node/db2/replica?max_lag=2s", 200, "a replica"},
	} {
		code, body := routeGet(t, c.view, c.path)
		if code != c.code || !strings.Contains(body, c.reason) {
			t.Errorf("%s: %d %s, want %d with %q", c.path, code, body, c.code, c.reason)
		}
	}
}

// routeGet asks a Router that sees view.
func routeGet(t *testing.T, view RouteView, path string) (int, string) {
	t.Helper()
	r := &Router{probe: func(context.Context) RouteView { return view }}
	mux := http.NewServeMux()
	r.Register(mux.Handle)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code == http.StatusBadRequest {
		return rec.Code, rec.Body.String()
	}
	var a routeAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("%s: body %q: %v", path, rec.Body, err)
	}
	if a.OK != (rec.Code == http.StatusOK) {
		t.Errorf("%s: ok %v with status %d", path, a.OK, rec.Code)
	}
	return rec.Code, a.Reason
}

// TestRouteLooksOncePerTTL: checks that arrive together share one look at
// the cluster.
func TestRouteLooksOncePerTTL(t *testing.T) {
	looks := 0
	r := &Router{probe: func(context.Context) RouteView { looks++; return routeCluster() }}
	for range 5 {
		r.current(context.Background())
	}
	if looks != 1 {
		t.Fatalf("%d looks for 5 checks within %s", looks, routeTTL)
	}
	r.at = time.Now().Add(-routeTTL)
	r.current(context.Background())
	if looks != 2 {
		t.Fatalf("%d looks after the view aged past %s, want 2", looks, routeTTL)
	}
}

func TestParseMaxLag(t *testing.T) {
	for in, want := range map[string]time.Duration{"": -1, "2s": 2 * time.Second, "500ms": 500 * time.Millisecond, "1.5": 1500 * time.Millisecond, "0": 0} {
		if got, err := parseMaxLag(in); err != nil || got != want {
			t.Errorf("parseMaxLag(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"-1s", "x", "-2"} {
		if _, err := parseMaxLag(in); err == nil {
			t.Errorf("parseMaxLag(%q) took it", in)
		}
	}
}
