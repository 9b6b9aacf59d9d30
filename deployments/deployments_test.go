// Package deployments holds what users run rowcast with: the container image
// (docker/Dockerfile), a docker-compose stack (docker/docker-compose.yml with
// its rowcast.yaml and MySQL init script) and the local stack's config
// (local/rowcast.yaml).
//
// No container engine runs where the tests run, so these tests check what can
// be checked without one: that the compose file, the rowcast config it mounts,
// the MySQL settings, the init SQL and the Dockerfile agree with each other and
// with what rowcast requires.
package deployments

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/rowcast/rowcast/config"
)

const (
	composeDir  = "docker"
	composeFile = "docker/docker-compose.yml"
	dockerfile  = "docker/Dockerfile"
	envExample  = "docker/.env.example"
	goMod       = "../go.mod"
)

// compose is the part of the Compose file format these tests read. Fields that
// have a short and a long syntax are decoded as any and normalised by helpers.
type compose struct {
	Name     string             `yaml:"name"`
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image       string       `yaml:"image"`
	Build       any          `yaml:"build"`
	Command     any          `yaml:"command"`
	Environment any          `yaml:"environment"`
	Volumes     []any        `yaml:"volumes"`
	Ports       []any        `yaml:"ports"`
	Expose      []any        `yaml:"expose"`
	Healthcheck *healthcheck `yaml:"healthcheck"`
	DependsOn   any          `yaml:"depends_on"`
	Restart     string       `yaml:"restart"`
}

type healthcheck struct {
	Test    any  `yaml:"test"`
	Disable bool `yaml:"disable"`
}

// stack is the parsed compose file plus what the tests derive from it.
type stack struct {
	compose
	raw []byte
}

func loadCompose(t *testing.T) *stack {
	t.Helper()
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s does not parse: %v", composeFile, err)
	}
	if len(c.Services) == 0 {
		t.Fatalf("%s has no services", composeFile)
	}
	return &stack{compose: c, raw: raw}
}

// setPassword gives the config's ${ROWCAST_DB_PASSWORD} a value, as compose does.
func setPassword(t *testing.T) {
	t.Setenv("ROWCAST_DB_PASSWORD", "test-password")
}

