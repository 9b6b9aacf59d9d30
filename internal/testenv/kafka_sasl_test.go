package testenv

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissingKafkaSASLFailsUnderCI runs a test that needs the SASL_SSL
// listener in a child process whose listener port is closed, under CI: the
// child must fail (not skip) and say how to start the listener.
func TestMissingKafkaSASLFailsUnderCI(t *testing.T) {
	if os.Getenv("ROWCAST_TESTENV_CHILD") == "1" {
		t.Skip("the child's own copy of this test")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := strings.Split(ln.Addr().String(), ":")[1]
	ln.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestChildNeedsKafkaSASL$", "-test.v")
	cmd.Env = append(os.Environ(), "ROWCAST_TESTENV_CHILD=1", "ROWCAST_KAFKA_SASL_PORT="+closedPort, "CI=true", "ROWCAST_ALLOW_SKIP=1")
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err == nil || !strings.Contains(text, "--- FAIL: TestChildNeedsKafkaSASL") {
		t.Fatalf("under CI=true the child did not fail (err %v):\n%s", err, text)
	}
	for _, want := range []string{"kafka SASL_SSL listener at 127.0.0.1:" + closedPort, "scripts/stack stop kafka && scripts/stack start kafka"} {
		if !strings.Contains(text, want) {
			t.Errorf("the child's message lacks %q:\n%s", want, text)
		}
	}
}

// TestChildNeedsKafkaSASL is run by TestMissingKafkaSASLFailsUnderCI only.
func TestChildNeedsKafkaSASL(t *testing.T) {
	if os.Getenv("ROWCAST_TESTENV_CHILD") != "1" {
		t.Skip("run as a child process by TestMissingKafkaSASLFailsUnderCI")
	}
	NeedKafkaSASL(t)
	t.Fatal("NeedKafkaSASL returned although the listener is unreachable")
}
