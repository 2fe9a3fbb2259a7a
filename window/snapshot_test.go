package window

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/state"
)

var (
	kc = state.String()
	vc = state.Int()
)

// Dumps: comparable views of the internal state, with nil and empty maps
// and partitions alike.

type paneDump struct {
	T time.Time
	M map[string]int
}

func dumpSeries[E any](s *series[E], norm func(E) E) []entry[E] {
	out := make([]entry[E], 0, len(s.items))
	for _, it := range s.items {
		out = append(out, entry[E]{t: it.t.UTC(), v: norm(it.v)})
	}
	return out
}

func normMap(m map[string]int) map[string]int {
	if len(m) == 0 {
		return nil
	}
	return m
}

func normParts(parts [][]string) [][]string {
	out := make([][]string, len(parts))
	for i, p := range parts {
		if len(p) > 0 {
			out[i] = p
		}
	}
	return out
}

type incDump struct {
	Panes   []entry[map[string]int]
	Cur     map[string]int
	At      time.Time
	Stepped bool
	Gen     uint64
}

func dumpInc(w *Incremental[string, int]) incDump {
	return incDump{
		Panes:   dumpSeries(&w.panes.s, normMap),
		Cur:     normMap(maps.Clone(w.cur)),
		At:      w.at.UTC(),
		Stepped: w.stepped,
		Gen:     w.gen,
	}
}

// incRun drives an incremental window over random panes, one batch per call.
type incRun struct {
	spec Spec
	rng  *rand.Rand
	k    int
}

func (r *incRun) batch(t testing.TB, ws ...*Incremental[string, int]) {
	t.Helper()
	r.k++
	now := zero.Add(time.Duration(r.k) * r.spec.Parent)
	pane := randomPane(r.rng, 6, 30, 1, 9)
	for _, w := range ws {
		w.Add(now, maps.Clone(pane))
		if r.spec.Emits(zero, now) {
			require.NoError(t, w.Step(r.spec, zero, now))
		}
	}
}

func nonZero(_ string, v int) bool { return v != 0 }

func TestPanesSnapshotRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	cases := []struct {
		name  string
		panes int
	}{
		{"empty", 0},
		{"one pane", 1},
		{"many panes", 40},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Panes[string, int]
			for k := 1; k <= c.panes; k++ {
				p.Add(at(float64(k)+0.25), randomPane(rng, 8, 50, -100, 100))
			}
			var buf bytes.Buffer
			require.NoError(t, p.WriteSnapshot(&buf, kc, vc))
			first := bytes.Clone(buf.Bytes())

			var q Panes[string, int]
			require.NoError(t, q.ReadSnapshot(&buf, kc, vc))
			require.Zero(t, buf.Len(), "the whole frame is read")
			require.Equal(t, dumpSeries(&p.s, normMap), dumpSeries(&q.s, normMap))
			require.Equal(t, p.gen, q.gen)

			// Equal states encode to equal bytes.
			var b1, b2 bytes.Buffer
			require.NoError(t, p.WriteSnapshot(&b1, kc, vc))
			require.NoError(t, q.WriteSnapshot(&b2, kc, vc))
			require.Equal(t, b1.Bytes(), b2.Bytes())
			require.NotEqual(t, first, b1.Bytes(), "a new snapshot starts a new generation")
		})
	}
}

func TestBufferSnapshotRoundTrip(t *testing.T) {
	var b Buffer[string]
	b.Add(at(1), [][]string{{"a", "b"}, nil, {}})
	b.Add(at(2), nil)
	b.Add(at(3), [][]string{{"", "ünïcode", string(make([]byte, 300))}})
	var buf bytes.Buffer
	require.NoError(t, b.WriteSnapshot(&buf, kc))
	var c Buffer[string]
	require.NoError(t, c.ReadSnapshot(&buf, kc))
	require.Equal(t, dumpSeries(&b.s, normParts), dumpSeries(&c.s, normParts))
	require.Equal(t, [][]string{{"a", "b"}, nil, nil, {"", "ünïcode", string(make([]byte, 300))}}, c.Parts(zero, at(3)))
}