// interpolate applies compose's ${VAR}, ${VAR:-default}, ${VAR-default} and $$.
var composeVar = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}`)

func interpolate(s string) string {
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := composeVar.FindStringSubmatch(m)
		v, ok := os.LookupEnv(sub[1])
		switch sub[2] {
		case ":-":
			if !ok || v == "" {
				return sub[3]
			}
		case "-":
			if !ok {
				return sub[3]
			}
		}
		return v
	})
}

func strs(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return strings.Fields(x)
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, stringOf(e))
		}
		return out
	}
	return []string{stringOf(v)}
}

func stringOf(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	return strings.TrimSpace(mustYAML(v))
}

func mustYAML(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

func (s service) command() []string { return strs(s.Command) }

// env returns the service's environment, interpolated.
func (s service) env() map[string]string {
	out := map[string]string{}
	switch x := s.Environment.(type) {
	case map[string]any:
		for k, v := range x {
			out[k] = interpolate(stringOf(v))
		}
	case []any:
		for _, e := range x {
			k, v, _ := strings.Cut(stringOf(e), "=")
			out[k] = interpolate(v)
		}
	}
	return out
}

// mount is one volume of a service.
type mount struct{ source, target string }

func (s service) mounts() []mount {
	var out []mount
	for _, v := range s.Volumes {
		switch x := v.(type) {
		case string:
			parts := strings.Split(x, ":")
			if len(parts) >= 2 {
				out = append(out, mount{parts[0], parts[1]})
			}
		case map[string]any:
			out = append(out, mount{stringOf(x["source"]), stringOf(x["target"])})
		}
	}
	return out
}

// isBind tells a bind mount (a path) from a named volume.
func (m mount) isBind() bool {
	return strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/") || strings.HasPrefix(m.source, "~")
}

// hostPath maps a path inside the container to the repository file a bind
// mount puts there, relative to this package's directory.
func (s service) hostPath(inContainer string) (string, bool) {
	for _, m := range s.mounts() {
		if !m.isBind() {
			continue
		}
		if inContainer == m.target {
			return filepath.Join(composeDir, m.source), true
		}
		if rest, ok := strings.CutPrefix(inContainer, strings.TrimSuffix(m.target, "/")+"/"); ok {
			return filepath.Join(composeDir, m.source, rest), true
		}
	}
	return "", false
}

// containerPorts lists the container side of published ports.
func (s service) containerPorts() []string {
	var out []string
	for _, p := range s.Ports {
		switch x := p.(type) {
		case map[string]any:
			out = append(out, stringOf(x["target"]))
		default:
			ps := stringOf(x)
			ps, _, _ = strings.Cut(ps, "/")
			out = append(out, ps[strings.LastIndex(ps, ":")+1:])
		}
	}
	return out
}

func (s service) exposed() []string {
	out := s.containerPorts()
	for _, p := range s.Expose {
		ps, _, _ := strings.Cut(stringOf(p), "/")
		out = append(out, ps)
	}
	return out
}

// dependsOn maps each dependency to its condition (service_started for the
// short syntax).
func (s service) dependsOn() map[string]string {
	out := map[string]string{}
	switch x := s.DependsOn.(type) {
	case []any:
		for _, d := range x {
			out[stringOf(d)] = "service_started"
		}
	case map[string]any:
		for name, v := range x {
			cond := "service_started"
			if m, ok := v.(map[string]any); ok && m["condition"] != nil {
				cond = stringOf(m["condition"])
			}
			out[name] = cond
		}
	}
	return out
}

// flag returns the value of --name VALUE or --name=VALUE in a command.
func flag(cmd []string, name string) (string, bool) {
	for i, a := range cmd {
		if a == name && i+1 < len(cmd) {
			return cmd[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// isRowcast tells whether a service runs the rowcast image built from the
// Dockerfile.
func (s service) isRowcast() bool {
	if b, ok := s.Build.(map[string]any); ok {
		return filepath.Base(stringOf(b["dockerfile"])) == "Dockerfile" &&
			strings.Contains(stringOf(b["dockerfile"]), "deployments/docker")
	}
	return strings.HasPrefix(s.Image, "rowcast")
}

func (s service) isMySQL() bool { return strings.HasPrefix(s.Image, "mysql:") }

// rowcastServices returns the names of the services that run rowcast, sorted.
func (st *stack) rowcastServices() []string {
	var out []string
	for name, s := range st.Services {
		if s.isRowcast() {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// loadConfig parses the config a rowcast service's --config names, with the
// service's own environment: that is what the container sees.
func (st *stack) loadConfig(t *testing.T, name string) *config.Config {
	t.Helper()
	s := st.Services[name]
	path, ok := flag(s.command(), "--config")
	if !ok {
		t.Fatalf("service %s: command %q has no --config", name, s.command())
	}
	host, ok := s.hostPath(path)
	if !ok {
		t.Fatalf("service %s: --config %s is not inside a bind mount of the repository", name, path)
	}
	raw, err := os.ReadFile(host)
	if err != nil {
		t.Fatalf("service %s: --config %s is %s in the repository: %v", name, path, host, err)
	}
	env := s.env()
	cfg, err := config.Parse(raw, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("service %s: %s (%s) with the service's environment: %v", name, path, host, err)
	}
	return cfg
}

func TestComposeParses(t *testing.T) {
	st := loadCompose(t)
	for name, s := range st.Services {
		checkServiceBasics(t, name, s)
		checkDependsOn(t, st, name, s)
		checkMounts(t, st, name, s)
	}
	if len(st.rowcastServices()) == 0 {
		t.Fatal("no service runs the rowcast image")
	}
}

// checkServiceBasics: an image or a build, restarted unless stopped, a healthcheck.
func checkServiceBasics(t *testing.T, name string, s service) {
	t.Helper()
	if s.Image == "" && s.Build == nil {
		t.Errorf("service %s: neither image nor build", name)
	}
	if s.Restart != "unless-stopped" {
		t.Errorf("service %s: restart is %q, want unless-stopped", name, s.Restart)
	}
	if s.Healthcheck == nil || s.Healthcheck.Disable || len(strs(s.Healthcheck.Test)) == 0 {
		t.Errorf("service %s: no healthcheck", name)
	}
}

// checkDependsOn: every dependency is a service, with a healthcheck when waited for.
func checkDependsOn(t *testing.T, st *stack, name string, s service) {
	t.Helper()
	for dep, cond := range s.dependsOn() {
		d, ok := st.Services[dep]
		switch {
		case !ok:
			t.Errorf("service %s depends on %s, which is not a service", name, dep)
		case cond == "service_healthy" && d.Healthcheck == nil:
			t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
		}
	}
}

// checkMounts: bind mounts exist in the repository, volumes are declared.
func checkMounts(t *testing.T, st *stack, name string, s service) {
	t.Helper()
	for _, m := range s.mounts() {
		if m.isBind() {
			if _, err := os.Stat(filepath.Join(composeDir, m.source)); err != nil {
				t.Errorf("service %s mounts %s, which is not in the repository: %v", name, m.source, err)
			}
		} else if _, ok := st.Volumes[m.source]; !ok {
			t.Errorf("service %s mounts volume %s, which is not declared under volumes:", name, m.source)
		}
	}
}

// TestComposeVariables: every variable the compose file uses has a default in
// the file or is documented in .env.example, which sets ROWCAST_DB_PASSWORD.
func TestComposeVariables(t *testing.T) {
	st := loadCompose(t)
	raw, err := os.ReadFile(envExample)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, _, ok := strings.Cut(l, "=")
		if !ok {
			t.Errorf("%s: %q is not NAME=value", envExample, l)
		}
		documented[k] = true
	}
	if !documented["ROWCAST_DB_PASSWORD"] {
		t.Errorf("%s does not set ROWCAST_DB_PASSWORD", envExample)
	}
	for _, m := range composeVar.FindAllStringSubmatch(string(st.raw), -1) {
		if m[0] == "$$" {
			continue
		}
		if !documented[m[1]] {
			t.Errorf("%s uses ${%s}, which %s does not list", composeFile, m[1], envExample)
		}
	}
}

func TestRowcastServicesUseValidConfig(t *testing.T) {
	setPassword(t)
	st := loadCompose(t)
	for _, name := range st.rowcastServices() {
		s := st.Services[name]
		cmd := s.command()
		if len(cmd) == 0 {
			t.Errorf("service %s: no command", name)
			continue
		}
		switch cmd[0] {
		case "pipeline", "sink", "run":
		default:
			t.Errorf("service %s: command %q is not a long-running rowcast command", name, cmd)
		}
		// Also as rowcast itself would load it, with the test's environment.
		path, _ := flag(cmd, "--config")
		if host, ok := s.hostPath(path); ok {
			if _, err := config.Load(host); err != nil {
				t.Errorf("service %s: %v", name, err)
			}
		}
		st.loadConfig(t, name)
	}
}

func TestConfigMatchesServices(t *testing.T) {
	setPassword(t)
	st := loadCompose(t)
	for _, name := range st.rowcastServices() {
		cfg := st.loadConfig(t, name)
		s := st.Services[name]
		checkNodeServices(t, st, name, cfg)
		checkBrokerServices(t, st, name, s, cfg)
		checkCommandTargets(t, name, s, cfg)
	}
}

// checkNodeServices: each node's DSN host is a MySQL service that listens on
// the DSN's port.
func checkNodeServices(t *testing.T, st *stack, name string, cfg *config.Config) {
	t.Helper()
	for _, n := range cfg.Nodes {
		if n.Kind != config.KindMySQL {
			continue
		}
		mc, err := n.MySQLConfig()
		if err != nil {
			t.Fatal(err)
		}
		host, port, err := net.SplitHostPort(mc.Addr)
		if err != nil {
			t.Errorf("node %s: address %q: %v", n.Name, mc.Addr, err)
			continue
		}
		db, ok := st.Services[host]
		if !ok {
			t.Errorf("service %s: node %s's DSN host %q is not a compose service", name, n.Name, host)
			continue
		}
		checkListens(t, n.Name, host, port, db)
	}
}

// checkListens: the node's service runs MySQL and listens on, and exposes, port.
func checkListens(t *testing.T, node, host, port string, db service) {
	t.Helper()
	if !db.isMySQL() {
		t.Errorf("node %s: service %s runs %q, not a mysql image", node, host, db.Image)
	}
	listen := "3306"
	if p, ok := flag(db.command(), "--port"); ok {
		listen = p
	}
	if port != listen || !slices.Contains(db.exposed(), port) {
		t.Errorf("node %s: DSN port %s, but service %s listens on %s and exposes %v", node, port, host, listen, db.exposed())
	}
}

// checkBrokerServices: every broker is the advertised listener of a compose
// service, under that service's own name (reachable from containers).
func checkBrokerServices(t *testing.T, st *stack, name string, s service, cfg *config.Config) {
	t.Helper()
	deps := s.dependsOn()
	for _, b := range cfg.Kafka.Brokers {
		host, _, _ := net.SplitHostPort(b)
		k, ok := st.Services[host]
		if !ok {
			t.Errorf("service %s: kafka broker %s: %s is not a compose service", name, b, host)
			continue
		}
		checkAdvertised(t, name, b, host, k.env())
		if cond := deps[host]; cond != "service_healthy" {
			t.Errorf("service %s: depends_on %s is %q, want service_healthy", name, host, cond)
		}
	}
}

// checkAdvertised: broker b is an advertised listener that KAFKA_LISTENERS binds.
func checkAdvertised(t *testing.T, name, b, host string, env map[string]string) {
	t.Helper()
	advertised := map[string]string{} // address -> listener name
	for _, l := range strings.Split(env["KAFKA_ADVERTISED_LISTENERS"], ",") {
		if lname, addr, ok := strings.Cut(strings.TrimSpace(l), "://"); ok {
			advertised[addr] = lname
		}
	}
	lname, ok := advertised[b]
	if !ok {
		t.Errorf("service %s: kafka broker %s is not an advertised listener of service %s (%s)", name, b, host, env["KAFKA_ADVERTISED_LISTENERS"])
		return
	}
	_, port, _ := net.SplitHostPort(b)
	if !strings.Contains(","+strings.ReplaceAll(env["KAFKA_LISTENERS"], " ", ""), ","+lname+"://:"+port) {
		t.Errorf("service %s: listener %s is advertised as %s, but KAFKA_LISTENERS (%s) does not bind it on port %s", host, lname, b, env["KAFKA_LISTENERS"], port)
	}
}

// checkCommandTargets: a reader waits for its master, a sink for its replica,
// and each serves its metrics where the healthcheck looks.
func checkCommandTargets(t *testing.T, name string, s service, cfg *config.Config) {
	t.Helper()
	cmd := s.command()
	switch cmd[0] {
	case "pipeline", "run":
		checkHTTP(t, name, s, cfg.HTTP)
		checkWaitsFor(t, name, s, cfg, cfg.Master, "reads master")
	case "sink":
		r, ok := flag(cmd, "--replica")
		if !ok {
			t.Errorf("service %s: sink without --replica", name)
			return
		}
		if !slices.Contains(cfg.Replicas, r) {
			t.Errorf("service %s: --replica %s is not a replica of the config (%v)", name, r, cfg.Replicas)
			return
		}
		n, _ := cfg.Node(r)
		checkHTTP(t, name, s, n.HTTP)
		if n.Kind == config.KindMySQL {
			checkWaitsFor(t, name, s, cfg, r, "applies to")
		}
	}
}

// checkWaitsFor: service s depends on node's service being healthy.
func checkWaitsFor(t *testing.T, name string, s service, cfg *config.Config, node, role string) {
	t.Helper()
	n, _ := cfg.Node(node)
	mc, _ := n.MySQLConfig()
	host, _, _ := net.SplitHostPort(mc.Addr)
	if s.dependsOn()[host] != "service_healthy" {
		t.Errorf("service %s %s %s (service %s) but does not wait for it to be healthy", name, role, node, host)
	}
}

// checkHTTP: the metrics address listens on all interfaces (a published port
// cannot reach 127.0.0.1 inside the container), its port is published, and the
// healthcheck probes it.
func checkHTTP(t *testing.T, name string, s service, addr string) {
	t.Helper()
	if addr == "" || addr == "off" {
		t.Errorf("service %s: no metrics address in the config", name)
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("service %s: metrics address %q: %v", name, addr, err)
		return
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("service %s: metrics listen on %s; inside a container use 0.0.0.0:%s", name, addr, port)
	}
	if !slices.Contains(s.containerPorts(), port) {
		t.Errorf("service %s: metrics port %s is not published (ports %v)", name, port, s.containerPorts())
	}
	if s.Healthcheck == nil {
		return
	}
	probe := strings.Join(strs(s.Healthcheck.Test), " ")
	if !strings.Contains(probe, ":"+port+"/healthz") {
		t.Errorf("service %s: healthcheck %q does not probe /healthz on port %s", name, probe, port)
	}
}

// TestEveryReplicaHasASink: one sink service per replica of each config.
func TestEveryReplicaHasASink(t *testing.T) {
	setPassword(t)
	st := loadCompose(t)
	sinks := map[string]map[string][]string{} // config path -> replica -> services
	configs := map[string]*config.Config{}
	for _, name := range st.rowcastServices() {
		s := st.Services[name]
		path, _ := flag(s.command(), "--config")
		if _, ok := configs[path]; !ok {
			configs[path] = st.loadConfig(t, name)
			sinks[path] = map[string][]string{}
		}
		if cmd := s.command(); cmd[0] == "sink" {
			r, _ := flag(cmd, "--replica")
			sinks[path][r] = append(sinks[path][r], name)
		}
	}
	for path, cfg := range configs {
		for _, r := range cfg.Replicas {
			switch got := sinks[path][r]; len(got) {
			case 1:
			case 0:
				t.Errorf("replica %s of %s has no sink service (rowcast sink --config %s --replica %s)", r, path, path, r)
			default:
				t.Errorf("replica %s of %s has %d sink services %v; two workers would apply the topic twice", r, path, len(got), got)
			}
		}
	}
}

// TestMySQLServers: every MySQL server runs with the binlog settings rowcast's
// start-up checks require (so any of them can be the master), a unique
// server id, and the init script that creates the rowcast account.
func TestMySQLServers(t *testing.T) {
	setPassword(t)
	st := loadCompose(t)
	ids := map[string]string{}
	var mysqls []string
	for name, s := range st.Services {
		if !s.isMySQL() {
			continue
		}
		mysqls = append(mysqls, name)
		flags := mysqldFlags(s)
		checkBinlogFlags(t, name, flags)
		checkServerID(t, name, flags["server-id"], ids)
		checkAccountInit(t, name, s)
	}
	if len(mysqls) == 0 {
		t.Fatal("no mysql service")
	}
	// rowcast's reader presents its own server id to the master.
	for _, name := range st.rowcastServices() {
		cfg := st.loadConfig(t, name)
		if other, ok := ids[strconv.FormatUint(uint64(cfg.Source.ServerID), 10)]; ok {
			t.Errorf("source.server_id %d of service %s's config is the --server-id of %s", cfg.Source.ServerID, name, other)
		}
	}
}

// mysqldFlags are the service's --name=value options, names with dashes.
func mysqldFlags(s service) map[string]string {
	flags := map[string]string{}
	for _, a := range s.command() {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		flags[strings.ReplaceAll(k, "_", "-")] = v
	}
	return flags
}

// requiredBinlog are the settings rowcast's start-up check requires.
var requiredBinlog = map[string]string{
	"binlog-format":            "ROW",
	"binlog-row-image":         "FULL",
	"binlog-row-metadata":      "FULL",
	"gtid-mode":                "ON",
	"enforce-gtid-consistency": "ON",
}

func checkBinlogFlags(t *testing.T, name string, flags map[string]string) {
	t.Helper()
	if _, ok := flags["log-bin"]; !ok {
		t.Errorf("service %s: no --log-bin", name)
	}
	for _, off := range []string{"skip-log-bin", "disable-log-bin"} {
		if _, ok := flags[off]; ok {
			t.Errorf("service %s: --%s; rowcast reads the binlog", name, off)
		}
	}
	if v := flags["binlog-row-value-options"]; strings.Contains(strings.ToUpper(v), "PARTIAL_JSON") {
		t.Errorf("service %s: --binlog-row-value-options=%s leaves after images incomplete; rowcast refuses it", name, v)
	}
	for k, want := range requiredBinlog {
		if got, ok := flags[k]; !ok || !strings.EqualFold(got, want) {
			t.Errorf("service %s: needs --%s=%s (rowcast's start-up check), has %q", name, k, want, got)
		}
	}
}

// checkServerID: a non-zero id no other service has; ids collects them.
func checkServerID(t *testing.T, name, id string, ids map[string]string) {
	t.Helper()
	if n, err := strconv.ParseUint(id, 10, 32); err != nil || n == 0 {
		t.Errorf("service %s: --server-id=%q; every server needs its own non-zero id", name, id)
	} else if other, dup := ids[id]; dup {
		t.Errorf("services %s and %s share --server-id=%s", name, other, id)
	}
	ids[id] = name
}

// checkAccountInit: an init directory that creates rowcast's account, and the
// password it needs in the environment.
func checkAccountInit(t *testing.T, name string, s service) {
	t.Helper()
	initDir, ok := s.hostPath("/docker-entrypoint-initdb.d")
	if !ok {
		t.Errorf("service %s: nothing mounted on /docker-entrypoint-initdb.d; the rowcast account would not exist", name)
	} else {
		checkInit(t, name, initDir)
	}
	if _, ok := s.env()["ROWCAST_DB_PASSWORD"]; !ok {
		t.Errorf("service %s: ROWCAST_DB_PASSWORD is not in its environment; the init script needs it", name)
	}
}

var grantRe = regexp.MustCompile(`(?is)\bGRANT\s+(.+?)\s+ON\s+\*\.\*\s+TO\s+'rowcast'@'%'`)

// checkInit: the init scripts create rowcast's account with the privileges it
// needs on MySQL 8.4, and the entrypoint will source them.
func checkInit(t *testing.T, service, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Errorf("service %s: init directory %s: %v", service, dir, err)
		return
	}
	granted := map[string]bool{}
	created := false
	for _, e := range entries {
		text, ok := initScript(t, filepath.Join(dir, e.Name()))
		if !ok {
			continue
		}
		created = created || createUserRe.MatchString(text)
		for _, m := range grantRe.FindAllStringSubmatch(text, -1) {
			for _, p := range strings.Split(m[1], ",") {
				granted[strings.ToUpper(strings.Join(strings.Fields(p), " "))] = true
			}
		}
	}
	if !created {
		t.Errorf("service %s: no init script in %s creates 'rowcast'@'%%'", service, dir)
	}
	for _, p := range []string{
		"REPLICATION SLAVE", "REPLICATION CLIENT", "SELECT", "INSERT", "UPDATE", "DELETE",
		"CREATE", "DROP", "ALTER", "INDEX", "REFERENCES", "CREATE TEMPORARY TABLES",
		"LOCK TABLES", "SHOW VIEW", "TRIGGER", "CONNECTION_ADMIN", "SYSTEM_VARIABLES_ADMIN",
	} {
		if !granted[p] {
			t.Errorf("service %s: the init scripts in %s do not GRANT %s ON *.* TO 'rowcast'@'%%'", service, dir, p)
		}
	}
}

var createUserRe = regexp.MustCompile(`(?i)CREATE\s+USER\s+(IF\s+NOT\s+EXISTS\s+)?'rowcast'@'%'`)

// initScript reads one file of the init directory that the entrypoint
// sources (.sql, or a non-executable .sh); ok is false for any other file.
func initScript(t *testing.T, path string) (text string, ok bool) {
	t.Helper()
	switch filepath.Ext(path) {
	case ".sh":
		if fi, err := os.Stat(path); err == nil && fi.Mode()&0o111 != 0 {
			t.Errorf("%s is executable: the mysql entrypoint would run it in a subshell without docker_process_sql; chmod 644 it", path)
		}
	case ".sql":
	default:
		return "", false
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return "", false
	}
	return string(raw), true
}

// TestDockerfile: the builder's Go matches go.mod, the binary is static on
// distroless, and the health probe the compose file calls is in the image.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	df := strings.ReplaceAll(string(raw), "\\\n", " ")
	froms := regexp.MustCompile(`(?m)^FROM\s+(?:--platform=\S+\s+)?(\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatalf("%s: want a multi-stage build, found FROM %v", dockerfile, froms)
	}
	checkBuilderGo(t, froms)
	if final := froms[len(froms)-1][1]; !strings.HasPrefix(final, "gcr.io/distroless/static") {
		t.Errorf("%s: final stage %s; the static binary runs on gcr.io/distroless/static", dockerfile, final)
	}
	for _, want := range []string{
		"CGO_ENABLED=0",
		"-X main.version=",
		"-X main.commit=",
		"./cmd/rowcast",
		`ENTRYPOINT ["/rowcast"]`,
		"EXPOSE 9464",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("%s does not contain %q", dockerfile, want)
		}
	}
	checkProbesInImage(t, df)
}

