package exampleutil

import (
	"context"
	"log/slog"
)

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
