package testenv

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissingTLSNodeFailsWithAdvice: under CI a test that needs the
// optional TLS node fails when it does not answer, and says how to start
// it (`up` does not).
func TestMissingTLSNodeFailsWithAdvice(t *testing.T) {
	if os.Getenv("ROWCAST_TESTENV_CHILD") == "1" {
		t.Skip("the child's own copy of this test")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := strings.Split(ln.Addr().String(), ":")[1]
	ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildNeedsTLSNode$", "-test.v")
	cmd.Env = append(os.Environ(), "ROWCAST_TESTENV_CHILD=1", "ROWCAST_DB4_PORT="+closedPort, "CI=true", "ROWCAST_ALLOW_SKIP=1")
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err == nil || !strings.Contains(text, "--- FAIL: TestChildNeedsTLSNode") {
		t.Fatalf("under CI=true the child did not fail (err %v):\n%s", err, text)
	}
	for _, want := range []string{"db4 is not reachable at 127.0.0.1:" + closedPort, "scripts/stack start db4", "ROWCAST_DB4_CA"} {
		if !strings.Contains(text, want) {
			t.Errorf("the child's message lacks %q:\n%s", want, text)
		}
	}
}

// TestChildNeedsTLSNode is run by TestMissingTLSNodeFailsWithAdvice only.
func TestChildNeedsTLSNode(t *testing.T) {
	if os.Getenv("ROWCAST_TESTENV_CHILD") != "1" {
		t.Skip("run as a child process by TestMissingTLSNodeFailsWithAdvice")
	}
	TLSCAFile(t)
	t.Fatal("TLSCAFile returned although the TLS node is unreachable")
}