// TestImageRunsAsNonRoot: the final stage ends as a user other than root,
// so a compromised rowcast process in the container holds no root.
func TestImageRunsAsNonRoot(t *testing.T) {
	raw, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	stages := regexp.MustCompile(`(?m)^FROM\s`).Split(string(raw), -1)
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(stages[len(stages)-1], -1)
	if len(users) == 0 {
		t.Fatalf("%s: the final stage sets no USER: the image would run as root", dockerfile)
	}
	user, _, _ := strings.Cut(users[len(users)-1][1], ":")
	if user == "root" || user == "0" || user == "" {
		t.Errorf("%s: the final stage runs as %q; run as nonroot (65532)", dockerfile, users[len(users)-1][1])
	}
}

// checkBuilderGo: the golang: stage's version is go.mod's.
func checkBuilderGo(t *testing.T, froms [][]string) {
	t.Helper()
	mod, err := os.ReadFile(goMod)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go\s+(\d+)\.(\d+)`).FindStringSubmatch(string(mod))
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	wantGo := m[1] + "." + m[2]
	gotGo := ""
	for _, f := range froms {
		if v, ok := strings.CutPrefix(f[1], "golang:"); ok {
			gotGo = v
		}
	}
	if gotGo != wantGo && !strings.HasPrefix(gotGo, wantGo+".") && !strings.HasPrefix(gotGo, wantGo+"-") {
		t.Errorf("%s builds with golang:%s, go.mod says go %s", dockerfile, gotGo, wantGo)
	}
}

// checkProbesInImage: every absolute program a compose healthcheck of the
// rowcast image runs is copied into the image.
func checkProbesInImage(t *testing.T, df string) {
	t.Helper()
	st := loadCompose(t)
	for _, name := range st.rowcastServices() {
		s := st.Services[name]
		if s.Healthcheck == nil {
			continue
		}
		test := strs(s.Healthcheck.Test)
		if len(test) < 2 || test[0] != "CMD" {
			t.Errorf("service %s: healthcheck %q: the image has no shell, use [\"CMD\", ...]", name, test)
			continue
		}
		if !regexp.MustCompile(`(?m)^COPY\s+--from=\S+\s+\S+\s+` + regexp.QuoteMeta(test[1]) + `\s*$`).MatchString(df) {
			t.Errorf("service %s: healthcheck runs %s, which %s does not COPY into the image", name, test[1], dockerfile)
		}
	}
}
