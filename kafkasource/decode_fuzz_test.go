package kafkasource

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The differential fuzz test holds decodeBatches to kgo's
// ProcessFetchPartition (read committed) on the same fetch bytes: the same
// records (offsets, keys, values, headers, timestamps) and the same next
// offset, or both refusing them.
//
// kgo refuses by setting a partition error or by stopping short of a batch
// (a record that does not decode, fewer records than the batch claims); it
// then keeps what came before, as a partial batch at the end of a fetch is
// normal. decodeBatches refuses the whole fetch with an error instead, and
// the reader fetches again. So when kgo refuses batch k, only batches before
// k are compared: both decoders must agree on those bytes alone. The two
// legitimately differ on what they refuse:
//   - a batch wholly below the asked offset is skipped by decodeBatches
//     without a look at its CRC or records, while kgo checks it;
//   - kgo forgives a batch that does not decompress once it has records, as
//     a truncated last batch; decodeBatches refuses it (and the next fetch,
//     starting past the records it had, would see it whole or fail again).
//
// The aborted transactions come as 16-byte entries: producer ID, first
// offset, both big-endian.

// fuzzBatch is one record batch to build with kmsg for the seed corpus.
type fuzzBatch struct {
	base      int64
	producer  int64
	attrs     int16 // compression, timestamp type, transactional, control
	firstTime int64
	maxTime   int64
	records   []kmsg.Record
}

// appendFuzzBatch appends b as a broker stores it: records (compressed per
// its attributes), length and CRC-32C filled in.
func appendFuzzBatch(t testing.TB, dst []byte, b fuzzBatch) []byte {
	var raw []byte
	lastDelta := int32(0)
	for i := range b.records {
		r := b.records[i]
		r.Length = 0
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		raw = r.AppendTo(raw)
		lastDelta = max(lastDelta, r.OffsetDelta)
	}
	if c := kgo.CompressionCodecType(b.attrs & attrCompression); c != 0 {
		codec := map[kgo.CompressionCodecType]kgo.CompressionCodec{
			kgo.CodecGzip: kgo.GzipCompression(), kgo.CodecSnappy: kgo.SnappyCompression(),
			kgo.CodecLz4: kgo.Lz4Compression(), kgo.CodecZstd: kgo.ZstdCompression(),
		}[c]
		comp, err := kgo.DefaultCompressor(codec)
		require.NoError(t, err)
		out, used := comp.Compress(new(bytes.Buffer), raw)
		require.Equal(t, c, used)
		raw = slices.Clone(out)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:     b.base,
		Magic:           2,
		Attributes:      b.attrs,
		LastOffsetDelta: lastDelta,
		FirstTimestamp:  b.firstTime,
		MaxTimestamp:    b.maxTime,
		ProducerID:      b.producer,
		ProducerEpoch:   1,
		NumRecords:      int32(len(b.records)),
		Records:         raw,
	}
	rb.Length = int32(len(rb.AppendTo(nil)) - 12)
	enc := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(enc[rbCRC:], crc32.Checksum(enc[rbAttributes:], castagnoli))
	return append(dst, enc...)
}

// fuzzRecords returns n data records with offset deltas 0…n-1.
func fuzzRecords(prefix string, n int) []kmsg.Record {
	rs := make([]kmsg.Record, n)
	for i := range rs {
		rs[i] = kmsg.Record{
			TimestampDelta64: int64(i * 3),
			OffsetDelta:      int32(i),
			Key:              []byte(prefix + "k" + string(rune('a'+i))),
			Value:            []byte(prefix + "v" + string(rune('a'+i))),
			Headers:          []kmsg.Header{{Key: "h", Value: []byte{byte(i)}}},
		}
	}
	return rs
}

// controlRecord is a transaction marker: commit, or abort when commit is false.
func controlRecord(commit bool) []kmsg.Record {
	typ := byte(0)
	if commit {
		typ = 1
	}
	return []kmsg.Record{{Key: []byte{0, 0, 0, typ}, Value: []byte{0, 0, 0, 0, 0, 0}}}
}

func appendAbort(dst []byte, pid, first int64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(dst, uint64(pid)), uint64(first))
}

// fuzzPartition builds the fetch answer of the fuzz arguments.
func fuzzPartition(batches, aborts []byte) *kmsg.FetchResponseTopicPartition {
	fp := &kmsg.FetchResponseTopicPartition{Partition: 3, RecordBatches: batches}
	for ; len(aborts) >= 16; aborts = aborts[16:] {
		fp.AbortedTransactions = append(fp.AbortedTransactions, kmsg.FetchResponseTopicPartitionAbortedTransaction{
			ProducerID:  int64(binary.BigEndian.Uint64(aborts)),
			FirstOffset: int64(binary.BigEndian.Uint64(aborts[8:])),
		})
	}
	return fp
}

