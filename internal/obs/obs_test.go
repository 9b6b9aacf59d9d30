package obs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

func TestServeMetricsAndHealth(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "rowcast_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	h := NewHealth()
	h.Set("reader", nil)
	addr, err := Serve(ctx, "127.0.0.1:0", reg, h, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "rowcast_test_total 3") {
		t.Fatalf("metrics: %d %q", code, body)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("healthz healthy: %d %s", code, body)
	}
	h.Set("kafka", errors.New("broker 127.0.0.1:9092 unreachable"))
	code, body := get("/healthz")
	var rep struct {
		OK         bool
		Components map[string]string
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	if code != 503 || rep.OK || rep.Components["kafka"] != "broker 127.0.0.1:9092 unreachable" || rep.Components["reader"] != "ok" {
		t.Fatalf("healthz unhealthy: %d %s", code, body)
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("hidden")
	log.Warn().Str("k", "v").Msg("shown")
	if s := buf.String(); strings.Contains(s, "hidden") || !strings.Contains(s, `"k":"v"`) {
		t.Fatalf("log output %q", s)
	}
	if _, err := NewLogger(&buf, "xml", ""); err == nil {
		t.Fatal("want error for format xml")
	}
	if _, err := NewLogger(&buf, "", "loud"); err == nil {
		t.Fatal("want error for level loud")
	}
}

// /healthz never shows the statement excerpt or the value a server's
// message quotes.
func TestHealthCutsServerMessages(t *testing.T) {
	h := NewHealth()
	h.Set("sink/db2", errors.New("Error 1062 (23000): Duplicate entry 'alice@example.com' for key 'email'"))
	rep, ok := h.Report()
	if ok || strings.Contains(rep["sink/db2"], "alice") || !strings.Contains(rep["sink/db2"], "Duplicate entry '…' for key") {
		t.Fatalf("report %q", rep)
	}
}

// TestHandleAfterServe: a path added after the handler was built is served
// beside /healthz; others stay 404.
func TestHandleAfterServe(t *testing.T) {
	h := NewHealth()
	srv := httptest.NewServer(Handler(NewRegistry(), h))
	defer srv.Close()
	h.Handle("GET /node/{name}/master", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.PathValue("name")))
	}))
	for path, want := range map[string]int{"/node/db1/master": 200, "/healthz": 200, "/nothing": 404} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
