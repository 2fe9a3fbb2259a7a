package kafkasource

import (
	"encoding/binary"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// tail is the last answer fetched for one partition. A range of the next
// batch starts where this batch's range ended, which with small batches is
// often inside a record batch this answer already holds: the range is read
// from the tail instead of fetched again, and each record batch of the
// tail is decompressed once however many ranges it serves. Records in a
// tail were committed when it was fetched (answers are read committed), and
// an offset's record never changes, so a tail stays true; compaction or
// retention after the fetch only make it hold records that a new fetch
// would skip, as records read a moment earlier would have been.
type tail struct {
	fp       *kmsg.FetchResponseTopicPartition
	from     int64 // the offset it was fetched at
	end      int64 // the offset after its last whole record batch
	dec      kgo.Decompressor
	mu       sync.Mutex
	unpacked map[*byte][]byte // decompressed record batches, by the address of their compressed bytes
}

// newTail keeps fp, fetched at from, as a tail, or returns nil when it
// cannot serve later reads: no whole v2 record batch, or aborted
// transactions, whose index is relative to where the answer starts.
func newTail(fp *kmsg.FetchResponseTopicPartition, from int64, dec kgo.Decompressor) *tail {
	if len(fp.AbortedTransactions) > 0 {
		return nil
	}
	end := from
	buf := fp.RecordBatches
	for len(buf) > rbMagic {
		length := int64(int32(binary.BigEndian.Uint32(buf[rbLength:])))
		total := 12 + length
		if length < 0 || int64(len(buf)) < total || total < rbHeaderBytes || buf[rbMagic] != 2 {
			break
		}
		base := int64(binary.BigEndian.Uint64(buf))
		end = max(end, base+int64(int32(binary.BigEndian.Uint32(buf[rbLastDelta:])))+1)
		buf = buf[total:]
	}
	if end <= from {
		return nil
	}
	return &tail{fp: fp, from: from, end: end, dec: dec}
}

// covers reports whether the tail holds offset off.
func (t *tail) covers(off int64) bool { return t != nil && t.from <= off && off < t.end }

// Decompress implements [kgo.Decompressor] for the tail's record batches,
// remembering what it decompressed.
func (t *tail) Decompress(src []byte, codec kgo.CompressionCodecType) ([]byte, error) {
	if len(src) == 0 {
		return t.dec.Decompress(src, codec)
	}
	key := &src[0]
	t.mu.Lock()
	out, ok := t.unpacked[key]
	t.mu.Unlock()
	if ok {
		return out, nil
	}
	out, err := t.dec.Decompress(src, codec)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.unpacked == nil {
		t.unpacked = make(map[*byte][]byte)
	}
	t.unpacked[key] = out
	t.mu.Unlock()
	return out, nil
}

// tailOf returns the tail kept for tp, or nil.
func (r *reader) tailOf(tp TopicPartition) *tail {
	r.tailsMu.Lock()
	defer r.tailsMu.Unlock()
	return r.tails[tp]
}

// keepTail makes t, which may be nil, tp's tail.
func (r *reader) keepTail(tp TopicPartition, t *tail) {
	r.tailsMu.Lock()
	defer r.tailsMu.Unlock()
	if t == nil {
		delete(r.tails, tp)
		return
	}
	if r.tails == nil {
		r.tails = make(map[TopicPartition]*tail)
	}
	r.tails[tp] = t
}
