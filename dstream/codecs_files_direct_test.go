package dstream_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// word and tally have only unexported fields, which the default gob codec
// cannot carry: a MapWithState keeping them needs its own codecs.
type word struct{ s string }

type tally struct {
	n    int
	seen bool
}

// countingCodec encodes with its functions and counts its calls, so a test
// sees that the store and the checkpoint used it.
type countingCodec[T any] struct {
	encode           func(T) []byte
	decode           func([]byte) (T, error)
	encodes, decodes atomic.Int64
}

func (c *countingCodec[T]) Encode(v T) ([]byte, error) {
	c.encodes.Add(1)
	return c.encode(v), nil
}

func (c *countingCodec[T]) Decode(b []byte) (T, error) {
	c.decodes.Add(1)
	return c.decode(b)
}

func wordCodec() *countingCodec[word] {
	return &countingCodec[word]{
		encode: func(w word) []byte { return []byte(w.s) },
		decode: func(b []byte) (word, error) { return word{string(b)}, nil },
	}
}

func tallyCodec() *countingCodec[tally] {
	return &countingCodec[tally]{
		encode: func(t tally) []byte {
			b := binary.AppendVarint(nil, int64(t.n))
			if t.seen {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
			return b
		},
		decode: func(b []byte) (tally, error) {
			n, k := binary.Varint(b)
			if k <= 0 || len(b) != k+1 || b[k] > 1 {
				return tally{}, fmt.Errorf("bad tally encoding %x", b)
			}
			return tally{n: int(n), seen: b[k] == 1}, nil
		},
	}
}

// TestStateSpecWithCodecs keeps state whose key and value types gob cannot
// encode, through WithCodecs, across a stop and a restart from the
// checkpoint: the restarted job continues the counts, and both codecs were
// called to write the state and to read it back.
func TestStateSpecWithCodecs(t *testing.T) {
	_, err := state.CodecFor[tally]().Encode(tally{n: 1})
	require.Error(t, err, "the default codec cannot carry tally, so a passing test shows the custom codec at work")

	input := [][]string{{"a"}, {"a", "b"}, {"b", "c", "a"}, {"c"}, {"a", "d"}, {}}
	type run struct {
		keys   *countingCodec[word]
		states *countingCodec[tally]
	}
	build := func(r run) func(*dstream.Stream[string]) *dstream.Stream[string] {
		return func(s *dstream.Stream[string]) *dstream.Stream[string] {
			pairs := dstream.Map(s, func(x string) dstream.KV[word, int] { return dstream.Pair(word{x}, 1) })
			spec := dstream.NewSimpleStateSpec(func(_ word, v dstream.Optional[int], st *dstream.State[tally]) int {
				cur, _ := st.Get()
				st.Update(tally{n: cur.n + v.Value, seen: true})
				return 0
			}).WithCodecs(r.keys, r.states)
			snaps := dstream.MapWithState(pairs, spec).StateSnapshots()
			return dstream.Map(snaps, func(kv dstream.KV[word, tally]) string {
				return fmt.Sprintf("%s=%d/%t", kv.Key.s, kv.Value.n, kv.Value.seen)
			})
		}
	}
	want := [][]string{
		{"a=1/true"},
		{"a=2/true", "b=1/true"},
		{"a=3/true", "b=2/true", "c=1/true"},
		{"a=3/true", "b=2/true", "c=2/true"},
		{"a=4/true", "b=2/true", "c=2/true", "d=1/true"},
		{"a=4/true", "b=2/true", "c=2/true", "d=1/true"},
	}

	dir := t.TempDir()
	first := run{wordCodec(), tallyCodec()}
	got := ckptRun(t, dir, input, build(first), 3)
	require.Positive(t, first.keys.encodes.Load(), "keys written with the key codec")
	require.Positive(t, first.states.encodes.Load(), "states written with the state codec")

	second := run{wordCodec(), tallyCodec()}
	got = append(got, ckptRun(t, dir, input, build(second), 3)...)
	require.Positive(t, second.keys.decodes.Load(), "keys restored with the key codec")
	require.Positive(t, second.states.decodes.Load(), "states restored with the state codec")
	verifyOutput(t, want, got, unordered)
}

// textFiles returns the names and contents of the files in dir.
func textFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = string(b)
	}
	return files
}

