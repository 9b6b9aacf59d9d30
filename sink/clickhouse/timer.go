package clickhouse

import (
	"context"
	"time"
)

// startTimer runs the goroutine that inserts committed rows once they waited
// FlushInterval, while the worker waits for messages.
func (t *Target) startTimer() {
	if t.cfg.FlushInterval <= 0 {
		return
	}
	t.stopBg, t.bgDone = make(chan struct{}), make(chan struct{})
	go t.timer(t.stopBg, t.bgDone)
}

func (t *Target) stopTimer() {
	if t.stopBg == nil {
		return
	}
	close(t.stopBg)
	<-t.bgDone
	t.stopBg, t.bgDone = nil, nil
}

func (t *Target) timer(stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(max(t.cfg.FlushInterval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			t.flushDue()
		}
	}
}

// flushDue inserts what is due, outside a transaction (the worker's next
// commit flushes one that is open). An error is kept for the worker's next
// call, which then re-applies from the stored checkpoint.
func (t *Target) flushDue() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inTx || t.landed() != nil || t.pendingSt == nil || !t.due() {
		return
	}
	if err := t.startFlush(context.Background()); err != nil {
		t.bgErr = err
	}
}
