package dstream

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/keyhash"
	"github.com/sluicehq/sluice/state"
)

// Repartitioning in group mode
//
// A keyed operator over a stream that is not keyed like the job's input
// (words counted out of lines, requests counted by client address) cannot
// keep a key's state in the task its records come from: every task sees
// every key. In group mode, when the source is an [engine.Exchanger] (a
// Kafka source as a member of its group), such a stream goes through an
// exchange, one per stream whatever the number of keyed operators reading
// it: at every batch the exchange combines the member's records per key
// with each operator's combiner (map-side combining, as in single-process
// mode), and writes one record per key to the task that owns the key, task
// keyhash.Partition(hash(key), tasks), as part of the batch. The operators
// read the records of their tasks at the next batch of whichever member
// owns them: an operator behind an exchange runs one batch behind its
// input, as a Kafka Streams sub-topology behind a repartition topic does.
// The Kafka source keeps an exchange in a repartition topic (see
// kafkasource.RepartitionTopic), written in the member's batch transaction
// and read read-committed, so that a record is read once whatever fails.
//
// Records of an exchange:
//
//	key:   the key, in the default codec of its type (state.CodecFor)
//	value: version (1 byte, 1), then for each operator reading the exchange,
//	       by ascending operator name:
//	         FNV-32a of the operator's name (4 bytes, big-endian)
//	         the length of its part (uvarint)
//	         its part: the key's combined value in the operator's combiner
//	         (a ReduceByKey's reduced value, a GroupByKey's list of values)
//
// Integer values are zig-zag varints; a list is its length (uvarint), then
// each value as its length (uvarint) and its encoding; other values are in
// their default codec. The key's type must hash the same in every process
// (see internal/keyhash): strings, integers, float64 and bool. Other key
// types are refused when the context starts.

// exchangeVersion leads every value of an exchange record.
const exchangeVersion = 1

// exchangeUse is what a keyed operator's group check knows of the exchange
// it may read, whatever the types.
type exchangeUse interface {
	active() bool
	source() engine.Exchanger
}

// exchange is the node that repartitions one keyed stream in group mode.
type exchange[K comparable, V any] struct {
	node
	parent *Stream[KV[K, V]]
	users  []exchangeUser[K, V] // sorted by name in Validate
	group  engine.TaskSource    // the job's task source (group mode)
	kc     state.Codec[K]
	hash   func(K) uint64

	last time.Time          // the batch recs were read for
	recs [][]exchangeRecord // per task, the records the batch reads
}

// exchangeUser is an operator reading an exchange.
type exchangeUser[K comparable, V any] interface {
	userName() string
	setTag(uint32)
	tagOf() uint32
	// mapSide combines the member's batch per key and returns, for each
	// task, the task's keys and a function appending the encoding of the
	// i-th key's combined value to dst, to call once per task from the
	// tasks of a batch.
	mapSide(ctx context.Context, j *engine.Job, in *data[KV[K, V]], tasks int, hash func(K) uint64) (func(task int) ([]K, appendPart), error)
}

// appendPart appends the encoding of a task's i-th combined value to dst.
type appendPart func(dst []byte, i int) ([]byte, error)

type exchangeRecord struct{ key, value []byte }

var (
	_ engine.Exchanging = (*exchange[int, int])(nil)
	_ engine.Ticker     = (*exchange[int, int])(nil)
	_ engine.Validator  = (*exchange[int, int])(nil)
)

// exchangeOf returns the exchange of s, creating and registering it the
// first time, or nil when s's source does not run in group mode.
func exchangeOf[K comparable, V any](s *Stream[KV[K, V]]) *exchange[K, V] {
	if x, ok := s.exch.(*exchange[K, V]); ok {
		return x
	}
	g := distributedSource(s.node)
	if g == nil {
		return nil
	}
	x := &exchange[K, V]{parent: s, group: g, kc: state.CodecFor[K](), hash: keyhash.For[K]()}
	x.meta.Kind = "exchange"
	// Not a use of s of its own: the exchange reads s once for each
	// operator reading through it, in their stead, and not at all when
	// they read s themselves. Two operators make s materialized, as
	// they would in single-process mode, one leaves it streamed.
	x.meta.Parents = []engine.Node{s.node}
	s.c.Register(x)
	s.exch = x
	return x
}

// distributedSource returns the distributed task source n is or reads
// from, or nil in single-process mode.
func distributedSource(n engine.Node) engine.TaskSource {
	if ts, ok := n.(engine.TaskSource); ok && ts.Distributed() {
		return ts
	}
	return taskSourceOf(n.Meta())
}