// TestSaveAsTextFiles checks the files' names and contents, with and
// without a suffix, in a directory it creates, and that an existing file is
// replaced whole with no temporary file left beside it.
func TestSaveAsTextFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out", "nested")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	// A longer file where batch 1's goes: it must not survive in part.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "words-1000.txt"), []byte(strings.Repeat("stale line\n", 50)), 0o644))

	c := manualContext(t, 2)
	in := dstream.Queue(c, [][]string{{"a", "b", "c"}, {}, {"d"}})
	dstream.SaveAsTextFiles(in, filepath.Join(dir, "words"), "txt")
	dstream.SaveAsTextFiles(dstream.Map(in, strings.ToUpper), filepath.Join(dir, "upper"), "")
	require.NoError(t, c.RunBatches(t.Context(), 3))

	require.Equal(t, map[string]string{
		"words-1000.txt": "a\nb\nc\n",
		"words-2000.txt": "",
		"words-3000.txt": "d\n",
		"upper-1000":     "A\nB\nC\n",
		"upper-2000":     "",
		"upper-3000":     "D\n",
	}, textFiles(t, dir))
}

// TestSaveAsTextFilesRerun fails a batch after its file was written, so the
// batch is not committed, spoils the file, and restarts from the
// checkpoint: the re-run batch, whose content comes from restored state,
// rewrites the file with what the first attempt wrote.
func TestSaveAsTextFilesRerun(t *testing.T) {
	ckpt, out := t.TempDir(), t.TempDir()
	input := [][]string{{"a", "b"}, {"a", "c", "a"}, {"b"}}
	errBoom := errors.New("output failed after the file was written")
	start := func(failAt time.Time) *engine.Context {
		c, err := engine.NewContext(testBatch, engine.WithManualClock(time.Unix(0, 0)), engine.WithParallelism(2), engine.WithCheckpoint(ckpt))
		require.NoError(t, err)
		counts := dstream.UpdateStateByKey(dstream.Map(dstream.Queue(c, input), pairOne),
			func(values []int, n int, _ bool) (int, bool) { return n + len(values), true })
		lines := dstream.Transform(counts, func(_ context.Context, b dstream.Batch[kvsi]) (dstream.Batch[string], error) {
			xs := slices.Collect(b.All())
			slices.SortFunc(xs, func(x, y kvsi) int { return strings.Compare(x.Key, y.Key) })
			s := make([]string, len(xs))
			for i, kv := range xs {
				s[i] = kv.String()
			}
			return dstream.Batch[string]{Time: b.Time, Parts: [][]string{s}}, nil
		})
		dstream.SaveAsTextFiles(lines, filepath.Join(out, "counts"), "txt")
		dstream.ForEachBatch(lines, func(_ context.Context, b dstream.Batch[string]) error {
			if b.Time.Equal(failAt) {
				return errBoom
			}
			return nil
		})
		return c
	}

	c := start(time.Unix(2, 0))
	require.ErrorIs(t, c.RunBatches(t.Context(), 3), errBoom)
	require.NoError(t, c.Close())
	path := filepath.Join(out, "counts-2000.txt")
	first, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotEmpty(t, first)
	require.NoError(t, os.WriteFile(path, []byte("spoiled\n"), 0o644))

	c = start(time.Time{})
	require.NoError(t, c.RunBatches(t.Context(), 2))
	require.NoError(t, c.Close())
	files := textFiles(t, out)
	require.Equal(t, string(first), files["counts-2000.txt"], "the re-run batch rewrites its file")
	require.Equal(t, map[string]string{
		"counts-1000.txt": "(a,1)\n(b,1)\n",
		"counts-2000.txt": "(a,3)\n(b,1)\n(c,1)\n",
		"counts-3000.txt": "(a,3)\n(b,2)\n(c,1)\n",
	}, files)
}
