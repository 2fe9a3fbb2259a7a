// Package logtest captures what the code under test logs: as text, with
// [Buffer], or as records, with [Records].
package logtest

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// Buffer is the target of a text log that tests read; it is safe for
// concurrent use. The zero value is ready.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was logged so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logger returns a text logger of level and above writing to b.
func (b *Buffer) Logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level}))
}

// Records is a [slog.Handler] that keeps the records at INFO and above and
// sends each on C, when C has room, for tests that wait for one.
type Records struct {
	C chan slog.Record

	mu      sync.Mutex
	records []slog.Record
}

// NewRecords returns a Records whose C holds up to 100 records.
func NewRecords() *Records { return &Records{C: make(chan slog.Record, 100)} }

func (h *Records) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *Records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	select {
	case h.C <- r.Clone():
	default:
	}
	return nil
}

func (h *Records) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *Records) WithGroup(string) slog.Handler      { return h }

// Snapshot returns the records kept so far.
func (h *Records) Snapshot() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]slog.Record(nil), h.records...)
}

// Attrs returns the attributes of r by key.
func Attrs(r slog.Record) map[string]slog.Value {
	m := make(map[string]slog.Value)
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value
		return true
	})
	return m
}
