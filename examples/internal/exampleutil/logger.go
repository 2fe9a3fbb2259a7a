package exampleutil

import (
	"context"
	"io"
	"log/slog"
)

// newLogger returns the logger --log-level and --log-format ask for, writing
// to w (standard error).
func newLogger(w io.Writer, cfg Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// quietFailures drops the engine's "batch failed" record: the example tells
// a failed batch itself, in one line, when Run returns.
type quietFailures struct{ slog.Handler }

func (h quietFailures) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "batch failed" {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietFailures) WithAttrs(as []slog.Attr) slog.Handler {
	return quietFailures{h.Handler.WithAttrs(as)}
}

func (h quietFailures) WithGroup(name string) slog.Handler {
	return quietFailures{h.Handler.WithGroup(name)}
}
