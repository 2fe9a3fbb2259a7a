package window

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every decoder is fuzzed with the valid frames of every kind as seeds. A
// read must never panic; it either fails with ErrCorrupt or ErrDeltaGap and
// leaves its receiver unchanged, or succeeds with a state that survives a
// snapshot round trip.

func addSeeds(f *testing.F) {
	for _, data := range encodings(f) {
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte(magic))
}

// checkRead asserts the outcome of one fuzzed read.
func checkRead(t *testing.T, before, after any, err error, roundTrip func()) {
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrDeltaGap) {
			t.Fatalf("error wraps neither ErrCorrupt nor ErrDeltaGap: %v", err)
		}
		require.Equal(t, before, after, "a failed read changed the receiver")
		return
	}
	roundTrip()
}

func FuzzPanesReadSnapshot(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Panes[string, int]
		p.Add(at(1), map[string]int{"r": 1})
		before := dumpSeries(&p.s, normMap)
		err := p.ReadSnapshot(bytes.NewReader(data), kc, vc)
		checkRead(t, before, dumpSeries(&p.s, normMap), err, func() { roundTripPanes(t, &p) })
	})
}

func FuzzPanesApplyDelta(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Panes[string, int]
		p.Add(at(1), map[string]int{"r": 1})
		before := dumpSeries(&p.s, normMap)
		err := p.ApplyDelta(bytes.NewReader(data), kc, vc)
		checkRead(t, before, dumpSeries(&p.s, normMap), err, func() { roundTripPanes(t, &p) })
	})
}

func roundTripPanes(t *testing.T, p *Panes[string, int]) {
	var buf bytes.Buffer
	require.NoError(t, p.WriteSnapshot(&buf, kc, vc))
	var q Panes[string, int]
	require.NoError(t, q.ReadSnapshot(&buf, kc, vc))
	require.Equal(t, dumpSeries(&p.s, normMap), dumpSeries(&q.s, normMap))
}

func FuzzBufferReadSnapshot(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Buffer[string]
		b.Add(at(1), [][]string{{"r"}})
		before := dumpSeries(&b.s, normParts)
		err := b.ReadSnapshot(bytes.NewReader(data), kc)
		checkRead(t, before, dumpSeries(&b.s, normParts), err, func() { roundTripBuffer(t, &b) })
	})
}

func FuzzBufferApplyDelta(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Buffer[string]
		b.Add(at(1), [][]string{{"r"}})
		before := dumpSeries(&b.s, normParts)
		err := b.ApplyDelta(bytes.NewReader(data), kc)
		checkRead(t, before, dumpSeries(&b.s, normParts), err, func() { roundTripBuffer(t, &b) })
	})
}

func roundTripBuffer(t *testing.T, b *Buffer[string]) {
	var buf bytes.Buffer
	require.NoError(t, b.WriteSnapshot(&buf, kc))
	var c Buffer[string]
	require.NoError(t, c.ReadSnapshot(&buf, kc))
	require.Equal(t, dumpSeries(&b.s, normParts), dumpSeries(&c.s, normParts))
}

func fuzzIncremental(t *testing.T) *Incremental[string, int] {
	w := NewIncremental(sum, sub, nonZero)
	w.Add(at(1), map[string]int{"r": 1})
	require.NoError(t, w.Step(seconds(4, 2), zero, at(2)))
	return w
}

func FuzzIncrementalReadSnapshot(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		w := fuzzIncremental(t)
		before := dumpInc(w)
		err := w.ReadSnapshot(bytes.NewReader(data), kc, vc)
		checkRead(t, before, dumpInc(w), err, func() { roundTripIncremental(t, w) })
	})
}

func FuzzIncrementalApplyDelta(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		w := fuzzIncremental(t)
		before := dumpInc(w)
		err := w.ApplyDelta(bytes.NewReader(data), kc, vc)
		checkRead(t, before, dumpInc(w), err, func() { roundTripIncremental(t, w) })
	})
}

func roundTripIncremental(t *testing.T, w *Incremental[string, int]) {
	var buf bytes.Buffer
	require.NoError(t, w.WriteSnapshot(&buf, kc, vc))
	r := NewIncremental(sum, sub, nonZero)
	require.NoError(t, r.ReadSnapshot(&buf, kc, vc))
	require.Equal(t, dumpInc(w), dumpInc(r))
}
