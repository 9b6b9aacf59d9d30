package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "rowcast "+version+" (commit ") {
		t.Fatalf("code %d, output %q", code, out)
	}
}

func TestUnknownCommand(t *testing.T) {
	code, _, errs := runCLI(t, "frobnicate")
	if code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Fatalf("code %d, stderr %q", code, errs)
	}
}

func TestConfigValidate(t *testing.T) {
	code, out, errs := runCLI(t, "config", "validate", "--config", "../../deployments/local/rowcast.yaml")
	if code != 0 || !strings.Contains(out, "ok (cluster local, master db1, replicas [db2 db3 olap]") {
		t.Fatalf("code %d out %q err %q", code, out, errs)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("cluster: x\nmaster: db9\nnodes: [{name: db1, dsn: 'u:p@tcp(h:1)/'}]\nkafka: {brokers: [k]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCLI(t, "config", "validate", "--config", bad)
	for _, want := range []string{`master: "db9" is not a node; use one of db1`, `kafka.brokers[0]: "k" is not host:port`} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}

	code, _, errs = runCLI(t, "config", "validate")
	if code != 2 || !strings.Contains(errs, "--config is required") {
		t.Errorf("code %d stderr %q", code, errs)
	}
}
