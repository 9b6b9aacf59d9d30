// Package freeport hands out loopback addresses for the processes a test or
// a benchmark starts and tells to listen.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

// The band lies below Linux's ephemeral range (32768-60999 by default), so
// that between the pick and the started process's bind neither an outgoing
// connection nor another program's ":0" listener takes the port.
const (
	low  = 20000
	high = 32000
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Addr returns 127.0.0.1:port with a port that is free now and that this
// process never handed out before: two addresses asked for one after the
// other differ even when neither is bound yet.
func Addr() (string, error) {
	return addrFrom(rand.IntN(high - low))
}

// addrFrom looks for the port from low+start on, going round the band.
func addrFrom(start int) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	for i := range high - low {
		port := low + (start+i)%(high-low)
		if given[port] || !free(port) {
			continue
		}
		given[port] = true
		return fmt.Sprintf("127.0.0.1:%d", port), nil
	}
	return "", fmt.Errorf("freeport: every port of 127.0.0.1:%d-%d is taken or was handed out", low, high-1)
}

func free(port int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
