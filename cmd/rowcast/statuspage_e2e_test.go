package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/service"
)

// TestStatusPage serves the status page from `rowcast run` and checks its
// /status.json, and the page as headless Chromium renders it, against
// `rowcast status --json`. ROWCAST_UPDATE_SCREENSHOT=1 writes the
// screenshot to docs/status-page.png.
func TestStatusPage(t *testing.T) {
	browser := needChromium(t)
	topic, database, addr := testenv.CreateTopic(t, 1), testenv.UniqueName(t, "rc"), freeAddr(t)
	cfg := clusterConfig{database: database, topic: topic, http: addr}.write(t)
	startPublishing(t, "run", cfg, topic)
	replicatedNamed(t, database)
	var page service.StatusReport
	waitFor(t, 60*time.Second, "both replicas caught up on /status.json", func() bool {
		page = getStatusJSON(t, addr)
		return len(page.Nodes) == 2 && page.Nodes[0].State == "caught-up" && page.Nodes[1].State == "caught-up"
	})
	cli := cliStatus(t, cfg)
	sameStatus(t, page, cli)
	// A heartbeat published between the two reads makes a replica "behind"
	// for a moment: compare a fresh pair again before failing.
	for attempt := 1; ; attempt++ {
		dom := renderDOM(t, browser, "http://"+addr+"/")
		lacks := renderedLacks(dom, cli)
		if len(lacks) == 0 {
			break
		}
		if attempt == 5 {
			t.Fatalf("the rendered page lacks %s\nrendered page:\n%s", strings.Join(lacks, ", "), dom)
		}
		time.Sleep(time.Second)
		cli = cliStatus(t, cfg)
	}
	shot := filepath.Join(t.TempDir(), "status-page.png")
	if os.Getenv("ROWCAST_UPDATE_SCREENSHOT") == "1" {
		shot, _ = filepath.Abs("../../docs/status-page.png")
	}
	screenshot(t, browser, "http://"+addr+"/", shot)
}

// needChromium returns the headless browser's path, or fails saying how to
// install it.
func needChromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	msg := "chromium is not installed: apt-get install chromium"
	if os.Getenv("ROWCAST_ALLOW_SKIP") == "1" && !testenv.InCI() {
		t.Skip(msg)
	}
	t.Fatal(msg)
	return ""
}

func getStatusJSON(t *testing.T, addr string) service.StatusReport {
	t.Helper()
	var rep service.StatusReport
	resp, err := http.Get("http://" + addr + "/status.json")
	if err != nil {
		t.Fatalf("GET /status.json: %v", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&rep); resp.StatusCode != 200 || err != nil {
		t.Fatalf("GET /status.json: %d, %v", resp.StatusCode, err)
	}
	return rep
}

// sameStatus compares what does not move while nothing is written: the
// master, the epoch, the topic and each replica's state and read_only.
func sameStatus(t *testing.T, page, cli service.StatusReport) {
	t.Helper()
	if page.Cluster != cli.Cluster || page.Master.Node != cli.Master.Node || page.Master.Epoch != cli.Master.Epoch ||
		page.Topic.Name != cli.Topic.Name || len(page.Nodes) != len(cli.Nodes) {
		t.Fatalf("/status.json %+v\ndiffers from status --json %+v", page, cli)
	}
	for i, n := range cli.Nodes {
		p := page.Nodes[i]
		if p.Node != n.Node || p.Kind != n.Kind || p.State != n.State || p.ReadOnly != n.ReadOnly || p.Offset != n.Offset {
			t.Errorf("replica %d: page %+v, status --json %+v", i, p, n)
		}
	}
}

// chromium runs headless Chromium with args; the page's fetch of
// /status.json completes within the virtual time budget.
func chromium(t *testing.T, browser string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=15000"}, args...)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, browser, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

func renderDOM(t *testing.T, browser, url string) string {
	t.Helper()
	return string(chromium(t, browser, "--dump-dom", url))
}

// cliStatus is `rowcast status --json`.
func cliStatus(t *testing.T, cfg string) service.StatusReport {
	t.Helper()
	code, out, errOut := runCLIProcess(t, "status", "--config", cfg, "--json")
	var cli service.StatusReport
	if err := json.Unmarshal([]byte(out), &cli); code != 0 || err != nil {
		t.Fatalf("rowcast status --json: exit %d, %v: %s", code, err, errOut)
	}
	return cli
}

// renderedLacks lists what of the master and each replica's row (its
// state and read_only) the rendered page does not show as cli says.
func renderedLacks(dom string, cli service.StatusReport) []string {
	want := []string{`<td id="master-node" class="ok">` + cli.Master.Node + `</td>`}
	for _, n := range cli.Nodes {
		ro := map[bool]string{true: "ON", false: "OFF"}[n.ReadOnly]
		want = append(want, `<tr id="replica-`+n.Node+`"><td class="node">`+n.Node+`</td>`,
			`data-node="`+n.Node+`">`+n.State+`</td>`, "<td>"+ro+"</td>")
	}
	var lacks []string
	for _, w := range want {
		if !strings.Contains(dom, w) {
			lacks = append(lacks, w)
		}
	}
	return lacks
}

func screenshot(t *testing.T, browser, url, path string) {
	t.Helper()
	chromium(t, browser, "--window-size=1280,640", "--screenshot="+path, url)
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("screenshot %s: not a PNG (%v)", path, err)
	}
}
