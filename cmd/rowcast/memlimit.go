package main

import (
	"os"
	"runtime/debug"

	"github.com/rs/zerolog"
)

// setMemoryLimit gives the Go runtime a soft memory limit of mib MiB per
// component the process runs (the reader, each sink worker), unless
// GOMEMLIMIT is set: without it the heap may grow to twice what was live at
// the last collection, twice a big row's copies. docs/DESIGN.md, "Memory".
func setMemoryLimit(mib, components int, log zerolog.Logger) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		log.Info().Str("GOMEMLIMIT", os.Getenv("GOMEMLIMIT")).Msg("memory limit from the environment; memory_limit_mib ignored")
		return
	}
	limit := int64(mib) << 20 * int64(max(components, 1))
	debug.SetMemoryLimit(limit)
	log.Debug().Int64("bytes", limit).Msg("soft memory limit set")
}
