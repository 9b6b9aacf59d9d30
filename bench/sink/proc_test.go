package main

import "testing"

func TestGCLine(t *testing.T) {
	at, live, ok := gcLine("gc 38 @51.381s 0%: 0.1+2+0.02 ms clock, 0.2+1/2/0+0.04 ms cpu, 267->278->162 MB, 280 MB goal, 0 MB stacks, 0 MB globals, 2 P")
	if !ok || at != 51.381 || live != 162 {
		t.Fatalf("gcLine = %v, %v, %v; want 51.381, 162, true", at, live, ok)
	}
	if _, _, ok := gcLine(`{"level":"warn","message":"gc 1 @"}`); ok {
		t.Fatal("a log line read as a GC")
	}
}
