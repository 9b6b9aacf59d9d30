package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
)

func init() {
	commands["tail"] = command{summary: "print the changelog's messages as JSON lines", run: runTail}
}

func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := newCommand("tail", "--config FILE [--from-offset N] [--limit N] [--follow]", "", stderr)
	from := env.fs.Int64("from-offset", 0, "first offset to print; negative counts back from the end (-10: the last ten)")
	limit := env.fs.Int64("limit", 0, "stop after this many messages (0: no limit)")
	follow := env.fs.Bool("follow", false, "keep waiting for new messages instead of stopping at the end of the topic")
	cfg, _, err := env.setup(args, nil)
	if err != nil {
		return err
	}
	kc := cfg.ChangelogConfig()
	start, end, err := tailRange(ctx, kc, *from)
	if err != nil {
		return err
	}
	if !*follow && start >= end {
		return nil
	}
	cons, err := changelog.NewConsumer(kc, start, zerolog.Nop(), nil)
	if err != nil {
		return err
	}
	defer cons.Close()
	return printMessages(ctx, cons, stdout, *limit, end, *follow)
}

// tailRange resolves --from-offset against the topic: where to start, and
// the topic's end offset now.
func tailRange(ctx context.Context, kc changelog.Config, from int64) (start, end int64, err error) {
	first, err := changelog.FirstOffset(ctx, kc)
	if err != nil {
		return 0, 0, err
	}
	if end, err = changelog.EndOffset(ctx, kc); err != nil {
		return 0, 0, err
	}
	start = from
	if start < 0 {
		start = max(first, end+start)
	}
	if start < first {
		return 0, 0, fmt.Errorf("offset %d is no longer in topic %s (its first offset is %d): pass --from-offset %d or later", start, kc.Topic, first, first)
	}
	return start, end, nil
}

// printMessages writes the consumer's messages as JSON lines: at most limit
// (0: no limit), up to end, or when following the topic, flushed as they
// come until ctx ends.
func printMessages(ctx context.Context, cons *changelog.Consumer, stdout io.Writer, limit, end int64, follow bool) error {
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	for n := int64(0); limit == 0 || n < limit; n++ {
		if !follow && cons.Offset() >= end {
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
		if follow {
			w.Flush()
		}
	}
	return nil
}

// writeTailLine prints {"offset":N,"timestamp":"...","key":K,"value":V}, and
// "refused" with the reason when the message failed the signature check. Key
// and value are embedded as JSON when they are, else as strings, so a
// malformed message is still shown.
func writeTailLine(w *bufio.Writer, m changelog.Message) error {
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
	if m.SigErr != nil {
		// Shown, not hidden: the operator looks for what a stray writer put there.
		msg, _ := json.Marshal(m.SigErr.Error())
		w.WriteString(`,"refused":`)
		w.Write(msg)
	}
	_, err := w.WriteString("}\n")
	return err
}