// TestIncrementalSnapshotRoundTrip restores a window mid-stream and checks
// that the restored copy and the original produce the same windows from then
// on.
func TestIncrementalSnapshotRoundTrip(t *testing.T) {
	for _, spec := range randomSpecs {
		for _, keep := range []func(string, int) bool{nil, nonZero} {
			t.Run(fmt.Sprintf("w=%v,s=%v,p=%v,filter=%v", spec.Window, spec.Slide, spec.Parent, keep != nil), func(t *testing.T) {
				run := &incRun{spec: spec, rng: rand.New(rand.NewPCG(7, 8))}
				w := NewIncremental(sum, sub, keep)
				for range 37 {
					run.batch(t, w)
				}
				var buf bytes.Buffer
				require.NoError(t, w.WriteSnapshot(&buf, kc, vc))
				r := NewIncremental(sum, sub, keep)
				require.NoError(t, r.ReadSnapshot(&buf, kc, vc))
				require.Equal(t, dumpInc(w), dumpInc(r))
				for range 40 {
					run.batch(t, w, r)
					require.Equal(t, maps.Collect(w.All()), maps.Collect(r.All()))
				}
				require.Equal(t, dumpInc(w), dumpInc(r))
			})
		}
	}

	t.Run("before the first step", func(t *testing.T) {
		w := NewIncremental[string, int](sum, sub, nil)
		w.Add(at(1), map[string]int{"a": 1})
		var buf bytes.Buffer
		require.NoError(t, w.WriteSnapshot(&buf, kc, vc))
		r := NewIncremental[string, int](sum, sub, nil)
		require.NoError(t, r.ReadSnapshot(&buf, kc, vc))
		_, stepped := r.Time()
		require.False(t, stepped)
		require.NoError(t, r.Step(seconds(2, 1), zero, at(1)))
		require.Equal(t, map[string]int{"a": 1}, maps.Collect(r.All()))
	})
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestIncrementalDeltaChain writes a delta after every batch and replays the
// chain on a receiver, which must equal the writer after every delta. Every
// so often the writer starts a new chain with a snapshot (the receiver then
// restarts from it), or a write fails (the next delta must carry its
// changes).
func TestIncrementalDeltaChain(t *testing.T) {
	for _, spec := range randomSpecs {
		for _, keep := range []func(string, int) bool{nil, nonZero} {
			t.Run(fmt.Sprintf("w=%v,s=%v,p=%v,filter=%v", spec.Window, spec.Slide, spec.Parent, keep != nil), func(t *testing.T) {
				run := &incRun{spec: spec, rng: rand.New(rand.NewPCG(9, 10))}
				w := NewIncremental(sum, sub, keep)
				r := NewIncremental(sum, sub, keep)
				for i := 1; i <= 120; i++ {
					run.batch(t, w)
					var buf bytes.Buffer
					switch {
					case i%29 == 0:
						require.NoError(t, w.WriteSnapshot(&buf, kc, vc))
						r = NewIncremental(sum, sub, keep)
						require.NoError(t, r.ReadSnapshot(&buf, kc, vc))
					case i%11 == 0:
						require.ErrorContains(t, w.WriteDelta(failWriter{}, kc, vc), "disk full")
						continue
					default:
						require.NoError(t, w.WriteDelta(&buf, kc, vc))
						require.NoError(t, r.ApplyDelta(&buf, kc, vc))
					}
					require.Equal(t, dumpInc(w), dumpInc(r), "after batch %d", i)
				}
			})
		}
	}
}

func TestPanesAndBufferDeltaChain(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	spec := Spec{Window: sec(6), Slide: sec(2), Parent: sec(1)}
	var p, pr Panes[string, int]
	var b, br Buffer[string]
	for k := 1; k <= 100; k++ {
		now := at(float64(k))
		p.Add(now, randomPane(rng, 5, 20, 1, 5))
		b.Add(now, [][]string{{fmt.Sprint(k)}, nil})
		if k%13 == 0 {
			// A late pane, added out of order, travels in the next delta.
			p.Add(now.Add(-time.Second/2), map[string]int{"late": k})
			b.Add(now.Add(-time.Second/2), [][]string{{"late"}})
		}
		if spec.Emits(zero, now) {
			p.Window(spec, zero, now, sum)
			b.Window(spec, zero, now)
		}
		var pbuf, bbuf bytes.Buffer
		switch {
		case k%31 == 0:
			require.NoError(t, p.WriteSnapshot(&pbuf, kc, vc))
			require.NoError(t, b.WriteSnapshot(&bbuf, kc))
			pr, br = Panes[string, int]{}, Buffer[string]{}
			require.NoError(t, pr.ReadSnapshot(&pbuf, kc, vc))
			require.NoError(t, br.ReadSnapshot(&bbuf, kc))
		case k%7 == 0:
			require.Error(t, p.WriteDelta(failWriter{}, kc, vc))
			require.Error(t, b.WriteDelta(failWriter{}, kc))
			continue
		default:
			require.NoError(t, p.WriteDelta(&pbuf, kc, vc))
			require.NoError(t, b.WriteDelta(&bbuf, kc))
			require.NoError(t, pr.ApplyDelta(&pbuf, kc, vc))
			require.NoError(t, br.ApplyDelta(&bbuf, kc))
		}
		require.Equal(t, dumpSeries(&p.s, normMap), dumpSeries(&pr.s, normMap), "panes after batch %d", k)
		require.Equal(t, dumpSeries(&b.s, normParts), dumpSeries(&br.s, normParts), "buffer after batch %d", k)
		require.Equal(t, p.gen, pr.gen)
		require.Equal(t, b.gen, br.gen)
	}
}

func TestDeltaOutOfOrder(t *testing.T) {
	w := NewIncremental[string, int](sum, sub, nil)
	spec := seconds(3, 1)
	var deltas [][]byte
	for k := 1; k <= 4; k++ {
		w.Add(at(float64(k)), map[string]int{"a": k})
		require.NoError(t, w.Step(spec, zero, at(float64(k))))
		var buf bytes.Buffer
		require.NoError(t, w.WriteDelta(&buf, kc, vc))
		deltas = append(deltas, buf.Bytes())
	}
	cases := []struct {
		name  string
		apply []int // indexes of deltas, in order; the last one must fail
	}{
		{"applied twice", []int{0, 1, 1}},
		{"one skipped", []int{0, 2}},
		{"incremental delta on a fresh window", []int{1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewIncremental[string, int](sum, sub, nil)
			last := len(c.apply) - 1
			for _, i := range c.apply[:last] {
				require.NoError(t, r.ApplyDelta(bytes.NewReader(deltas[i]), kc, vc))
			}
			before := dumpInc(r)
			err := r.ApplyDelta(bytes.NewReader(deltas[c.apply[last]]), kc, vc)
			require.ErrorIs(t, err, ErrDeltaGap)
			require.Contains(t, err.Error(), "apply the deltas in the order they were written")
			require.Equal(t, before, dumpInc(r))
		})
	}

	t.Run("delta after a newer snapshot", func(t *testing.T) {
		r := NewIncremental[string, int](sum, sub, nil)
		require.NoError(t, r.ApplyDelta(bytes.NewReader(deltas[0]), kc, vc))
		var snap bytes.Buffer
		require.NoError(t, w.WriteSnapshot(&snap, kc, vc))
		w.Add(at(5), map[string]int{"b": 1})
		var d bytes.Buffer
		require.NoError(t, w.WriteDelta(&d, kc, vc))
		require.ErrorIs(t, r.ApplyDelta(bytes.NewReader(d.Bytes()), kc, vc), ErrDeltaGap, "the chain since delta 0 misses what the snapshot holds")
		require.NoError(t, r.ReadSnapshot(&snap, kc, vc))
		require.NoError(t, r.ApplyDelta(bytes.NewReader(d.Bytes()), kc, vc))
		require.Equal(t, dumpInc(w), dumpInc(r))
	})
}

// TestDeltaCostIndependentOfWindow checks that a delta after one batch holds
// that batch's pane and the changed keys, however long the window.
func TestDeltaCostIndependentOfWindow(t *testing.T) {
	sizes := map[int]int{}
	for _, panes := range []int{10, 3600} {
		spec := seconds(panes, 1)
		w := NewIncremental[string, int](sum, sub, nil)
		var p Panes[string, int]
		// Every pane has 20 keys of its own, so a step changes the 20 keys
		// of the leaving pane and the 20 of the entering one.
		pane := func(k int) map[string]int {
			m := make(map[string]int)
			for i := range 20 {
				m[fmt.Sprintf("key-%06d", k*20+i)] = 1
			}
			return m
		}
		step := func(k int) {
			w.Add(at(float64(k)), pane(k))
			p.Add(at(float64(k)), pane(k))
			require.NoError(t, w.Step(spec, zero, at(float64(k))))
			p.Drop(spec.First(at(float64(k + 1))))
		}
		for k := 1; k <= panes+5; k++ {
			step(k)
		}
		require.NoError(t, w.WriteDelta(&bytes.Buffer{}, kc, vc))
		require.NoError(t, p.WriteDelta(&bytes.Buffer{}, kc, vc))
		step(panes + 6)
		var wd, pd, full bytes.Buffer
		require.NoError(t, w.WriteDelta(&wd, kc, vc))
		require.NoError(t, p.WriteDelta(&pd, kc, vc))
		require.NoError(t, w.WriteSnapshot(&full, kc, vc))
		require.Less(t, wd.Len(), 2000, "incremental delta of a %d-pane window", panes)
		require.Less(t, pd.Len(), 1000, "panes delta of a %d-pane window", panes)
		sizes[panes] = wd.Len()
		if panes > 100 {
			require.Greater(t, full.Len(), 50*wd.Len(), "a snapshot holds the whole window")
		}
	}
	require.InDelta(t, sizes[10], sizes[3600], 16, "delta sizes for 10 and 3600 panes")
}

// encodings returns a valid frame of every kind, with content.
func encodings(t testing.TB) map[string][]byte {
	out := make(map[string][]byte)
	w := NewIncremental(sum, sub, nonZero)
	run := &incRun{spec: seconds(4, 2), rng: rand.New(rand.NewPCG(13, 14))}
	for range 9 {
		run.batch(t, w)
	}
	var buf bytes.Buffer
	require.NoError(t, w.WriteDelta(&buf, kc, vc)) // full
	out["incremental full delta"] = bytes.Clone(buf.Bytes())
	for range 3 {
		run.batch(t, w)
	}
	buf.Reset()
	require.NoError(t, w.WriteDelta(&buf, kc, vc))
	out["incremental delta"] = bytes.Clone(buf.Bytes())
	buf.Reset()
	require.NoError(t, w.WriteSnapshot(&buf, kc, vc))
	out["incremental snapshot"] = bytes.Clone(buf.Bytes())

	var p Panes[string, int]
	for k := 1; k <= 4; k++ {
		p.Add(at(float64(k)), map[string]int{"a": k, "b": -k})
	}
	buf.Reset()
	require.NoError(t, p.WriteSnapshot(&buf, kc, vc))
	out["panes snapshot"] = bytes.Clone(buf.Bytes())
	p.Drop(at(2))
	p.Add(at(5), map[string]int{"c": 5})
	buf.Reset()
	require.NoError(t, p.WriteDelta(&buf, kc, vc))
	out["panes delta"] = bytes.Clone(buf.Bytes())

	var b Buffer[string]
	b.Add(at(1), [][]string{{"x", "y"}, nil})
	b.Add(at(2), [][]string{{"z"}})
	buf.Reset()
	require.NoError(t, b.WriteSnapshot(&buf, kc))
	out["buffer snapshot"] = bytes.Clone(buf.Bytes())
	b.Drop(at(2))
	b.Add(at(3), [][]string{{"w"}})
	buf.Reset()
	require.NoError(t, b.WriteDelta(&buf, kc))
	out["buffer delta"] = bytes.Clone(buf.Bytes())
	return out
}

// readers applies a frame of the named kind to a receiver that already holds
// some state, and returns a dump of the receiver to check it is unchanged
// after an error.
func readers() map[string]func(data []byte) (before, after any, err error) {
	panes := func() *Panes[string, int] {
		var p Panes[string, int]
		p.Add(at(1), map[string]int{"r": 1})
		return &p
	}
	buffer := func() *Buffer[string] {
		var b Buffer[string]
		b.Add(at(1), [][]string{{"r"}})
		return &b
	}
	inc := func() *Incremental[string, int] {
		w := NewIncremental(sum, sub, nonZero)
		w.Add(at(1), map[string]int{"r": 1})
		if err := w.Step(seconds(4, 2), zero, at(2)); err != nil {
			panic(err)
		}
		return w
	}
	return map[string]func([]byte) (any, any, error){
		"panes snapshot": func(d []byte) (any, any, error) {
			p := panes()
			before := dumpSeries(&p.s, normMap)
			err := p.ReadSnapshot(bytes.NewReader(d), kc, vc)
			return before, dumpSeries(&p.s, normMap), err
		},
		"panes delta": func(d []byte) (any, any, error) {
			p := panes()
			before := dumpSeries(&p.s, normMap)
			err := p.ApplyDelta(bytes.NewReader(d), kc, vc)
			return before, dumpSeries(&p.s, normMap), err
		},
		"buffer snapshot": func(d []byte) (any, any, error) {
			b := buffer()
			before := dumpSeries(&b.s, normParts)
			err := b.ReadSnapshot(bytes.NewReader(d), kc)
			return before, dumpSeries(&b.s, normParts), err
		},
		"buffer delta": func(d []byte) (any, any, error) {
			b := buffer()
			before := dumpSeries(&b.s, normParts)
			err := b.ApplyDelta(bytes.NewReader(d), kc)
			return before, dumpSeries(&b.s, normParts), err
		},
		"incremental snapshot": func(d []byte) (any, any, error) {
			w := inc()
			before := dumpInc(w)
			err := w.ReadSnapshot(bytes.NewReader(d), kc, vc)
			return before, dumpInc(w), err
		},
		"incremental delta": func(d []byte) (any, any, error) {
			w := inc()
			before := dumpInc(w)
			err := w.ApplyDelta(bytes.NewReader(d), kc, vc)
			return before, dumpInc(w), err
		},
	}
}

// readerFor maps a frame name to the reader of its kind.
func readerFor(name string) string {
	if name == "incremental full delta" {
		return "incremental delta"
	}
	return name
}

// TestMalformedInput truncates every frame at every length and flips every
// byte of its header: each read must fail with ErrCorrupt and leave the
// receiver unchanged.
func TestMalformedInput(t *testing.T) {
	rd := readers()
	for name, data := range encodings(t) {
		read := rd[readerFor(name)]
		t.Run(name, func(t *testing.T) {
			for n := range len(data) {
				before, after, err := read(data[:n])
				require.ErrorIs(t, err, ErrCorrupt, "truncated to %d of %d bytes", n, len(data))
				require.Equal(t, before, after, "truncated to %d bytes", n)
			}
			for i := range headerSize {
				bad := bytes.Clone(data)
				bad[i] ^= 0x41
				before, after, err := read(bad)
				require.ErrorIs(t, err, ErrCorrupt, "header byte %d flipped", i)
				require.Equal(t, before, after)
			}
			// Trailing garbage inside the body.
			bad := append(bytes.Clone(data), 0)
			bad[len(magic)+2]++
			_, _, err := read(bad)
			require.ErrorIs(t, err, ErrCorrupt)
			require.Contains(t, err.Error(), "left over")
		})
	}
}

func TestMalformedInputMessages(t *testing.T) {
	enc := encodings(t)
	var p Panes[string, int]
	err := p.ReadSnapshot(bytes.NewReader(enc["buffer snapshot"]), kc, vc)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "holds a buffer snapshot, not a panes snapshot")

	err = p.ReadSnapshot(bytes.NewReader([]byte("PK\x03\x04 not a frame at all")), kc, vc)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "bad magic")

	// A codec that rejects what it reads: its error stays in the chain.
	var q Panes[int, int]
	err = q.ReadSnapshot(bytes.NewReader(enc["panes snapshot"]), state.Int(), vc)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "decode key")
}

