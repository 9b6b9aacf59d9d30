package benchkit

import (
	"flag"
	"os"
	"strconv"
	"strings"
)

// RunFlags are the flags of every benchmark that say what ran and where its
// result goes; scripts/bench sets them.
type RunFlags struct {
	Commit     string // rowcast commit, for the report
	LoadBefore string // load average before the run; empty: read at start
	Doc        string // markdown file that gets this run's section; empty: none
}

// Register adds --commit, --load-before and --doc to fs.
func (f *RunFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Commit, "commit", "?", "rowcast commit, for the report")
	fs.StringVar(&f.LoadBefore, "load-before", "", "load average before the run (default: read at start)")
	fs.StringVar(&f.Doc, "doc", "", "markdown file to add this run's section to (replacing one of the same day)")
}

// KafkaFlags name the stack's Kafka broker.
type KafkaFlags struct {
	Broker  string // bootstrap host:port
	Version string // for the report
	PID     int    // to report its CPU time; 0: unknown
	PIDFile string // holds the pid, read at each measurement (instead of PID)
}

// Register adds --kafka, --kafka-version, --kafka-pid and --kafka-pid-file
// to fs.
func (f *KafkaFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Broker, "kafka", Host()+":"+Env("ROWCAST_KAFKA_PORT", "9092"), "Kafka bootstrap broker")
	fs.StringVar(&f.Version, "kafka-version", "?", "Kafka version, for the report")
	fs.IntVar(&f.PID, "kafka-pid", 0, "pid of the Kafka broker, to report its CPU time")
	fs.StringVar(&f.PIDFile, "kafka-pid-file", "", "file holding the Kafka broker's pid, read at each measurement (instead of --kafka-pid)")
}

// BrokerPID is the broker's pid now: its pid file's when there is one, as
// a test of someone else's may restart the stack's broker meanwhile.
func (f *KafkaFlags) BrokerPID() int {
	if f.PIDFile == "" {
		return f.PID
	}
	b, err := os.ReadFile(f.PIDFile)
	if err != nil {
		return f.PID
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
