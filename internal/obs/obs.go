// Package obs serves what operators watch: Prometheus metrics and a health
// endpoint on HTTP, and the zerolog logger every long-running command uses.
package obs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rowcast/rowcast/internal/redact"
	"github.com/rs/zerolog"
)

// NewLogger logs JSON lines to w, or human-readable lines when w is a terminal
// (or format is "console"). Level is a zerolog level name ("info" default).
func NewLogger(w io.Writer, format, level string) (zerolog.Logger, error) {
	lvl := zerolog.InfoLevel
	if level != "" {
		l, err := zerolog.ParseLevel(level)
		if err != nil {
			return zerolog.Nop(), fmt.Errorf("log level %q: use debug, info, warn or error", level)
		}
		lvl = l
	}
	out := w
	if f, ok := w.(*os.File); (ok && format == "" && isatty.IsTerminal(f.Fd())) || format == "console" {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	} else if format != "" && format != "json" && format != "console" {
		return zerolog.Nop(), fmt.Errorf("log format %q: use json or console", format)
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

// Health collects the health of the components of one process. A component
// reports nil when healthy; /healthz answers 200 only when all do.
type Health struct {
	mu      sync.Mutex
	state   map[string]error
	details map[string]func() any
	status  func(context.Context) any // the status page's data (status.go)
	routes  *http.ServeMux
}

// NewHealth returns an empty Health (healthy).
func NewHealth() *Health {
	return &Health{state: map[string]error{}, details: map[string]func() any{}, routes: http.NewServeMux()}
}

// Handle serves a path under /node/ beside /metrics and /healthz (the
// routing checks of a load balancer), also after Serve has started.
func (h *Health) Handle(pattern string, handler http.Handler) { h.routes.Handle(pattern, handler) }

// SetDetail registers a component's details: f is called for every
// /healthz request and its result is served as JSON under "details" (the
// pipeline's read position, which `rowcast promote` waits on).
func (h *Health) SetDetail(component string, f func() any) {
	h.mu.Lock()
	h.details[component] = f
	h.mu.Unlock()
}

// Details returns every component's details.
func (h *Health) Details() map[string]any {
	h.mu.Lock()
	fs := make(map[string]func() any, len(h.details))
	for c, f := range h.details {
		fs[c] = f
	}
	h.mu.Unlock()
	out := make(map[string]any, len(fs))
	for c, f := range fs {
		out[c] = f()
	}
	return out
}

// Set records a component's health.
func (h *Health) Set(component string, err error) {
	h.mu.Lock()
	h.state[component] = err
	h.mu.Unlock()
}

// Report returns each component's state, "ok" or the error text (cut before
// the SQL and values a server's message quotes), and whether all are
// healthy.
func (h *Health) Report() (map[string]string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]string, len(h.state))
	ok := true
	for c, err := range h.state {
		if err != nil {
			out[c] = redact.Message(err.Error()) // a server's message may quote SQL or a value
			ok = false
		} else {
			out[c] = "ok"
		}
	}
	return out, ok
}

// NewRegistry returns a Prometheus registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler serves /metrics and /healthz, the status page at / with its data
// at /status.json (status.go), and the /node/ paths h.Handle added.
func Handler(reg *prometheus.Registry, h *Health) http.Handler {
	mux := http.NewServeMux()
	handleStatus(mux, h)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		rep, ok := h.Report()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		body := map[string]any{"ok": ok, "components": rep}
		if d := h.Details(); len(d) > 0 {
			body["details"] = d
		}
		json.NewEncoder(w).Encode(body)
	})
	mux.Handle("/node/", h.routes)
	return mux
}

// Serve listens on addr and serves Handler until ctx is done. It returns once
// listening has started, with the bound address (useful with port 0), and
// shuts down in the background when ctx ends. "off" or "" serves nothing.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, h *Health, log zerolog.Logger) (string, error) {
	if addr == "" || addr == "off" {
		return "", nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("metrics listener on %s: %w (change `http` in the config or free the port)", addr, err)
	}
	srv := &http.Server{Handler: Handler(reg, h), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("addr", addr).Msg("metrics server stopped")
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics and /healthz")
	return ln.Addr().String(), nil
}
