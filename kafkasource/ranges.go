package kafkasource

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// OffsetRange is what one batch reads of one partition: the records with
// offsets in [From, Until). Offsets missing from a range (compacted away,
// transaction markers, aborted transactions) are skipped, so a range of n
// offsets yields at most n records. It plays the part of Spark's
// OffsetRange.
type OffsetRange struct {
	Topic     string
	Partition int32
	From      int64 // the first offset of the range
	Until     int64 // one past the last offset of the range
}

// Count returns the number of offsets in the range, Until − From.
func (r OffsetRange) Count() int64 { return r.Until - r.From }

// TopicPartition returns the partition the range belongs to.
func (r OffsetRange) TopicPartition() TopicPartition {
	return TopicPartition{Topic: r.Topic, Partition: r.Partition}
}

// String formats the range as topic[partition] [from, until).
func (r OffsetRange) String() string {
	return r.Topic + "[" + strconv.FormatInt(int64(r.Partition), 10) + "] [" +
		strconv.FormatInt(r.From, 10) + ", " + strconv.FormatInt(r.Until, 10) + ")"
}

// ErrBadPlan reports a recorded plan that cannot be decoded: the checkpoint
// holding it is damaged or was written by an incompatible version.
var ErrBadPlan = errors.New("kafkasource: recorded offset ranges are malformed")

// planVersion is the first byte of an encoded plan.
const planVersion = 1

// planRanges fixes the ranges of one batch: for every partition of latest,
// from is its position and until = min(latest, from + cap), never below
// from (a position past the last stable offset, inside an open transaction,
// reads nothing yet). caps nil means no cap. Ranges come sorted by topic,
// then partition, which is also the order of the stream's partitions.
func planRanges(positions, latest, caps map[TopicPartition]int64) []OffsetRange {
	out := make([]OffsetRange, 0, len(latest))
	for tp, end := range latest {
		from := positions[tp]
		until := end
		if caps != nil {
			if c, ok := caps[tp]; ok {
				until = min(until, satAdd(from, max(c, 0)))
			}
		}
		out = append(out, OffsetRange{Topic: tp.Topic, Partition: tp.Partition, From: from, Until: max(until, from)})
	}
	sortRanges(out)
	return out
}

func sortRanges(rs []OffsetRange) {
	slices.SortFunc(rs, func(a, b OffsetRange) int {
		if c := cmp.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return cmp.Compare(a.Partition, b.Partition)
	})
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// totalCount sums the offsets of all ranges.
func totalCount(rs []OffsetRange) int64 {
	var n int64
	for _, r := range rs {
		n += r.Count()
	}
	return n
}

// encodePlan encodes ranges for [decodePlan]: a version byte, the count,
// then per range the topic (length-prefixed), partition, from and count as
// varints.
func encodePlan(rs []OffsetRange) []byte {
	b := make([]byte, 0, 2+len(rs)*24)
	b = append(b, planVersion)
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		b = appendString(b, r.Topic)
		b = binary.AppendUvarint(b, uint64(r.Partition))
		b = binary.AppendUvarint(b, uint64(r.From))
		b = binary.AppendUvarint(b, uint64(r.Count()))
	}
	return b
}

// decodePlan decodes what [encodePlan] wrote. It rejects anything else with
// an error wrapping [ErrBadPlan]: truncation, trailing bytes, negative or
// overflowing offsets, ranges out of order or repeated.
func decodePlan(b []byte) ([]OffsetRange, error) {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrBadPlan, what) }
	if len(b) == 0 || b[0] != planVersion {
		return nil, bad("unknown version; resume with the version that wrote the checkpoint or start with a fresh checkpoint dir")
	}
	rd := varintReader{b[1:]}
	n, ok := rd.count()
	if !ok {
		return nil, bad("range count")
	}
	rs := make([]OffsetRange, 0, n)
	for range n {
		topic, ok := rd.str()
		if !ok {
			return nil, bad("topic name")
		}
		p, ok1 := rd.uvarint()
		from, ok2 := rd.uvarint()
		cnt, ok3 := rd.uvarint()
		if !ok1 || !ok2 || !ok3 || p > math.MaxInt32 || from > math.MaxInt64 || cnt > math.MaxInt64-from {
			return nil, bad("offsets of topic " + strconv.Quote(topic))
		}
		r := OffsetRange{Topic: topic, Partition: int32(p), From: int64(from), Until: int64(from + cnt)}
		if len(rs) > 0 {
			last := rs[len(rs)-1]
			if c := cmp.Compare(last.Topic, r.Topic); c > 0 || c == 0 && last.Partition >= r.Partition {
				return nil, bad("ranges out of order at " + r.String())
			}
		}
		rs = append(rs, r)
	}
	if len(rd.b) != 0 {
		return nil, bad("trailing bytes")
	}
	return rs, nil
}
