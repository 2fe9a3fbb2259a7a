package window

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluicehq/sluice/state"
)

const (
	benchKeysPerPane = 100
	benchUniverse    = 1000
	benchRing        = 64 // distinct panes, reused in turn (panes are immutable)
)

// benchPanes returns benchRing panes of benchKeysPerPane distinct keys each,
// drawn from benchUniverse keys.
func benchPanes() []map[string]int64 {
	rng := rand.New(rand.NewPCG(1, 1))
	keys := make([]string, benchUniverse)
	for i := range keys {
		keys[i] = fmt.Sprintf("10.0.%d.%d", i/256, i%256)
	}
	ring := make([]map[string]int64, benchRing)
	for i := range ring {
		m := make(map[string]int64, benchKeysPerPane)
		for len(m) < benchKeysPerPane {
			m[keys[rng.IntN(len(keys))]] = int64(1 + rng.IntN(5))
		}
		ring[i] = m
	}
	return ring
}

func add64(a, b int64) int64 { return a + b }
func sub64(a, b int64) int64 { return a - b }

// BenchmarkIncrementalStep measures one step of an incremental window (one
// pane entering, one leaving, 100 keys each) for a 10-pane and a 3,600-pane
// window: the time per step must not depend on the window length.
func BenchmarkIncrementalStep(b *testing.B) {
	ring := benchPanes()
	cases := []struct {
		panes int
		keep  func(string, int64) bool
	}{
		{panes: 10},
		{panes: 3600},
		{panes: 10, keep: func(_ string, v int64) bool { return v != 0 }},
		{panes: 3600, keep: func(_ string, v int64) bool { return v != 0 }},
	}
	for _, c := range cases {
		name := fmt.Sprintf("panes=%d", c.panes)
		if c.keep != nil {
			name += "/filter"
		}
		b.Run(name, func(b *testing.B) {
			spec := Spec{Window: time.Duration(c.panes) * time.Second, Slide: time.Second, Parent: time.Second}
			w := NewIncremental(add64, sub64, c.keep)
			k := 0
			step := func() {
				k++
				now := zero.Add(time.Duration(k) * time.Second)
				w.Add(now, ring[k%benchRing])
				if err := w.Step(spec, zero, now); err != nil {
					b.Fatal(err)
				}
			}
			for range c.panes + 1 {
				step()
			}
			b.ReportAllocs()
			for b.Loop() {
				step()
			}
			b.ReportMetric(float64(w.NumPanes()), "panes")
			b.ReportMetric(float64(w.Len()), "keys")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(2*benchKeysPerPane), "ns/pane-key")
		})
	}
}

// BenchmarkPanesWindow is the baseline without an inverse function: every
// window is recombined from all its panes, so the time per window grows with
// the window length.
func BenchmarkPanesWindow(b *testing.B) {
	ring := benchPanes()
	for _, panes := range []int{10, 3600} {
		b.Run(fmt.Sprintf("panes=%d", panes), func(b *testing.B) {
			spec := Spec{Window: time.Duration(panes) * time.Second, Slide: time.Second, Parent: time.Second}
			var p Panes[string, int64]
			k := 0
			for range panes {
				k++
				p.Add(zero.Add(time.Duration(k)*time.Second), ring[k%benchRing])
			}
			b.ReportAllocs()
			for b.Loop() {
				k++
				now := zero.Add(time.Duration(k) * time.Second)
				p.Add(now, ring[k%benchRing])
				p.Window(spec, zero, now, add64)
			}
			b.ReportMetric(float64(p.Len()), "panes")
		})
	}
}

// BenchmarkIncrementalWriteDelta measures the checkpoint cost of one batch
// (a step, then a delta) for a 10-pane and a 3,600-pane window: it must not
// depend on the window length.
func BenchmarkIncrementalWriteDelta(b *testing.B) {
	ring := benchPanes()
	for _, panes := range []int{10, 3600} {
		b.Run(fmt.Sprintf("panes=%d", panes), func(b *testing.B) {
			spec := Spec{Window: time.Duration(panes) * time.Second, Slide: time.Second, Parent: time.Second}
			w := NewIncremental[string](add64, sub64, nil)
			k := 0
			step := func() {
				k++
				now := zero.Add(time.Duration(k) * time.Second)
				w.Add(now, ring[k%benchRing])
				if err := w.Step(spec, zero, now); err != nil {
					b.Fatal(err)
				}
			}
			for range panes + 1 {
				step()
			}
			var buf bytes.Buffer
			if err := w.WriteDelta(&buf, state.String(), state.Int64()); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				step()
				buf.Reset()
				if err := w.WriteDelta(&buf, state.String(), state.Int64()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(buf.Len()), "delta-bytes")
		})
	}
}
