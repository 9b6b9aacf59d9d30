package service

import (
	"testing"
	"time"
)

func TestTransactionsAhead(t *testing.T) {
	cases := []struct {
		flavor, master, topic string
		want                  int64
		fails                 bool
	}{
		{"mariadb", "0-1-100", "0-1-100", 0, false},
		{"mariadb", "0-1-105", "0-1-100", 5, false},
		{"mariadb", "0-1-105,1-2-7", "0-1-100", 12, false},
		{"mariadb", "0-1-100", "0-1-105", 0, false},      // the master read before the topic moved on
		{"mariadb", "0-1-100", "0-1-100,7-3-5", 0, true}, // a domain the master lacks: another history
		{"mysql", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-4", 6, false},
		{"mysql", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10", 0, false},
		{"mariadb", "not a set", "0-1-1", 0, true},
	}
	for _, c := range cases {
		got, err := transactionsAhead(c.flavor, c.master, c.topic)
		if (err != nil) != c.fails || (!c.fails && got != c.want) {
			t.Errorf("%s master %s topic %s: %d, %v; want %d (error: %v)", c.flavor, c.master, c.topic, got, err, c.want, c.fails)
		}
	}
}

// A replica that holds the whole topic is behind when the master has
// transactions that no healthy reader publishes, caught up otherwise.
func TestSetLagReader(t *testing.T) {
	topic := TopicStatus{EndOffset: 10}
	cases := []struct {
		reader ReaderStatus
		want   string
	}{
		{ReaderStatus{Health: "healthy", MasterAhead: 3}, "caught-up"},
		{ReaderStatus{Health: WorkerNotRunning, MasterAhead: 0}, "caught-up"},
		{ReaderStatus{Health: WorkerNotRunning, MasterAhead: 3}, "behind"},
		{ReaderStatus{Health: readerHealthUnknown, MasterAhead: 1}, "behind"},
		{ReaderStatus{Health: readerHealthUnknown, MasterAhead: -1}, "caught-up"},
	}
	for _, c := range cases {
		r := ReplicaInfo{State: "checkpointed", Offset: 10}
		r.setLag(topic, c.reader, time.Now())
		if r.State != c.want {
			t.Errorf("reader %+v: replica %s, want %s", c.reader, r.State, c.want)
		}
	}
}
