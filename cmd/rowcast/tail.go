package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/pipeline"
)

func init() {
	commands["tail"] = command{summary: "print the changelog's messages as JSON lines", run: runTail}
}

func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tail", "--config FILE [--from-offset N] [--limit N] [--follow]", stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	from := fs.Int64("from-offset", 0, "first offset to print; negative counts back from the end (-10: the last ten)")
	limit := fs.Int64("limit", 0, "stop after this many messages (0: no limit)")
	follow := fs.Bool("follow", false, "keep waiting for new messages instead of stopping at the end of the topic")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	kc := kafkaConfig(cfg)
	first, err := pipeline.FirstOffset(ctx, kc)
	if err != nil {
		return err
	}
	end, err := pipeline.EndOffset(ctx, kc)
	if err != nil {
		return err
	}
	start := *from
	if start < 0 {
		start = max(first, end+start)
	}
	if start < first {
		return fmt.Errorf("offset %d is no longer in topic %s (its first offset is %d): pass --from-offset %d or later", start, kc.Topic, first, first)
	}
	if !*follow && start >= end {
		return nil
	}
	cons, err := pipeline.NewConsumer(kc, start, zerolog.Nop(), nil)
	if err != nil {
		return err
	}
	defer cons.Close()
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	for n := int64(0); *limit == 0 || n < *limit; n++ {
		if !*follow && cons.Offset() >= end {
			break
		}
		m, err := cons.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := writeTailLine(w, m); err != nil {
			return err
		}
		if *follow {
			w.Flush()
		}
	}
	return nil
}

// writeTailLine prints {"offset":N,"timestamp":"...","key":K,"value":V}. Key
// and value are embedded as JSON when they are, else as strings, so a
// malformed message is still shown.
func writeTailLine(w *bufio.Writer, m pipeline.Message) error {
	w.WriteString(`{"offset":`)
	w.WriteString(strconv.FormatInt(m.Offset, 10))
	w.WriteString(`,"timestamp":`)
	ts, _ := json.Marshal(m.Time.UTC())
	w.Write(ts)
	for _, f := range []struct {
		name string
		b    []byte
	}{{"key", m.Key}, {"value", m.Value}} {
		w.WriteString(`,"` + f.name + `":`)
		switch {
		case f.b == nil:
			w.WriteString("null")
		case json.Valid(f.b):
			w.Write(f.b)
		default:
			s, _ := json.Marshal(string(f.b))
			w.Write(s)
		}
	}
	_, err := w.WriteString("}\n")
	return err
}