// active reports whether the stream goes through the exchange: it does
// unless it is keyed already, like the job's input or by an exchange
// before it.
func (x *exchange[K, V]) active() bool { return x.parent.keying() == notKeyed }

func (x *exchange[K, V]) source() engine.Exchanger {
	e, _ := x.group.(engine.Exchanger)
	return e
}

// name is the exchange's name: the name of the stream it repartitions.
func (x *exchange[K, V]) name() string { return x.parent.opName() }

// Exchanges names the exchange when the stream goes through it.
func (x *exchange[K, V]) Exchanges() []string {
	if !x.active() || x.source() == nil {
		return nil
	}
	return []string{x.name()}
}

// Validate orders the operators reading the exchange by name, and refuses
// a stream that does not produce at every batch and operators whose names
// hash alike.
func (x *exchange[K, V]) Validate() error {
	if !x.active() || x.source() == nil {
		return nil // the operators refuse what group mode cannot do
	}
	if batch := x.meta.Context().BatchInterval(); x.parent.Slide() != batch {
		return fmt.Errorf("dstream: stream %q produces every %v, not every batch (%v), and group mode repartitions only streams that produce at every batch; key the stream before windowing it", x.name(), x.parent.Slide(), batch)
	}
	slices.SortFunc(x.users, func(a, b exchangeUser[K, V]) int { return strings.Compare(a.userName(), b.userName()) })
	seen := make(map[uint32]string, len(x.users))
	for _, u := range x.users {
		tag := nameTag(u.userName())
		if other, ok := seen[tag]; ok {
			return fmt.Errorf("dstream: operators %q and %q read the repartitioned stream %q under names whose hashes are equal; rename one of them", other, u.userName(), x.name())
		}
		seen[tag] = u.userName()
		u.setTag(tag)
	}
	return nil
}

// nameTag is the FNV-32a hash of an operator's name, which marks its part
// of an exchange record.
func nameTag(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()
}