func TestFramesInOneStream(t *testing.T) {
	var p Panes[string, int]
	var stream bytes.Buffer
	for k := 1; k <= 3; k++ {
		p.Add(at(float64(k)), map[string]int{"a": k})
		require.NoError(t, p.WriteDelta(&stream, kc, vc))
	}
	var r Panes[string, int]
	for range 3 {
		require.NoError(t, r.ApplyDelta(&stream, kc, vc))
	}
	require.Zero(t, stream.Len())
	require.Equal(t, dumpSeries(&p.s, normMap), dumpSeries(&r.s, normMap))
}

// badCodec fails to encode one value.
type badCodec struct{ state.Codec[int] }

func (c badCodec) Encode(v int) ([]byte, error) {
	if v == 13 {
		return nil, errors.New("unlucky")
	}
	return c.Codec.Encode(v)
}

func TestEncodeErrors(t *testing.T) {
	t.Run("value codec fails", func(t *testing.T) {
		var p Panes[string, int]
		p.Add(at(1), map[string]int{"a": 13})
		var buf bytes.Buffer
		err := p.WriteDelta(&buf, kc, badCodec{vc})
		require.ErrorContains(t, err, "unlucky")
		require.Zero(t, buf.Len(), "nothing is written on error")
		require.Equal(t, uint64(0), p.gen)
		p.Add(at(1), map[string]int{"a": 12})
		require.NoError(t, p.WriteDelta(&buf, kc, badCodec{vc}))
		var r Panes[string, int]
		require.NoError(t, r.ApplyDelta(&buf, kc, vc))
		require.Equal(t, dumpSeries(&p.s, normMap), dumpSeries(&r.s, normMap))
	})
	t.Run("key codec not one-to-one", func(t *testing.T) {
		w := NewIncremental[int, int](sum, sub, nil)
		w.Add(at(1), map[int]int{1: 1, 2: 2})
		require.NoError(t, w.Step(seconds(1, 1), zero, at(1)))
		err := w.WriteSnapshot(&bytes.Buffer{}, constCodec{}, vc)
		require.ErrorContains(t, err, "encodes two different keys")
	})
}

// constCodec encodes every int to the same bytes.
type constCodec struct{}

func (constCodec) Encode(int) ([]byte, error) { return []byte("k"), nil }
func (constCodec) Decode([]byte) (int, error) { return 0, nil }
