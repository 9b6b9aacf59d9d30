package layers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func listModule(t *testing.T) (module string, pkgs []pkg) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	module = strings.TrimSpace(string(out))
	out, err = exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list -json: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return module, pkgs
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
}

// rank finds rel's layer: its own entry, else the nearest "/..." entry above it.
func rank(rel string) (int, bool) {
	if r, ok := Ranks[rel]; ok {
		return r, true
	}
	for dir := rel; dir != "."; dir = parent(dir) {
		if r, ok := Ranks[dir+"/..."]; ok {
			return r, true
		}
	}
	return 0, false
}

func parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}

// ours returns the module-relative paths of the module's packages in imports.
func ours(module string, imports []string) []string {
	var rel []string
	for _, imp := range imports {
		if r, ok := strings.CutPrefix(imp, module+"/"); ok {
			rel = append(rel, r)
		}
	}
	return rel
}

func TestEveryPackageHasARank(t *testing.T) {
	module, pkgs := listModule(t)
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p.ImportPath, module+"/")
		if _, ok := rank(rel); !ok {
			t.Errorf("package %s has no layer: add it to Ranks in internal/layers/layers.go, below everything that imports it", rel)
		}
	}
}

func TestImportsRunDown(t *testing.T) {
	module, pkgs := listModule(t)
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p.ImportPath, module+"/")
		own, ok := rank(rel)
		if !ok {
			continue // reported by TestEveryPackageHasARank
		}
		for _, imp := range ours(module, p.Imports) {
			checkImport(t, rel, own, imp, false)
		}
		for _, imp := range ours(module, append(p.TestImports, p.XTestImports...)) {
			if imp != rel {
				checkImport(t, rel, own, imp, true)
			}
		}
	}
}

func checkImport(t *testing.T, from string, own int, imp string, test bool) {
	t.Helper()
	if msg := violation(from, own, imp, test); msg != "" {
		t.Error(msg)
	}
}

// violation says why from may not import imp, or "" when it may.
func violation(from string, own int, imp string, test bool) string {
	if test && slices.Contains(TestHelpers, imp) {
		return ""
	}
	r, ok := rank(imp)
	if ok && r < own {
		return ""
	}
	kind := "imports"
	if test {
		kind = "tests import"
	}
	return fmt.Sprintf("%s (layer %d) %s %s (layer %d): an import must run down the layers of internal/layers/layers.go; move the shared code down, or pass it in from above", from, own, kind, imp, r)
}

// TestViolation checks the checker on arrows up, across and down.
func TestViolation(t *testing.T) {
	for _, c := range []struct {
		from, imp string
		test, bad bool
	}{
		{"sink", "config", false, true},        // up
		{"pipeline", "changelog", false, true}, // up
		{"source", "sink", false, true},        // across: same layer
		{"sink", "source", false, true},        // across: same layer
		{"sink/mysql", "sink", false, false},   // down
		{"sink", "sink/sinktest", true, false}, // a test helper, in tests
		{"sink", "sink/sinktest", false, true}, // not outside tests
	} {
		own, _ := rank(c.from)
		if got := violation(c.from, own, c.imp, c.test) != ""; got != c.bad {
			t.Errorf("%s -> %s (test %v): refused %v, want %v", c.from, c.imp, c.test, got, c.bad)
		}
	}
}