// kgoDecode runs kgo's parser and reports, beside its records and next
// offset, the bytes of the batches it accepted before the first it refused
// (all of buf's whole batches when it refused none).
func kgoDecode(fp *kmsg.FetchResponseTopicPartition, from int64) (recs []Record, next int64, accepted int, refused bool) {
	var sizes []int // whole batches of the answer, as kgo frames them
	for in := fp.RecordBatches; len(in) > 17; {
		l := int32(binary.BigEndian.Uint32(in[8:])) + 12
		if l < 0 || len(in) < int(l) {
			break
		}
		sizes = append(sizes, int(l))
		in = in[l:]
	}
	var metrics []kgo.FetchBatchMetrics
	p, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Offset:         from,
		IsolationLevel: kgo.ReadCommitted(),
		Topic:          "t",
		Partition:      3,
	}, fp, kgo.DefaultDecompressor(), func(m kgo.FetchBatchMetrics) { metrics = append(metrics, m) })
	// Replay kgo's offset tracking to find the first batch it stopped
	// short of: the one it decoded fewer records of than it expected.
	at := from
	refusedAt := len(metrics)
	for i, m := range metrics {
		b := fp.RecordBatches[accepted : accepted+sizes[i]]
		base := int64(binary.BigEndian.Uint64(b))
		last := base + int64(int32(binary.BigEndian.Uint32(b[rbLastDelta:])))
		if last < at {
			accepted += sizes[i]
			continue
		}
		want := min(int(int32(binary.BigEndian.Uint32(b[rbNumRecords:]))), m.UncompressedBytes)
		if m.NumRecords != want {
			refusedAt = i
			break
		}
		at = max(at, last+1)
		accepted += sizes[i]
	}
	refused = p.Err != nil || refusedAt < len(metrics) || len(metrics) < len(sizes)
	for _, r := range p.Records {
		hs := []Header(nil)
		for _, h := range r.Headers {
			hs = append(hs, Header{Key: h.Key, Value: h.Value})
		}
		recs = append(recs, Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp, Headers: hs})
	}
	return recs, next, accepted, refused
}

// oursDecode is decodeBatches with no upper bound, as read calls it.
func oursDecode(fp *kmsg.FetchResponseTopicPartition, from int64) ([]Record, int64, error) {
	recs, next, _, err := decodeBatches(nil, fp, "t", 3, from, math.MaxInt64, kgo.DefaultDecompressor())
	return recs, next, err
}

// requireSameRecords compares two decodings field by field; timestamps by
// their milliseconds, as both build them from the same number.
func requireSameRecords(t *testing.T, kgoRecs, ours []Record, what string) {
	t.Helper()
	require.Len(t, ours, len(kgoRecs), "%s: record count", what)
	for i := range kgoRecs {
		k, o := kgoRecs[i], ours[i]
		require.Equal(t, k.Offset, o.Offset, "%s: record %d offset", what, i)
		require.Equal(t, k.Key, o.Key, "%s: record %d key", what, i)
		require.Equal(t, k.Value, o.Value, "%s: record %d value", what, i)
		require.Equal(t, k.Headers, o.Headers, "%s: record %d headers", what, i)
		require.True(t, k.Timestamp.Equal(o.Timestamp), "%s: record %d timestamp %v, kgo %v", what, i, o.Timestamp, k.Timestamp)
		require.Equal(t, k.Topic, o.Topic)
		require.Equal(t, k.Partition, o.Partition)
	}
}