// Tick reads the records batch j takes from the exchange, then writes the
// batch's records to it.
func (x *exchange[K, V]) Tick(ctx context.Context, j *engine.Job) error {
	if !x.active() || x.last.Equal(j.Time) {
		return nil
	}
	src := x.source()
	if src == nil {
		return nil
	}
	x.last = j.Time
	op, name, n := x.meta.Name(), x.name(), x.group.TaskCount()
	recs := make([][]exchangeRecord, n)
	err := j.Run(ctx, op, n, func(ctx context.Context, tk *engine.Task) error {
		var block []byte // records are copied into shared blocks
		return src.ExchangeRead(ctx, j, name, tk.Index, func(k, v []byte) error {
			size := len(k) + len(v)
			if cap(block)-len(block) < size {
				block = make([]byte, 0, max(size, 64<<10))
			}
			at := len(block)
			block = append(append(block, k...), v...)
			recs[tk.Index] = append(recs[tk.Index], exchangeRecord{
				key:   block[at : at+len(k) : at+len(k)],
				value: block[at+len(k) : at+size : at+size],
			})
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("dstream: reading the repartitioned records of %q: %w", name, err)
	}
	x.recs = recs
	in, err := x.parent.get(ctx, j)
	if err != nil || in == nil {
		return err
	}
	if _, err := groupTasks(op, x.group, in); err != nil {
		return err
	}
	sides := make([]func(int) ([]K, appendPart), len(x.users))
	for i, u := range x.users {
		if sides[i], err = u.mapSide(ctx, j, in, n, x.hash); err != nil {
			return err
		}
	}
	return j.Run(ctx, op, n, func(ctx context.Context, tk *engine.Task) error {
		return x.write(j, src, name, tk.Index, sides)
	})
}

// write writes task's records of the batch: one per key, holding the part
// of every operator that has the key.
func (x *exchange[K, V]) write(j *engine.Job, src engine.Exchanger, name string, task int, sides []func(int) ([]K, appendPart)) error {
	var keys []K
	var values [][]byte
	var idx map[K]int // a key's record, when several operators read
	if len(sides) > 1 {
		idx = make(map[K]int)
	}
	var part []byte
	for ui, side := range sides {
		ks, encode := side(task)
		tag := x.users[ui].tagOf()
		for i, k := range ks {
			var err error
			if part, err = encode(part[:0], i); err != nil {
				return err
			}
			at, ok := idx[k]
			if !ok {
				if idx != nil {
					idx[k] = len(keys)
				}
				at = len(keys)
				keys = append(keys, k)
				values = append(values, append(make([]byte, 0, 1+4+binary.MaxVarintLen32+len(part)), exchangeVersion))
			}
			v := binary.BigEndian.AppendUint32(values[at], tag)
			v = binary.AppendUvarint(v, uint64(len(part)))
			values[at] = append(v, part...)
		}
	}
	for i, k := range keys {
		kb, err := x.kc.Encode(k)
		if err != nil {
			return fmt.Errorf("dstream: repartitioning %q: encoding key %v: %w", name, k, err)
		}
		if err := src.ExchangeWrite(j, name, task, kb, values[i]); err != nil {
			return fmt.Errorf("dstream: repartitioning %q: %w", name, err)
		}
	}
	return nil
}

// taskRecords returns task's records read by batch j.
func (x *exchange[K, V]) taskRecords(op string, j *engine.Job, task int) ([]exchangeRecord, error) {
	if !x.last.Equal(j.Time) {
		return nil, fmt.Errorf("dstream: operator %q reads the repartitioned stream %q before its records for batch %d ms were read", op, x.name(), j.Time.UnixMilli())
	}
	return x.recs[task], nil
}

// exchangeReader is one keyed operator's use of an exchange: it combines
// with cb and encodes combiners with codec.
type exchangeReader[K comparable, V, C any] struct {
	x     *exchange[K, V]
	g     *groupCheck
	cb    combiner[V, C]
	codec state.Codec[C]
	tag   uint32
}

// readExchange makes the operator of meta, whose group check is g, read
// s's exchange in group mode with combiner cb, its combiners encoded with
// codec (nil: the default). Call it before registering the operator, so
// that the exchange ticks first, and attach after.
func readExchange[K comparable, V, C any](s *Stream[KV[K, V]], meta *engine.Meta, g *groupCheck, cb combiner[V, C], codec state.Codec[C]) *exchangeReader[K, V, C] {
	g.keyType, g.keyStable = reflect.TypeFor[K](), keyhash.Stable[K]()
	x := exchangeOf(s)
	if x == nil {
		return nil
	}
	if codec == nil {
		codec = valueCodec[C]()
	}
	r := &exchangeReader[K, V, C]{x: x, g: g, cb: cb, codec: codec}
	x.users = append(x.users, &exchangeOp[K, V, C]{r: r, meta: meta})
	g.exch = x
	return r
}

// attach makes the exchange a parent of the operator's node, so that it
// ticks whenever the operator may run, and marks the operator's streams
// as keyed by the exchange when it is used.
func (r *exchangeReader[K, V, C]) attach(n engine.Node, outs ...exchangedStream) {
	if r == nil {
		return
	}
	m := n.Meta()
	m.Parents = append(m.Parents, r.x)
	for _, o := range outs {
		o.setExchanged(r.x)
	}
}

// exchangedStream is a stream an operator reading an exchange makes.
type exchangedStream interface{ setExchanged(exchangeUse) }

func (s *Stream[T]) setExchanged(x exchangeUse) { s.exchanged = x }

// reads reports whether the operator reads the exchange this batch's way:
// in group mode over a stream not keyed like the job's input.
func (r *exchangeReader[K, V, C]) reads() bool {
	return r != nil && r.x.active() && r.x.source() != nil
}

// shuffle is the operator's shuffle when it reads the exchange: per task,
// the batch's records of the operator, decoded and merged per key.
func (r *exchangeReader[K, V, C]) shuffle(ctx context.Context, j *engine.Job, op string) ([][]KV[K, C], error) {
	n := r.x.group.TaskCount()
	out := make([][]KV[K, C], n)
	err := j.Run(ctx, op, n, func(ctx context.Context, tk *engine.Task) error {
		recs, err := r.x.taskRecords(op, j, tk.Index)
		if err != nil {
			return err
		}
		var list []KV[K, C]
		for _, rec := range recs {
			part, ok, err := exchangePart(rec.value, r.tag)
			if err != nil {
				return fmt.Errorf("dstream: operator %q reading the repartitioned stream %q: %w", op, r.x.name(), err)
			}
			if !ok {
				continue
			}
			k, err := r.x.kc.Decode(rec.key)
			if err != nil {
				return fmt.Errorf("dstream: operator %q reading the repartitioned stream %q: %w: a key: %w", op, r.x.name(), state.ErrCorrupt, err)
			}
			c, err := r.codec.Decode(part)
			if err != nil {
				return fmt.Errorf("dstream: operator %q reading the repartitioned stream %q: %w: the value of key %v: %w", op, r.x.name(), state.ErrCorrupt, k, err)
			}
			list = append(list, KV[K, C]{k, c})
		}
		if len(list) > 0 {
			out[tk.Index] = mergeCombined([][]KV[K, C]{list}, r.cb)
		}
		return nil
	})
	return out, err
}

// exchangePart returns the part of value marked tag.
func exchangePart(value []byte, tag uint32) ([]byte, bool, error) {
	if len(value) == 0 || value[0] != exchangeVersion {
		return nil, false, fmt.Errorf("%w: a repartitioned record has %s; this build reads version %d", state.ErrCorrupt, taskVersionSeen(value), exchangeVersion)
	}
	rest := value[1:]
	for len(rest) > 0 {
		if len(rest) < 4 {
			return nil, false, fmt.Errorf("%w: a repartitioned record ends inside a part's mark", state.ErrCorrupt)
		}
		t := binary.BigEndian.Uint32(rest)
		size, n := binary.Uvarint(rest[4:])
		if n <= 0 || uint64(len(rest)-4-n) < size {
			return nil, false, fmt.Errorf("%w: a repartitioned record has a part longer than the record", state.ErrCorrupt)
		}
		part := rest[4+n : 4+n+int(size)]
		if t == tag {
			return part, true, nil
		}
		rest = rest[4+n+int(size):]
	}
	return nil, false, nil
}

// exchangeOp is an exchangeReader as the exchange sees it.
type exchangeOp[K comparable, V, C any] struct {
	r    *exchangeReader[K, V, C]
	meta *engine.Meta
}

func (o *exchangeOp[K, V, C]) userName() string { return o.meta.Name() }
func (o *exchangeOp[K, V, C]) setTag(t uint32)  { o.r.tag = t }
func (o *exchangeOp[K, V, C]) tagOf() uint32    { return o.r.tag }

func (o *exchangeOp[K, V, C]) mapSide(ctx context.Context, j *engine.Job, in *data[KV[K, V]], tasks int, hash func(K) uint64) (func(int) ([]K, appendPart), error) {
	op, id, cb := o.meta.Name(), o.meta.ID(), o.r.cb
	byMap := make([][][]KV[K, C], in.n)
	err := j.Run(ctx, op, in.n, func(ctx context.Context, tk *engine.Task) error {
		keys, cs := combinePartition(tk, id, in, cb)
		byMap[tk.Index] = splitByKey(keys, cs, tasks, hash)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return func(task int) ([]K, appendPart) {
		var merged []KV[K, C]
		switch len(byMap) {
		case 0:
			return nil, nil
		case 1:
			merged = byMap[0][task]
		default:
			lists := make([][]KV[K, C], len(byMap))
			for i, parts := range byMap {
				lists[i] = parts[task]
			}
			merged = mergeCombined(lists, cb)
		}
		keys := make([]K, len(merged))
		for i, kv := range merged {
			keys[i] = kv.Key
		}
		return keys, func(dst []byte, i int) ([]byte, error) {
			b, err := state.AppendEncode(o.r.codec, dst, merged[i].Value)
			if err != nil {
				return nil, fmt.Errorf("dstream: operator %q repartitioning the value of key %v: %w", op, merged[i].Key, err)
			}
			return b, nil
		}
	}, nil
}

// valueCodec is the codec of a combiner in an exchange record: zig-zag
// varints for integers, a list codec for slices of values, the default
// codec otherwise.
func valueCodec[C any]() state.Codec[C] {
	var zero C
	var c any
	switch any(zero).(type) {
	case int:
		c = varintCodec[int]{}
	case int64:
		c = varintCodec[int64]{}
	case int32:
		c = varintCodec[int32]{}
	case int16:
		c = varintCodec[int16]{}
	case int8:
		c = varintCodec[int8]{}
	default:
		return state.CodecFor[C]()
	}
	return c.(state.Codec[C])
}

// listValueCodec is valueCodec for the lists a grouping combiner makes:
// the encoding of a window's groups (a count, then each value's length and
// encoding), its values in valueCodec.
func listValueCodec[V any]() state.Codec[[]V] { return windowGroupsCodec(valueCodec[V]()) }

type varintCodec[T int | int64 | int32 | int16 | int8] struct{}

func (varintCodec[T]) Encode(v T) ([]byte, error) {
	return binary.AppendVarint(nil, int64(v)), nil
}

func (varintCodec[T]) AppendEncode(dst []byte, v T) ([]byte, error) {
	return binary.AppendVarint(dst, int64(v)), nil
}

func (varintCodec[T]) Decode(b []byte) (T, error) {
	v, n := binary.Varint(b)
	if n <= 0 || n != len(b) {
		return 0, fmt.Errorf("%w: %d bytes are not one varint", state.ErrCorrupt, len(b))
	}
	if int64(T(v)) != v {
		return 0, fmt.Errorf("%w: %d does not fit %T", state.ErrCorrupt, v, T(0))
	}
	return T(v), nil
}
