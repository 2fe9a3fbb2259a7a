package dstream

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/keyhash"
)

// combiner says how a keyed operator folds values into per-key combiners: a
// new key's first value becomes create(v), later values merge into it, and
// combiners from different map tasks merge with mergeC.
type combiner[V, C any] struct {
	create func(V) C
	merge  func(C, V) C
	mergeC func(C, C) C
}

// groupCombiner collects a key's values into a slice, in the order they
// come: GroupByKey's combiner, and the grouping of Cogroup,
// UpdateStateByKey and GroupByKeyAndWindow.
func groupCombiner[V any]() combiner[V, []V] {
	return combiner[V, []V]{
		create: func(v V) []V { return []V{v} },
		merge:  func(c []V, v V) []V { return append(c, v) },
		mergeC: func(a, b []V) []V { return append(a, b...) },
	}
}

// shuffle hash-partitions the keyed data in into nOut partitions, combining
// values per key: one map task per input partition combines its records
// (map-side combining), splits the combined keys by hash, and one reduce
// task per output partition merges the combined keys of every map task, in
// map-task order. In group mode (in carries its tasks) it routes by task
// instead, ignoring nOut and hash: see [shuffleByTask].
func shuffle[K comparable, V, C any](ctx context.Context, j *engine.Job, op string, id int, in *data[KV[K, V]], nOut int, hash func(K) uint64, cb combiner[V, C]) ([][]KV[K, C], error) {
	if in.tasks != nil {
		return shuffleByTask(ctx, j, op, id, in, cb)
	}
	byTask := make([][][]KV[K, C], in.n)
	err := j.Run(ctx, op, in.n, func(ctx context.Context, tk *engine.Task) error {
		keys, cs := combinePartition(tk, id, in, cb)
		byTask[tk.Index] = splitByKey(keys, cs, nOut, hash)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([][]KV[K, C], nOut)
	err = j.Run(ctx, op, nOut, func(ctx context.Context, tk *engine.Task) error {
		p := tk.Index
		if len(byTask) == 1 {
			// The keys of one map task are distinct already.
			out[p] = byTask[0][p]
			return nil
		}
		lists := make([][]KV[K, C], len(byTask))
		for i, parts := range byTask {
			lists[i] = parts[p]
		}
		out[p] = mergeCombined(lists, cb)
		return nil
	})
	return out, err
}

// keyedShuffle is shuffle for a keyed operator of one stream: through x,
// its exchange, when it reads one (group mode, a stream not keyed like the
// job's input), the way shuffle says otherwise.
func keyedShuffle[K comparable, V, C any](ctx context.Context, j *engine.Job, op string, id int, x *exchangeReader[K, V, C], in *data[KV[K, V]], nOut int, hash func(K) uint64, cb combiner[V, C]) ([][]KV[K, C], error) {
	if x.reads() {
		return x.shuffle(ctx, j, op)
	}
	return shuffle(ctx, j, op, id, in, nOut, hash, cb)
}

// combinePartition combines the records of the task's partition of in by
// key, keys in the order the task first saw them.
func combinePartition[K comparable, V, C any](tk *engine.Task, id int, in *data[KV[K, V]], cb combiner[V, C]) ([]K, []C) {
	// One map lookup per record: the map holds each key's slot in a
	// slice of keys and combiners.
	idx := make(map[K]int32)
	var keys []K
	var cs []C
	in.iter(tk, tk.Index, func(kv KV[K, V]) bool {
		tk.Node = id
		if i, ok := idx[kv.Key]; ok {
			cs[i] = cb.merge(cs[i], kv.Value)
		} else {
			idx[kv.Key] = int32(len(cs))
			keys = append(keys, kv.Key)
			cs = append(cs, cb.create(kv.Value))
		}
		return true
	})
	return keys, cs
}

// mergeCombined merges the combined keys of several map tasks, in order.
func mergeCombined[K comparable, C any, V any](lists [][]KV[K, C], cb combiner[V, C]) []KV[K, C] {
	// Size the merge map for the most keys one map task has, doubled:
	// tasks share most keys, and growing a map rehashes it.
	total, most := 0, 0
	for _, l := range lists {
		total += len(l)
		most = max(most, len(l))
	}
	acc := make(map[K]int32, min(total, 2*most))
	res := make([]KV[K, C], 0, min(total, 2*most))
	for _, l := range lists {
		for _, kv := range l {
			if i, ok := acc[kv.Key]; ok {
				res[i].Value = cb.mergeC(res[i].Value, kv.Value)
			} else {
				acc[kv.Key] = int32(len(res))
				res = append(res, kv)
			}
		}
	}
	return res
}

// splitByKey spreads the combined keys of one map task over n output
// partitions by hash, in the order the task first saw them.
func splitByKey[K comparable, C any](keys []K, cs []C, n int, hash func(K) uint64) [][]KV[K, C] {
	parts := make([][]KV[K, C], n)
	if n == 1 {
		parts[0] = make([]KV[K, C], len(keys))
		for i, k := range keys {
			parts[0][i] = KV[K, C]{k, cs[i]}
		}
		return parts
	}
	for i := range parts {
		parts[i] = make([]KV[K, C], 0, len(keys)/n+len(keys)/(4*n)+1)
	}
	for i, k := range keys {
		p := keyhash.Partition(hash(k), n)
		parts[p] = append(parts[p], KV[K, C]{k, cs[i]})
	}
	return parts
}

// keyedNode is the node of an operator that hash-partitions by key (by
// task in group mode).
type keyedNode struct {
	node
	parts int
	groupCheck
}

// Validate refuses the operator in group mode over a stream not known to
// be keyed like the job's input.
func (n *keyedNode) Validate() error { return n.validateGroup(&n.meta) }

var _ engine.Validator = (*keyedNode)(nil)

// partitions returns the operator's output partition count: the one set
// with [Stream.Partitions], or the context's parallelism.
func (n *keyedNode) partitions(c *engine.Context) int {
	if n.parts > 0 {
		return n.parts
	}
	return c.Parallelism()
}

// Partitions sets how many partitions (and reduce tasks) a keyed operator
// produces, overriding the default of the context's parallelism. It applies
// to the operator that made s (ReduceByKey, GroupByKey, joins, windowed and
// stateful keyed operators); on other streams it panics. In group mode
// keyed operators have one partition per task instead, and the count set
// here is not used. It returns s.
func (s *Stream[T]) Partitions(n int) *Stream[T] {
	if n < 1 {
		panic(fmt.Sprintf("dstream: Partitions(%d) on %s; pass 1 or more", n, s.node.Meta().Kind))
	}
	p, ok := s.node.(interface{ setPartitions(int) })
	if !ok {
		panic("dstream: Partitions applies to keyed operators, not to " + s.node.Meta().Kind)
	}
	p.setPartitions(n)
	return s
}

func (n *keyedNode) setPartitions(p int) { n.parts = p }
