package obs

import (
	"context"
	_ "embed"
	"encoding/json"
	"net/http"
	"time"
)

// statusPage is the status page: one self-contained HTML file that reads
// /status.json, no build step and nothing fetched from elsewhere.
//
//go:embed status.html
var statusPage []byte

// statusTimeout bounds how long /status.json spends reading the cluster.
const statusTimeout = 10 * time.Second

// SetStatus registers what /status.json serves: f is called for every
// request (`rowcast status --json`'s report in rowcast run and pipeline).
func (h *Health) SetStatus(f func(context.Context) any) {
	h.mu.Lock()
	h.status = f
	h.mu.Unlock()
}

func (h *Health) statusFunc() func(context.Context) any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status
}

// handleStatus adds the page at / and its data at /status.json to mux.
func handleStatus(mux *http.ServeMux, h *Health) {
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(statusPage)
	})
	mux.HandleFunc("/status.json", func(w http.ResponseWriter, r *http.Request) {
		f := h.statusFunc()
		if f == nil {
			http.Error(w, "this process serves no cluster status", http.StatusNotFound)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(f(ctx))
	})
}
