// Package layers states rowcast's package layering as data: the rank of every
// package of the module, from the event model at the bottom to the binary at
// the top. A package may import only packages of a lower rank, so arrows
// never run back up the data path (source → pipeline → changelog → sink →
// checkpoint, with config, the operator workflows and the wiring above).
// layers_test.go checks the whole module against it.
package layers

// Ranks maps a package path, relative to the module, to its layer. A path
// ending in "/..." covers that folder and everything below it.
var Ranks = map[string]int{
	// The foundation: imports nothing of rowcast's.
	"pipeline":          0, // event model and wire format
	"checkpoint":        0, // where positions and offsets are stored
	"internal/mysqlerr": 0,
	"internal/dbtls":    0, // the TLS settings of MySQL links, for both MySQL clients
	"internal/redact":   0, // SQL text cut before its literals
	"internal/grants":   0, // least-privilege check of SHOW GRANTS
	"internal/testenv":  0,
	"internal/freeport": 0, // loopback ports for the processes tests start

	"changelog":         1, // the Kafka topic client
	"internal/obs":      1, // metrics and /healthz; cuts SQL with internal/redact
	"internal/workload": 1, // test and demo workloads; names MySQL errors with internal/mysqlerr
	"clone/clonetest":   1, // test servers: empty MariaDB nodes to clone into

	// The two ends of the data path, which never import each other.
	"source":            2, // binlog reading → events
	"sink":              2, // the worker and the Target contract
	"changelog/history": 2, // positions and epochs read back from the topic

	"sink/clickhouse": 3, // sink kinds
	"sink/mysql":      3,
	"sink/sinktest":   3, // the conformance suite every sink kind passes

	"verify": 4,

	"config": 5, // the YAML, mapped once to each component's config

	"failover": 6,
	"clone":    6, // rowcast clone: a new replica copied from a running one
	"service":  7, // wiring of the reader and the sink workers
	"replay":   8,

	"bench/internal/...": 9, // what the benchmark mains share

	// Mains and checks of the whole: nothing imports them.
	"cmd/...":           10,
	"bench/...":         10,
	"bench/soak":        10, // scripts/soak
	"deployments/...":   10,
	"internal/demoload": 10,
	"internal/layers":   10,
}

// TestHelpers may be imported by any package's tests, whatever their rank.
var TestHelpers = []string{"internal/testenv", "internal/freeport", "internal/workload", "sink/sinktest"}
