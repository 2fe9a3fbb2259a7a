package main

import (
	"time"

	"github.com/sluicehq/sluice/dstream"
)

// mapWithState keeps a running count per word with an idle timeout, and
// emits (word, count) for every record and (word, -1) when a word times out.
func mapWithState(pairs *dstream.Stream[dstream.KV[string, int64]]) *dstream.Stream[dstream.KV[string, int64]] {
	spec := dstream.NewSimpleStateSpec(func(w string, v dstream.Optional[int64], st *dstream.State[int64]) dstream.KV[string, int64] {
		if st.IsTimingOut() {
			return dstream.Pair(w, int64(-1))
		}
		n, _ := st.Get()
		n += v.Value
		st.Update(n)
		return dstream.Pair(w, n)
	}).WithTimeout(3 * time.Second)
	return dstream.MapWithState(pairs, spec).Stream
}
