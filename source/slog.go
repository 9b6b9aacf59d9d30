package source

import (
	"context"
	"log/slog"

	"github.com/rs/zerolog"
)

// slogBridge sends go-mysql's log/slog records to zerolog. go-mysql logs its
// connection life (connect, rotate, reconnect) at Info and every stream error
// at Error before handing the same error back to us; rowcast returns that
// error and logs it once where it is handled, so go-mysql's Info becomes Debug
// and its Error becomes Warn.
type slogBridge struct {
	log   zerolog.Logger
	attrs []slog.Attr
	group string
}

func newSlogLogger(log zerolog.Logger) *slog.Logger {
	return slog.New(&slogBridge{log: log.With().Str("component", "go-mysql").Logger()})
}

func (h *slogBridge) level(l slog.Level) zerolog.Level {
	switch {
	case l >= slog.LevelWarn:
		return zerolog.WarnLevel
	case l >= slog.LevelInfo:
		return zerolog.DebugLevel
	}
	return zerolog.TraceLevel
}

func (h *slogBridge) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.GetLevel() <= h.level(l)
}

func (h *slogBridge) Handle(_ context.Context, r slog.Record) error {
	ev := h.log.WithLevel(h.level(r.Level))
	if ev == nil {
		return nil
	}
	add := func(a slog.Attr) bool {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		ev = ev.Str(key, a.Value.Resolve().String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	ev.Msg(r.Message)
	return nil
}

func (h *slogBridge) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *slogBridge) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}
