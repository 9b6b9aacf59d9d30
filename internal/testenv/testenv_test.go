package testenv

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissingServiceFailsWithAdvice runs a test that needs Kafka, in a child
// process whose Kafka address points at a closed port, as CI would: the child
// must fail (not skip) and say how to start the stack.
func TestMissingServiceFailsWithAdvice(t *testing.T) {
	if os.Getenv("ROWCAST_TESTENV_CHILD") == "1" {
		t.Skip("the child's own copy of this test")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := strings.Split(ln.Addr().String(), ":")[1]
	ln.Close()

	for _, ci := range []string{"true", ""} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChildNeedsKafka$", "-test.v")
		cmd.Env = append(os.Environ(), "ROWCAST_TESTENV_CHILD=1", "ROWCAST_KAFKA_PORT="+closedPort, "CI="+ci, "ROWCAST_ALLOW_SKIP=1")
		out, err := cmd.CombinedOutput()
		text := string(out)
		if ci == "true" {
			if err == nil || !strings.Contains(text, "--- FAIL: TestChildNeedsKafka") {
				t.Fatalf("under CI=true the child did not fail (err %v):\n%s", err, text)
			}
		} else if err != nil || !strings.Contains(text, "--- SKIP: TestChildNeedsKafka") {
			// Outside CI, ROWCAST_ALLOW_SKIP=1 is the developer's explicit choice.
			t.Fatalf("outside CI with ROWCAST_ALLOW_SKIP=1 the child did not skip (err %v):\n%s", err, text)
		}
		for _, want := range []string{"kafka is not reachable at 127.0.0.1:" + closedPort, "scripts/stack up"} {
			if !strings.Contains(text, want) {
				t.Errorf("CI=%q: the child's message lacks %q:\n%s", ci, want, text)
			}
		}
	}
}

// TestChildNeedsKafka is run by TestMissingServiceFailsWithAdvice only.
func TestChildNeedsKafka(t *testing.T) {
	if os.Getenv("ROWCAST_TESTENV_CHILD") != "1" {
		t.Skip("run as a child process by TestMissingServiceFailsWithAdvice")
	}
	Need(t, "kafka")
	t.Fatal("Need returned although Kafka is unreachable")
}
