package exampleutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Keyed is a result row that names itself by its key (a word, a page, an
// address) when it cannot be encoded. Rows that are not Keyed are named by
// their fmt.Sprint form.
type Keyed interface {
	RowKey() string
}

// DeadLetter is one line of the --dead-letter file: a result row that could
// not be encoded as JSON, so that neither --save nor --sink received it. The
// fields match sqlsink's dead-letter table, with the row's key beside them.
type DeadLetter struct {
	Job         string `json:"job"`
	Kind        string `json:"kind"` // "" for the main results
	BatchTimeMs int64  `json:"batch_time_ms"`
	Key         string `json:"key"`
	Element     string `json:"element"` // the row in fmt.Sprint form
	Error       string `json:"error"`
}

// deadLetters handles the result rows that cannot be encoded: each is
// counted, named in one warning and skipped, and with --dead-letter
// appended to that file before the batch commits, so that no row fails a
// batch (and with it every run after) for good.
type deadLetters struct {
	job    string
	path   string // --dead-letter; empty: count and warn only
	logger *slog.Logger

	mu    sync.Mutex
	n     int64  // since the last take
	first string // the first one's key and reason since the last take
	total int64
}

// encodeRows encodes each row as one line of JSON, as --save and --sink
// write it, and passes the rows that cannot be encoded to d. It fails only
// when the --dead-letter file cannot be written.
func encodeRows[T any](d *deadLetters, kind string, t time.Time, rows []T) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(rows))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	var dead []DeadLetter
	for _, r := range rows {
		buf.Reset()
		if err := enc.Encode(r); err != nil {
			dead = append(dead, DeadLetter{Job: d.job, Kind: kind, BatchTimeMs: t.UnixMilli(),
				Key: rowKey(r), Element: fmt.Sprint(r), Error: err.Error()})
			continue
		}
		out = append(out, json.RawMessage(bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))))
	}
	if len(dead) > 0 {
		if err := d.add(dead); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func rowKey(r any) string {
	if k, ok := r.(Keyed); ok {
		return k.RowKey()
	}
	return fmt.Sprint(r)
}

// add appends dead to the --dead-letter file (synced before the batch
// commits), then counts each and names it in one warning.
func (d *deadLetters) add(dead []DeadLetter) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	msg := "cannot encode a result row; skipped it (pass --dead-letter FILE to keep such rows)"
	if d.path != "" {
		if err := appendDeadLetters(d.path, dead); err != nil {
			return err
		}
		msg = "cannot encode a result row; wrote it to the --dead-letter file"
	}
	for _, x := range dead {
		attrs := []any{"key", x.Key, "kind", x.Kind, "batch", time.UnixMilli(x.BatchTimeMs).UTC().Format(time.RFC3339Nano), "err", x.Error}
		if d.path != "" {
			attrs = append(attrs, "file", d.path)
		}
		d.logger.Warn(msg, attrs...)
		if d.n == 0 {
			d.first = fmt.Sprintf("%q: %s", x.Key, x.Error)
		}
		d.n++
		d.total++
	}
	return nil
}

func appendDeadLetters(path string, dead []DeadLetter) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, x := range dead {
		if err := enc.Encode(x); err != nil {
			return err // strings only: cannot happen
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cannot create the directory of --dead-letter %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open --dead-letter %s: %w", path, err)
	}
	_, err = f.Write(buf.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write --dead-letter %s: %w", path, err)
	}
	return nil
}

// take returns the count since the last take and the first one's key and
// reason, and resets both.
func (d *deadLetters) take() (n int64, first string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, first = d.n, d.first
	d.n, d.first = 0, ""
	return n, first
}

// batchNote is what the batch line says of the rows dead-lettered since the
// last batch line: nothing when there were none.
func (d *deadLetters) batchNote() string {
	n, first := d.take()
	if n == 0 {
		return ""
	}
	where := "skipped"
	if d.path != "" {
		where = "in " + d.path
	}
	return fmt.Sprintf(", %s not encodable, %s (first %s)", Plural(n, "row", "rows"), where, first)
}

// Plural returns n with the singular or plural noun: "1 batch", "2 batches".
func Plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// checkDeadLetter makes sure the --dead-letter file can be appended to,
// before the job starts, without creating it.
func checkDeadLetter(path string) error {
	if path == "" {
		return nil
	}
	err := probeDir(filepath.Dir(path))
	if err == nil {
		var f *os.File
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			err = f.Close()
		} else if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("--dead-letter %s cannot be written (%v); pass a --dead-letter file in a directory you can write to", path, err)
	}
	return nil
}
