package dstream_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// visit is a Spark port's state object: gob keeps Count and silently drops
// seen, so the default codec would lose half of it every batch.
type visit struct {
	Count int
	seen  bool
}

func visitCodec() *countingCodec[visit] {
	return &countingCodec[visit]{
		encode: func(v visit) []byte {
			b := binary.AppendVarint(nil, int64(v.Count))
			if v.seen {
				return append(b, 1)
			}
			return append(b, 0)
		},
		decode: func(b []byte) (visit, error) {
			n, k := binary.Varint(b)
			if k <= 0 || len(b) != k+1 || b[k] > 1 {
				return visit{}, fmt.Errorf("bad visit encoding %x", b)
			}
			return visit{Count: int(n), seen: b[k] == 1}, nil
		},
	}
}

// pane is a windowed value whose unexported field gob would drop.
type pane struct {
	Sum  int
	last string
}

// TestDefaultCodecRefusesWhatItCannotCarry: a stateful or windowed
// operator whose key, state or value type the default codec (gob) cannot
// carry whole is refused when the context starts, with an error naming the
// operator, the type, the field and the option that passes a codec; the
// same operator with a codec for that type runs. State types are checked
// with or without a checkpoint (the state is kept encoded every batch);
// window types only with one (they are encoded only to be checkpointed).
func TestDefaultCodecRefusesWhatItCannotCarry(t *testing.T) {
	input := [][]string{{"a", "b", "a"}, {"b"}}
	pairs := func(s *dstream.Stream[string]) *dstream.Stream[dstream.KV[string, int]] {
		return dstream.Map(s, func(x string) dstream.KV[string, int] { return dstream.Pair(x, 1) })
	}
	countVisits := func(values []int, st visit, _ bool) (visit, bool) {
		return visit{Count: st.Count + len(values), seen: true}, true
	}
	countTallies := func(values []int, st tally, _ bool) (tally, bool) {
		return tally{n: st.n + len(values), seen: true}, true
	}
	mapSpec := dstream.NewSimpleStateSpec(func(_ word, v dstream.Optional[int], st *dstream.State[tally]) int {
		cur, _ := st.Get()
		st.Update(tally{n: cur.n + v.Value, seen: true})
		return cur.n + v.Value
	})
	sumPanes := func(a, b pane) pane { return pane{Sum: a.Sum + b.Sum, last: b.last} }
	toPane := func(kv dstream.KV[string, int]) dstream.KV[string, pane] {
		return dstream.Pair(kv.Key, pane{Sum: kv.Value, last: kv.Key})
	}
	paneCodec := state.Codec[pane](&countingCodec[pane]{
		encode: func(p pane) []byte { return append(binary.AppendVarint(nil, int64(p.Sum)), p.last...) },
		decode: func(b []byte) (pane, error) {
			n, k := binary.Varint(b)
			if k <= 0 {
				return pane{}, fmt.Errorf("bad pane encoding %x", b)
			}
			return pane{Sum: int(n), last: string(b[k:])}, nil
		},
	})

	cases := []struct {
		name       string
		checkpoint bool
		build      func(*dstream.Stream[string]) *dstream.Stream[string]
		// refused holds what the error must say, in order; nil means the job runs.
		refused []string
		path    string // the UncodableError's field path
	}{
		{
			name: "UpdateStateByKey state with an unexported field, no checkpoint",
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				return show(dstream.UpdateStateByKey(pairs(s), countVisits).Name("visits"))
			},
			refused: []string{`operator "visits"`, "state of type dstream_test.visit", "field seen", "export the field", "StateOptions.StateCodec"},
			path:    "seen",
		},
		{
			name:       "UpdateStateByKey state with an unexported field, checkpoint",
			checkpoint: true,
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				return show(dstream.UpdateStateByKey(pairs(s), countVisits))
			},
			refused: []string{`operator "updateStateByKey-1"`, "dstream_test.visit", "field seen", "StateOptions.StateCodec"},
			path:    "seen",
		},
		{
			name: "UpdateStateByKey state with only unexported fields",
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				return show(dstream.UpdateStateByKey(pairs(s), countTallies))
			},
			refused: []string{"state of type dstream_test.tally", "field n", "export the field", "StateOptions.StateCodec"},
			path:    "n",
		},
		{
			name: "UpdateStateByKey with a state codec",
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				return show(dstream.UpdateStateByKeyWith(pairs(s), countVisits, dstream.StateOptions[string, visit]{StateCodec: visitCodec()}))
			},
		},
		{
			name:       "UpdateStateByKey key with only unexported fields",
			checkpoint: true,
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				keyed := dstream.Map(s, func(x string) dstream.KV[word, int] { return dstream.Pair(word{x}, 1) })
				return show(dstream.UpdateStateByKeyWith(keyed, countVisits, dstream.StateOptions[word, visit]{StateCodec: visitCodec()}))
			},
			refused: []string{"key of type dstream_test.word", "field s", "StateOptions.KeyCodec"},
			path:    "s",
		},
		{
			name: "MapWithState key and state with only unexported fields",
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				keyed := dstream.Map(s, func(x string) dstream.KV[word, int] { return dstream.Pair(word{x}, 1) })
				return show(dstream.MapWithState(keyed, mapSpec.WithCodecs(nil, tallyCodec())).Stream)
			},
			refused: []string{`operator "mapWithState-1"`, "key of type dstream_test.word", "field s", "StateSpec.WithCodecs"},
			path:    "s",
		},
		{
			name:       "MapWithState state with only unexported fields",
			checkpoint: true,
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				keyed := dstream.Map(s, func(x string) dstream.KV[word, int] { return dstream.Pair(word{x}, 1) })
				return show(dstream.MapWithState(keyed, mapSpec.WithCodecs(wordCodec(), nil)).Stream)
			},
			refused: []string{"state of type dstream_test.tally", "field n", "StateSpec.WithCodecs"},
			path:    "n",
		},
		{
			name:       "MapWithState with codecs",
			checkpoint: true,
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				keyed := dstream.Map(s, func(x string) dstream.KV[word, int] { return dstream.Pair(word{x}, 1) })
				return show(dstream.MapWithState(keyed, mapSpec.WithCodecs(wordCodec(), tallyCodec())).Stream)
			},
		},
		{
			name:       "ReduceByKeyAndWindow value with an unexported field, checkpoint",
			checkpoint: true,
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				return show(dstream.ReduceByKeyAndWindow(dstream.Map(pairs(s), toPane), sumPanes, 2*testBatch, testBatch))
			},
			refused: []string{`operator "reduceByKeyAndWindow-1"`, "value of type dstream_test.pane", "field last", "export the field", "WindowCodecs"},
			path:    "last",
		},
		{
			name: "ReduceByKeyAndWindow value with an unexported field, no checkpoint",
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				return show(dstream.ReduceByKeyAndWindow(dstream.Map(pairs(s), toPane), sumPanes, 2*testBatch, testBatch))
			},
		},
		{
			name:       "ReduceByKeyAndWindow with WindowCodecs",
			checkpoint: true,
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				w := dstream.ReduceByKeyAndWindow(dstream.Map(pairs(s), toPane), sumPanes, 2*testBatch, testBatch)
				return show(dstream.WindowCodecs(w, nil, paneCodec))
			},
		},
		{
			name:       "GroupByKeyAndWindow element with an unexported field",
			checkpoint: true,
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				return show(dstream.GroupByKeyAndWindow(dstream.Map(pairs(s), toPane), 2*testBatch, testBatch))
			},
			refused: []string{`operator "groupByKeyAndWindow-1"`, "dstream_test.pane", "field last", "WindowCodecs"},
			path:    "last",
		},
		{
			name:       "Window element with an unexported field",
			checkpoint: true,
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				return show(dstream.Window(dstream.Map(pairs(s), toPane), 2*testBatch, testBatch))
			},
			refused: []string{`operator "window-1"`, "element of type dstream.KV[string,github.com/sluicehq/sluice/dstream_test.pane]", "field Value.last", "WindowRecordCodec"},
			path:    "Value.last",
		},
		{
			name:       "ReduceByWindow with WindowRecordCodec",
			checkpoint: true,
			build: func(s *dstream.Stream[string]) *dstream.Stream[string] {
				panes := dstream.Map(pairs(s), func(kv dstream.KV[string, int]) pane { return toPane(kv).Value })
				return show(dstream.WindowRecordCodec(dstream.ReduceByWindow(panes, sumPanes, 2*testBatch, testBatch), paneCodec))
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := []engine.Option{engine.WithManualClock(time.Unix(0, 0)), engine.WithParallelism(2)}
			if tc.checkpoint {
				opts = append(opts, engine.WithCheckpoint(t.TempDir()))
			}
			c, err := engine.NewContext(testBatch, opts...)
			require.NoError(t, err)
			defer func() { require.NoError(t, c.Close()) }()
			got := collect(tc.build(dstream.Queue(c, input)))
			err = c.RunBatches(t.Context(), len(input))
			if tc.refused == nil {
				require.NoError(t, err)
				require.Len(t, *got, len(input), "every batch ran")
				return
			}
			require.Error(t, err)
			require.Empty(t, *got, "refused before the first batch")
			msg := err.Error()
			at := 0
			for _, part := range tc.refused {
				i := strings.Index(msg[at:], part)
				require.GreaterOrEqual(t, i, 0, "%q in order in: %s", part, msg)
				at += i + len(part)
			}
			var ue *state.UncodableError
			require.True(t, errors.As(err, &ue), "the error unwraps to *state.UncodableError: %v", err)
			require.Equal(t, tc.path, ue.Path)
		})
	}
}

// show formats the elements of s, so every case ends in a stream of strings.
func show[T any](s *dstream.Stream[T]) *dstream.Stream[string] {
	return dstream.Map(s, func(x T) string { return fmt.Sprint(x) })
}
