// Package freeport hands out loopback addresses for the processes a test or
// a benchmark starts and tells to listen.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// The band lies below Linux's ephemeral range (32768-60999 by default), so
// that between the pick and the started process's bind neither an outgoing
// connection nor another program's ":0" listener takes the port. Where the
// ephemeral range starts lower, the band ends there (ephemeralLow).
const (
	low  = 20000
	high = 32000
)

// minBand is the fewest ports the band may keep below the ephemeral range.
const minBand = 1000

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Addr returns 127.0.0.1:port with a port that is free now and that this
// process never handed out before: two addresses asked for one after the
// other differ even when neither is bound yet.
func Addr() (string, error) {
	end := min(high, ephemeralLow())
	if end-low < minBand {
		return "", fmt.Errorf("freeport: the ephemeral port range starts at %d, leaving fewer than %d ports of %d-%d outside it: raise the low end of net.ipv4.ip_local_port_range to %d or more", end, minBand, low, high-1, low+minBand)
	}
	return addrFrom(rand.IntN(end-low), end)
}

// addrFrom looks for the port from low+start on, going round low to end.
func addrFrom(start, end int) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	for i := range end - low {
		port := low + (start+i)%(end-low)
		if given[port] || !Free(port) {
			continue
		}
		given[port] = true
		return fmt.Sprintf("127.0.0.1:%d", port), nil
	}
	return "", fmt.Errorf("freeport: every port of 127.0.0.1:%d-%d is taken or was handed out", low, end-1)
}

// ephemeralLow is the first port of the kernel's ephemeral range; high when
// it cannot be read (not Linux).
var ephemeralLow = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return high
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return high
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return high
	}
	return n
})

// Free reports whether nothing listens on port of 127.0.0.1 now.
func Free(port int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
