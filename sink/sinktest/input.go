// Package sinktest is the conformance suite that every sink kind passes, and
// the in-memory pieces it is built from: an Input over a slice or a generator
// (no Kafka needed), a scripted changelog with its expected result, counting
// Metrics and an in-memory Target that serves as the reference sink.
package sinktest

import (
	"context"
	"sync"
	"time"

	"github.com/rowcast/rowcast/sink"
)

// Input is a sink.Input over messages addressed by offset 0..Len-1. It is
// safe for concurrent use (Status readers, hooks).
type Input struct {
	// Len is the number of messages.
	Len int64
	// At returns the message at an offset in [0, Len). Its Offset field is
	// set by the Input.
	At func(offset int64) sink.Message
	// Stop, when > 0, ends the input (sink.ErrEndOfInput) at that offset, as
	// if the rest had not been produced yet: a restart test.
	Stop int64
	// Live makes Buffered report 0, like a consumer that is caught up, so
	// the worker commits every source transaction on its own. Otherwise
	// every remaining message counts as buffered and the worker merges.
	Live bool
	// Hook, when set, runs before the message at each offset is returned
	// (inject a fault at a precise point: kill a connection, cancel).
	Hook func(offset int64)

	mu  sync.Mutex
	pos int64
}

// NewInput returns an Input over msgs; message i gets offset i.
func NewInput(msgs []sink.Message) *Input {
	return &Input{Len: int64(len(msgs)), At: func(o int64) sink.Message { return msgs[o] }}
}

// Next returns the next message, sink.ErrEndOfInput at the end.
func (in *Input) Next(ctx context.Context) (sink.Message, error) {
	if err := ctx.Err(); err != nil {
		return sink.Message{}, err
	}
	in.mu.Lock()
	o := in.pos
	end := o >= in.Len || (in.Stop > 0 && o >= in.Stop)
	if !end {
		in.pos++
	}
	hook := in.Hook
	in.mu.Unlock()
	if end {
		return sink.Message{}, sink.ErrEndOfInput
	}
	if hook != nil {
		hook(o)
		if err := ctx.Err(); err != nil {
			return sink.Message{}, err
		}
	}
	m := in.At(o)
	m.Offset = o
	return m, nil
}

// SeekTo makes the next Next return the message at offset.
func (in *Input) SeekTo(offset int64) error {
	in.mu.Lock()
	in.pos = offset
	in.mu.Unlock()
	return nil
}

// Buffered is 0 when Live, else the number of messages left.
func (in *Input) Buffered() int {
	if in.Live {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	end := in.Len
	if in.Stop > 0 && in.Stop < end {
		end = in.Stop
	}
	return int(max(end-in.pos, 0))
}

// Counters is a sink.Metrics that counts, for assertions.
type Counters struct {
	mu     sync.Mutex
	counts map[sink.Counter]int
	errors map[string]int
	offset int64
}

// Add implements sink.Metrics.
func (c *Counters) Add(k sink.Counter, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[sink.Counter]int{}
	}
	c.counts[k] += n
}

// Error implements sink.Metrics.
func (c *Counters) Error(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.errors == nil {
		c.errors = map[string]int{}
	}
	c.errors[kind]++
}

// Applied implements sink.Metrics.
func (c *Counters) Applied(offset int64, _ time.Duration) {
	c.mu.Lock()
	c.offset = offset
	c.mu.Unlock()
}

// Get returns a counter's value.
func (c *Counters) Get(k sink.Counter) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[k]
}

// Errors returns the count of errors of a kind.
func (c *Counters) Errors(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errors[kind]
}

// LastOffset is the last applied offset reported.
func (c *Counters) LastOffset() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}
