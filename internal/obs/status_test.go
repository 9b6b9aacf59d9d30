package obs

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// TestStatusPage checks the page at / (self-contained: it loads nothing
// from elsewhere) and that /status.json serves what SetStatus registers.
func TestStatusPage(t *testing.T) {
	h := NewHealth()
	srv := httptest.NewServer(Handler(NewRegistry(), h))
	defer srv.Close()
	code, ctype, body := get(t, srv.URL+"/")
	if code != 200 || !strings.HasPrefix(ctype, "text/html") || !strings.Contains(body, "status.json") {
		t.Fatalf("/: %d %s %.200q", code, ctype, body)
	}
	for _, remote := range []string{"http://", "https://", "//cdn", "src="} {
		if strings.Contains(body, remote) {
			t.Errorf("the page refers to something outside it: %q", remote)
		}
	}
	if code, _, _ := get(t, srv.URL+"/nothing"); code != 404 {
		t.Errorf("/nothing: %d, want 404", code)
	}
	if code, _, _ := get(t, srv.URL+"/status.json"); code != 404 {
		t.Errorf("/status.json without a status: %d, want 404", code)
	}
	h.SetStatus(func(context.Context) any { return map[string]string{"cluster": "c1"} })
	code, ctype, body = get(t, srv.URL+"/status.json")
	if code != 200 || ctype != "application/json" || strings.TrimSpace(body) != `{"cluster":"c1"}` {
		t.Fatalf("/status.json: %d %s %q", code, ctype, body)
	}
}
