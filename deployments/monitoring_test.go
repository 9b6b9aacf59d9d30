package deployments

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	rowcast "github.com/rowcast/rowcast/service"
)

const (
	prometheusConfig = "prometheus/prometheus.yml"
	alertRules       = "prometheus/rules.yml"
	dashboard        = "grafana/rowcast.json"
	localConfig      = "local/rowcast.yaml"
)

// needTool returns the path of a Prometheus program; without it the test
// fails (under CI, and unless ROWCAST_ALLOW_SKIP=1) saying how to get it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " is not installed: apt-get install prometheus (Debian's package ships prometheus and promtool)"
	if os.Getenv("ROWCAST_ALLOW_SKIP") == "1" && os.Getenv("CI") != "true" {
		t.Skip(msg)
	}
	t.Fatal(msg)
	return ""
}

func TestPromtoolChecks(t *testing.T) {
	promtool := needTool(t, "promtool")
	for _, args := range [][]string{{"check", "config", prometheusConfig}, {"check", "rules", alertRules}} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// exportedNames collects the names of every metric rowcast registers, from
// the constructors the processes call: no list to keep by hand.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	r := &nameRegisterer{names: map[string]bool{}}
	metrics := rowcast.NewMetrics(r)
	rowcast.NewSinkMetrics(r, metrics)
	if len(r.names) == 0 {
		t.Fatal("no metric registered")
	}
	return r.names
}

// nameRegisterer records the names of what is registered with it. Unlike a
// registry's Gather, it also sees vectors that have no series yet.
type nameRegisterer struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *nameRegisterer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *nameRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.Register(c)
	}
}

func (r *nameRegisterer) Unregister(prometheus.Collector) bool { return false }

// metricRef is a rowcast metric named in a query.
var metricRef = regexp.MustCompile(`\browcast_[a-zA-Z0-9_]+`)

// exported tells whether a name in a query is an exported metric, or a
// histogram's series of one.
func exported(names map[string]bool, ref string) bool {
	for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(ref, suffix); ok && names[base] {
			return true
		}
	}
	return false
}

// checkQueries: every query names at least one metric, and only metrics
// rowcast exports.
func checkQueries(t *testing.T, file string, queries map[string]string, names map[string]bool) {
	t.Helper()
	if len(queries) == 0 {
		t.Fatalf("%s: no queries found", file)
	}
	for where, q := range queries {
		refs := metricRef.FindAllString(q, -1)
		if len(refs) == 0 {
			t.Errorf("%s: %s: %q names no rowcast metric", file, where, q)
		}
		for _, ref := range refs {
			if !exported(names, ref) {
				t.Errorf("%s: %s: %q names %s, which rowcast does not export", file, where, q, ref)
			}
		}
	}
}

// grafanaDashboard is the part of Grafana's dashboard JSON that holds queries.
type grafanaDashboard struct {
	Title  string `json:"title"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Annotations struct {
		List []struct {
			Name string `json:"name"`
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
}

func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s does not parse: %v", dashboard, err)
	}
	out := map[string]string{}
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			out[p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	for _, a := range d.Annotations.List {
		out["annotation "+a.Name] = a.Expr
	}
	return out
}

// ruleFile is Prometheus's rule file format, as far as the tests read it.
type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func alertQueries(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s does not parse: %v", alertRules, err)
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	return out
}

func TestDashboardNamesExportedMetrics(t *testing.T) {
	checkQueries(t, dashboard, dashboardQueries(t), exportedNames(t))
}

func TestAlertRulesNameExportedMetrics(t *testing.T) {
	checkQueries(t, alertRules, alertQueries(t), exportedNames(t))
}

// TestPrometheusScrapesLocalStack: every metrics address of the local stack's
// config is a target of the shipped scrape config.
func TestPrometheusScrapesLocalStack(t *testing.T) {
	var local struct {
		HTTP  string `yaml:"http"`
		Nodes []struct {
			HTTP string `yaml:"http"`
		} `yaml:"nodes"`
	}
	readYAML(t, localConfig, &local)
	var prom struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, prometheusConfig, &prom)
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	want := []string{local.HTTP}
	for _, n := range local.Nodes {
		if n.HTTP != "" {
			want = append(want, n.HTTP)
		}
	}
	for _, addr := range want {
		if !slices.Contains(targets, addr) {
			t.Errorf("%s serves metrics on %s, which %s does not scrape (targets %v)", localConfig, addr, prometheusConfig, targets)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
}
