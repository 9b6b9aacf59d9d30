package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestAddrDistinctAndFree(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		addr, err := Addr()
		if err != nil {
			t.Fatal(err)
		}
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		_, p, _ := net.SplitHostPort(addr)
		if port, _ := strconv.Atoi(p); port < low || port >= high {
			t.Fatalf("%s outside %d-%d", addr, low, high-1)
		}
	}
}

func TestAddrSkipsBoundPort(t *testing.T) {
	// A port of the band, bound: the search starting at it takes the next.
	var held net.Listener
	for port := low + 100; port < low+200 && held == nil; port++ {
		held, _ = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	}
	if held == nil {
		t.Fatal("no port of 20100-20199 could be bound")
	}
	defer held.Close()
	_, p, _ := net.SplitHostPort(held.Addr().String())
	port, _ := strconv.Atoi(p)
	addr, err := addrFrom(port-low, high)
	if err != nil {
		t.Fatal(err)
	}
	if addr == held.Addr().String() {
		t.Fatalf("%s is bound, yet handed out", addr)
	}
}