func FuzzDecodeBatchesMatchesKgo(f *testing.F) {
	const pid, other = 7, 8
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
	plain := func(base int64, attrs int16, prefix string, n int) fuzzBatch {
		return fuzzBatch{base: base, attrs: attrs, firstTime: ts, maxTime: ts + 100, producer: -1, records: fuzzRecords(prefix, n)}
	}
	txn := func(base, producer int64, prefix string, n int) fuzzBatch {
		b := plain(base, attrTransactional, prefix, n)
		b.producer = producer
		return b
	}
	marker := func(base, producer int64, commit bool) fuzzBatch {
		return fuzzBatch{base: base, producer: producer, attrs: attrTransactional | attrControl, firstTime: ts, maxTime: ts, records: controlRecord(commit)}
	}
	for _, c := range []kgo.CompressionCodecType{kgo.CodecNone, kgo.CodecGzip, kgo.CodecSnappy, kgo.CodecLz4, kgo.CodecZstd} {
		f.Add(appendFuzzBatch(f, nil, plain(0, int16(c), "p", 3)), []byte(nil), int64(0))
		f.Add(appendFuzzBatch(f, nil, plain(10, int16(c)|attrLogAppendTime, "l", 2)), []byte(nil), int64(11))
	}
	// An aborted transaction and its marker, then a committed one.
	var b []byte
	b = appendFuzzBatch(f, b, txn(0, pid, "x", 2))
	b = appendFuzzBatch(f, b, marker(2, pid, false))
	b = appendFuzzBatch(f, b, txn(3, pid, "y", 2))
	b = appendFuzzBatch(f, b, marker(5, pid, true))
	b = appendFuzzBatch(f, b, plain(6, 0, "z", 1))
	f.Add(b, appendAbort(nil, pid, 0), int64(0))
	if recs, next, err := oursDecode(fuzzPartition(b, appendAbort(nil, pid, 0)), 0); err != nil || next != 7 || len(recs) != 3 || string(recs[0].Value) != "yva" || string(recs[2].Value) != "zva" {
		f.Fatalf("the transactional seed decodes to %d records up to %d (%v), not the committed transaction's two and the plain one", len(recs), next, err)
	}
	// Interleaved producers, one aborting; compressed transactional batches.
	b = appendFuzzBatch(f, nil, txn(0, pid, "a", 2))
	ob := txn(2, other, "o", 3)
	ob.attrs |= int16(kgo.CodecZstd)
	b = appendFuzzBatch(f, b, ob)
	b = appendFuzzBatch(f, b, marker(5, pid, false))
	b = appendFuzzBatch(f, b, marker(6, other, true))
	f.Add(b, appendAbort(appendAbort(nil, other, 100), pid, 0), int64(1))
	// Several batches with compaction gaps, read from mid-batch.
	b = appendFuzzBatch(f, nil, plain(0, 0, "m", 4))
	gap := plain(4, int16(kgo.CodecGzip), "g", 2)
	gap.records[1].OffsetDelta = 5 // offsets 4 and 9
	b = appendFuzzBatch(f, b, gap)
	b = appendFuzzBatch(f, b, plain(10, int16(kgo.CodecLz4), "n", 3))
	f.Add(b, []byte(nil), int64(2))
	f.Add(b, []byte(nil), int64(11))
	// The same, cut inside its last batch as a size limit cuts it.
	f.Add(b[:len(b)-7], []byte(nil), int64(0))
	// Cut 17 bytes into a batch: too short to look at, so ignored.
	whole := appendFuzzBatch(f, nil, plain(0, 0, "c", 2))
	cut := appendFuzzBatch(f, nil, plain(2, 0, "d", 1))[:17]
	cut[rbLength+3] = 5 // a length that the fragment holds
	f.Add(append(slices.Clone(whole), cut...), []byte(nil), int64(0))
	// Overlapping batches: offset 1 comes in both, and counts once.
	f.Add(append(slices.Clone(whole), appendFuzzBatch(f, nil, plain(1, 0, "o", 2))...), []byte(nil), int64(0))
	// A control batch whose abort marker is not its first record still
	// ends the producer's aborted transaction, as kgo reads it.
	two := marker(1, pid, true)
	two.records = append(two.records, controlRecord(false)...)
	two.records[1].OffsetDelta = 1
	b = appendFuzzBatch(f, nil, txn(0, pid, "x", 1))
	b = appendFuzzBatch(f, b, two)
	b = appendFuzzBatch(f, b, txn(3, pid, "y", 1))
	f.Add(b, appendAbort(appendAbort(nil, pid, 0), pid, 4), int64(0))
	// A batch claiming a billion records (its CRC then fails).
	huge := slices.Clone(whole)
	binary.BigEndian.PutUint32(huge[rbNumRecords:], 1<<30)
	f.Add(huge, []byte(nil), int64(0))

	f.Fuzz(func(t *testing.T, batches, aborts []byte, from int64) {
		if from < 0 {
			return
		}
		kRecs, kNext, accepted, refused := kgoDecode(fuzzPartition(batches, aborts), from)
		oRecs, oNext, err := oursDecode(fuzzPartition(batches, aborts), from)
		if errors.Is(err, errLegacyFormat) {
			return // read hands those answers to kgo's parser itself
		}
		if !refused {
			require.NoError(t, err, "kgo accepts these bytes")
			requireSameRecords(t, kRecs, oRecs, "whole answer")
			require.Equal(t, kNext, oNext, "next offset")
			return
		}
		// Compare the batches both accept.
		kRecs, kNext, _, refused = kgoDecode(fuzzPartition(batches[:accepted], aborts), from)
		require.False(t, refused, "kgo accepts its own accepted batches")
		oRecs, oNext, err = oursDecode(fuzzPartition(batches[:accepted], aborts), from)
		require.NoError(t, err, "kgo accepts the first %d bytes", accepted)
		requireSameRecords(t, kRecs, oRecs, "accepted batches")
		require.Equal(t, kNext, oNext, "next offset after the accepted batches")
	})
}
