package main

import (
	"testing"
	"time"
)

func TestLagOf(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	commits := []commit{{id: 10, at: at(0)}, {id: 20, at: at(10)}, {id: 30, at: at(20)}, {id: 40, at: at(30)}}
	// ClickHouse shows 20 at 500 ms (10 and 20 with it), 30 at 600 ms, 40 never.
	polls := []seen{{id: -1, at: at(5)}, {id: 0, at: at(100)}, {id: 20, at: at(500)}, {id: 30, at: at(600)}}
	res := lagOf(commits, polls)
	if res.txns != 3 || res.max != 580*time.Millisecond || res.p50 != 500*time.Millisecond {
		t.Fatalf("lagOf: %+v", res)
	}
}
