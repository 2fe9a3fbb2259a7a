package window_test

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/window"
)

var start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// secs prints times as seconds after start.
func secs(ts ...time.Time) []int {
	out := make([]int, len(ts))
	for i, t := range ts {
		out[i] = int(t.Sub(start) / time.Second)
	}
	return out
}

// sorted prints a map in key order.
func sorted[V any](m map[string]V) string {
	if len(m) == 0 {
		return "(empty)"
	}
	var s []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		s = append(s, fmt.Sprintf("%s=%v", k, m[k]))
	}
	return strings.Join(s, " ")
}

func ExampleSpec() {
	// A 4s window sliding every 2s over 1s batches.
	s := window.Spec{Window: 4 * time.Second, Slide: 2 * time.Second, Parent: time.Second}
	if err := s.Validate(); err != nil {
		panic(err)
	}
	for _, n := range []int{1, 2, 4, 6} {
		t := start.Add(time.Duration(n) * time.Second)
		fmt.Printf("t=%d emits=%v batches=%v\n", n, s.Emits(start, t), secs(s.Batches(start, t)...))
	}
	leaving, entering := s.Expired(start.Add(6 * time.Second))
	fmt.Println("at t=6 leaving", secs(s.BatchesIn(start, leaving)...), "entering", secs(s.BatchesIn(start, entering)...))
	// Output:
	// t=1 emits=false batches=[1]
	// t=2 emits=true batches=[1 2]
	// t=4 emits=true batches=[1 2 3 4]
	// t=6 emits=true batches=[3 4 5 6]
	// at t=6 leaving [1 2] entering [5 6]
}

func ExampleSpec_Validate() {
	s := window.Spec{Window: 25 * time.Second, Slide: 10 * time.Second, Parent: 10 * time.Second}
	fmt.Println(s.Validate())
	// Output:
	// window: invalid window spec: window length 25s is not a multiple of the parent's slide 10s; use 20s or 30s
}

func ExampleIncremental() {
	// Word counts over the last 3 batches, updated every batch: each step
	// adds the entering batch and takes out the leaving one. Keys whose
	// count drops to 0 are filtered out, as countByValueAndWindow does.
	s := window.Spec{Window: 3 * time.Second, Slide: time.Second, Parent: time.Second}
	add := func(a, b int64) int64 { return a + b }
	sub := func(a, b int64) int64 { return a - b }
	w := window.NewIncremental(add, sub, func(_ string, n int64) bool { return n != 0 })
	batches := []map[string]int64{
		{"a": 2, "b": 1},
		{"a": 1},
		{"c": 4},
		{},
		{"c": 1},
	}
	for i, pane := range batches {
		t := start.Add(time.Duration(i+1) * time.Second)
		w.Add(t, pane)
		if err := w.Step(s, start, t); err != nil {
			panic(err)
		}
		fmt.Printf("t=%d %s\n", i+1, sorted(maps.Collect(w.All())))
	}
	// Output:
	// t=1 a=2 b=1
	// t=2 a=3 b=1
	// t=3 a=3 b=1 c=4
	// t=4 a=1 c=4
	// t=5 c=5
}

func ExamplePanes_Window() {
	// reduceByKeyAndWindow without an inverse function: the window is
	// recomputed from its panes, and keys absent from it are dropped.
	s := window.Spec{Window: 2 * time.Second, Slide: time.Second, Parent: time.Second}
	var p window.Panes[string, int]
	sum := func(a, b int) int { return a + b }
	for i, pane := range []map[string]int{{"a": 1}, {"a": 1, "b": 1}, {}, {}} {
		t := start.Add(time.Duration(i+1) * time.Second)
		p.Add(t, pane)
		fmt.Printf("t=%d %s; panes held: %d\n", i+1, sorted(p.Window(s, start, t, sum)), p.Len())
	}
	// Output:
	// t=1 a=1; panes held: 1
	// t=2 a=2 b=1; panes held: 1
	// t=3 a=1 b=1; panes held: 1
	// t=4 (empty); panes held: 1
}

func ExampleBuffer_Window() {
	// The plain window operator: the union of the batches in the window.
	s := window.Spec{Window: 2 * time.Second, Slide: 2 * time.Second, Parent: time.Second}
	var b window.Buffer[string]
	for i := range 4 {
		t := start.Add(time.Duration(i+1) * time.Second)
		b.Add(t, [][]string{{fmt.Sprint("x", i+1)}, {fmt.Sprint("y", i+1)}})
		if s.Emits(start, t) {
			fmt.Printf("t=%d %v\n", i+1, b.Window(s, start, t))
		}
	}
	// Output:
	// t=2 [[x1] [y1] [x2] [y2]]
	// t=4 [[x3] [y3] [x4] [y4]]
}

func ExampleIncremental_WriteDelta() {
	// Checkpoint after every batch: a delta holds the new pane and the keys
	// that changed; a restarted job reads the snapshot, then the deltas.
	s := window.Spec{Window: 2 * time.Second, Slide: time.Second, Parent: time.Second}
	add := func(a, b int64) int64 { return a + b }
	sub := func(a, b int64) int64 { return a - b }
	kc, vc := state.String(), state.Int64()

	w := window.NewIncremental[string](add, sub, nil)
	var snapshot bytes.Buffer
	if err := w.WriteSnapshot(&snapshot, kc, vc); err != nil {
		panic(err)
	}
	var deltas []*bytes.Buffer
	for i, pane := range []map[string]int64{{"a": 1}, {"b": 2}, {"a": 5}} {
		t := start.Add(time.Duration(i+1) * time.Second)
		w.Add(t, pane)
		if err := w.Step(s, start, t); err != nil {
			panic(err)
		}
		d := new(bytes.Buffer)
		if err := w.WriteDelta(d, kc, vc); err != nil {
			panic(err)
		}
		deltas = append(deltas, d)
	}

	restored := window.NewIncremental[string](add, sub, nil)
	if err := restored.ReadSnapshot(&snapshot, kc, vc); err != nil {
		panic(err)
	}
	for _, d := range deltas {
		if err := restored.ApplyDelta(d, kc, vc); err != nil {
			panic(err)
		}
	}
	t, _ := restored.Time()
	fmt.Printf("restored at t=%d: %s\n", secs(t)[0], sorted(maps.Collect(restored.All())))
	// Output:
	// restored at t=3: a=5 b=2
}
