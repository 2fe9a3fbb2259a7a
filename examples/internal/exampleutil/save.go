package exampleutil

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/state"
)

// SavePath returns the file the results of the batch at t go to:
// prefix-<t in ms>.jsonl, or prefix-<kind>-<t in ms>.jsonl when kind is not
// empty.
func SavePath(prefix, kind string, t time.Time) string {
	ms := strconv.FormatInt(t.UnixMilli(), 10)
	if kind != "" {
		return prefix + "-" + kind + "-" + ms + ".jsonl"
	}
	return prefix + "-" + ms + ".jsonl"
}

// saveLines writes lines, each one JSON object, to path, one a line,
// atomically: a reader sees the whole file or none of it, and a batch re-run
// after a crash replaces its file rather than adding another. The directory
// is created if needed.
func saveLines(path string, lines []json.RawMessage) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create the directory of %s: %w", path, err)
	}
	return state.WriteAtomic(state.OSFS{}, path, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		for _, l := range lines {
			bw.Write(l)
			bw.WriteByte('\n')
		}
		return bw.Flush()
	})
}

// Fixed is a float64 that marshals to JSON with exactly six decimals, so
// that saved results do not depend on the order in which a sum was taken.
type Fixed float64

// MarshalJSON writes f with six decimals. JSON has no infinities nor NaN:
// a non-finite f is an error.
func (f Fixed) MarshalJSON() ([]byte, error) {
	if math.IsInf(float64(f), 0) || math.IsNaN(float64(f)) {
		return nil, fmt.Errorf("%g is not a finite number, which JSON cannot hold", float64(f))
	}
	return strconv.AppendFloat(nil, float64(f), 'f', 6, 64), nil
}

// SortByValue sorts pairs by value, highest first, and by key among equal
// values, so that results print and save in a reproducible order.
func SortByValue[K cmp.Ordered, V cmp.Ordered](kvs []dstream.KV[K, V]) {
	slices.SortFunc(kvs, func(a, b dstream.KV[K, V]) int {
		if c := cmp.Compare(b.Value, a.Value); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
}

// SortByKey sorts pairs by key.
func SortByKey[K cmp.Ordered, V any](kvs []dstream.KV[K, V]) {
	slices.SortFunc(kvs, func(a, b dstream.KV[K, V]) int { return cmp.Compare(a.Key, b.Key) })
}

// Collect returns every pair of b in one slice.
func Collect[T any](b dstream.Batch[T]) []T {
	return slices.AppendSeq(make([]T, 0, b.Len()), b.All())
}

// checkSave makes sure the --save prefix can be written, before the job
// starts, rather than at its first batch.
func checkSave(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := probeDir(filepath.Dir(prefix)); err != nil {
		return fmt.Errorf("--save %s cannot be written (%v); pass a --save prefix in a directory you can write to", prefix, err)
	}
	return nil
}

// probeDir creates dir if needed and a file in it, which it removes.
func probeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".sluice-write-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	err = f.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	return err
}
