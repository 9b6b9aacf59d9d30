package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rowcast/rowcast/internal/testenv"
)

// shippedPrometheus is the scrape config and the alert rules in deployments/.
const (
	shippedPrometheus = "../../deployments/prometheus/prometheus.yml"
	shippedRules      = "../../deployments/prometheus/rules.yml"
)

// TestPrometheusScrapesRun: the real Prometheus server, run with the shipped
// scrape config and alert rules pointed at a running `rowcast run`, returns
// the replicas' lag and the reader's epoch, and evaluates every rule.
func TestPrometheusScrapesRun(t *testing.T) {
	bin := needPrometheus(t, "prometheus")
	testenv.Need(t, "kafka")
	testenv.Need(t, testenv.Master)
	topic, database := testenv.CreateTopic(t, 1), testenv.UniqueName(t, "prom")
	addr := freeAddr(t)
	cfg := clusterConfig{database: database, topic: topic, http: addr}.write(t)
	startPublishing(t, "run", cfg, topic)

	prom := startPrometheus(t, bin, prometheusConfig(t, addr))
	lag := waitQuery(t, prom, "rowcast_sink_lag_seconds")
	if len(lag) != 2 {
		t.Errorf("rowcast_sink_lag_seconds: %d series, want one per replica (db2, db3): %v", len(lag), lag)
	}
	if epoch := waitQuery(t, prom, "rowcast_source_epoch"); epoch[0].Value[1] != "1" {
		t.Errorf("rowcast_source_epoch is %v, want 1", epoch[0].Value[1])
	}
	checkRulesEvaluated(t, prom)
}

// needPrometheus returns the path of a program of Debian's prometheus
// package, failing (under CI, and unless ROWCAST_ALLOW_SKIP=1) without it.
func needPrometheus(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " is not installed: apt-get install prometheus"
	if os.Getenv("ROWCAST_ALLOW_SKIP") == "1" && !testenv.InCI() {
		t.Skip(msg)
	}
	t.Fatal(msg)
	return ""
}

// prometheusConfig writes the shipped scrape config with target as its only
// target, the shipped rules, and second-long intervals.
func prometheusConfig(t *testing.T, target string) string {
	t.Helper()
	raw, err := os.ReadFile(shippedPrometheus)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	rules, err := filepath.Abs(shippedRules)
	if err != nil {
		t.Fatal(err)
	}
	c["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	c["rule_files"] = []string{rules}
	job := c["scrape_configs"].([]any)[0].(map[string]any) // rowcast-pipeline: `rowcast run` serves every metric
	job["static_configs"] = []any{map[string]any{"targets": []string{target}}}
	c["scrape_configs"] = []any{job}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startPrometheus runs prometheus on a free port with storage of its own,
// stopped by its PID when the test ends; it returns its base URL.
func startPrometheus(t *testing.T, bin, config string) string {
	t.Helper()
	addr := freeAddr(t)
	var out syncBuffer
	cmd := exec.Command(bin, "--config.file="+config, "--storage.tsdb.path="+t.TempDir(),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	base := "http://" + addr
	waitFor(t, 20*time.Second, "prometheus to be ready", func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return base
}

// series is one result of an instant query.
type series struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// waitQuery runs an instant query until it returns series.
func waitQuery(t *testing.T, base, query string) []series {
	t.Helper()
	var got []series
	waitFor(t, 30*time.Second, "prometheus to return "+query, func() bool {
		var resp struct {
			Data struct {
				Result []series `json:"result"`
			} `json:"data"`
		}
		if err := getJSON(base+"/api/v1/query?query="+url.QueryEscape(query), &resp); err != nil {
			return false
		}
		got = resp.Data.Result
		return len(got) > 0
	})
	return got
}

// checkRulesEvaluated: every shipped rule was loaded and evaluates without
// an error against rowcast's series.
func checkRulesEvaluated(t *testing.T, base string) {
	t.Helper()
	type rule struct {
		Name      string `json:"name"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
	}
	var rules []rule
	waitFor(t, 10*time.Second, "prometheus to evaluate the rules", func() bool {
		var resp struct {
			Data struct {
				Groups []struct {
					Rules []rule `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if getJSON(base+"/api/v1/rules", &resp) != nil || len(resp.Data.Groups) == 0 {
			return false
		}
		rules = resp.Data.Groups[0].Rules
		for _, r := range rules {
			if r.Health == "unknown" {
				return false
			}
		}
		return len(rules) > 0
	})
	for _, r := range rules {
		if r.Health != "ok" {
			t.Errorf("rule %s: health %s: %s", r.Name, r.Health, r.LastError)
		}
	}
}

func getJSON(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
