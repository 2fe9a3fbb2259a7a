package kafkasource

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record is one Kafka record of a [NewDirectStream] stream.
//
// Key, Value and header values share the memory of the fetch that brought
// them (no copy is made); they stay valid as long as the Record is kept, and
// keeping one keeps that fetch's buffer alive: copy what you keep for long.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte // nil for a record without key
	Value     []byte // nil for a tombstone
	Timestamp time.Time
	Headers   []Header
}

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// fetchMaxWait is how long a broker may hold a fetch that finds no data.
// The planned ranges exist, so brokers answer at once; the bound only
// matters when a log was truncated under the stream.
const fetchMaxWait = 500 * time.Millisecond

// errNoProgress is a fetch that returned no whole record batch at an offset
// the plan saw below the end of the log.
var errNoProgress = errors.New("kafkasource: the broker returned no records at an offset below the end of the log")

// errLegacyFormat marks a response holding message sets older than record
// batch v2, which the slower kgo parser handles.
var errLegacyFormat = errors.New("kafkasource: legacy message format")

// reader reads offset ranges through the stream's one client: one fetch
// request at a time per range, straight to the partition's leader, each
// sized to what is left of the range.
type reader struct {
	k        *kclient
	dec      kgo.Decompressor
	maxBytes int32
	lose     func(tp TopicPartition, from, to int64, when string) error

	fetches        atomic.Int64
	bytesPerOffset atomic.Int64 // wire bytes per offset seen last; 0 before the first fetch

	tailsMu sync.Mutex
	tails   map[TopicPartition]*tail // the last answer fetched for each partition
}

// read returns the records of rg with offsets in [rg.From, rg.Until), in
// offset order, read committed: records of aborted transactions and
// control records are skipped, as are offsets compaction removed.
//
// The range starts from the partition's tail when it holds rg.From (see
// [tail]), else from ahead, when not nil, an answer already fetched at
// rg.From (see [readAhead]); a fetch is sent for what they lack.
func (r *reader) read(ctx context.Context, rg OffsetRange, ahead *kmsg.FetchResponseTopicPartition) ([]Record, error) {
	tp := rg.TopicPartition()
	var out []Record // decodeBatches sizes it from each answer's batch headers
	next := rg.From
	if t := r.tailOf(tp); t.covers(next) {
		if got, adv, err := r.take(out, t.fp, rg, next, t, false); err == nil {
			out, next = got, adv
		} else {
			r.keepTail(tp, nil) // the fetch below tries again and reports what fails
		}
	} else if ahead != nil {
		t := newTail(ahead, next, r.dec)
		if got, adv, err := r.take(out, ahead, rg, next, t, true); err == nil {
			out, next = got, adv
			r.keepTail(tp, t)
		} // else the fetch below tries again and reports what fails
	}
	for next < rg.Until {
		maxBytes := r.sizeFor(rg.Until - next)
		what := fmt.Sprintf("fetching %s[%d] at offset %d", rg.Topic, rg.Partition, next)
		err := r.k.retry(ctx, what, func(ctx context.Context) (string, error) {
			leader, id, ok := r.k.leader(tp)
			if !ok {
				if err := r.k.refreshLeader(ctx, tp); err != nil {
					return "", err
				}
				if leader, id, ok = r.k.leader(tp); !ok {
					return "", fmt.Errorf("%s[%d] is not in the cluster's metadata: %w", tp.Topic, tp.Partition, kerr.UnknownTopicOrPartition)
				}
			}
			who := r.k.brokerName(leader)
			fp, err := r.fetch(ctx, leader, id, tp, next, maxBytes)
			if err != nil {
				if retriable(err) {
					r.k.forgetLeader(tp)
				}
				return who, err
			}
			t := newTail(fp, next, r.dec)
			got, adv, err := r.take(out, fp, rg, next, t, true)
			if err != nil {
				return who, err
			}
			out, next = got, adv
			r.keepTail(tp, t)
			return who, nil
		})
		if errors.Is(err, kerr.OffsetOutOfRange) {
			if next, err = r.outOfRange(ctx, rg, next); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// take appends the records of fp from offset next of rg on to out and
// returns them with the offset to fetch next. t, when not nil, is fp's tail,
// which decompresses its batches once; fresh says fp was fetched at next,
// so its size teaches how many bytes an offset takes. On error out is
// returned unchanged in length.
func (r *reader) take(out []Record, fp *kmsg.FetchResponseTopicPartition, rg OffsetRange, next int64, t *tail, fresh bool) ([]Record, int64, error) {
	n0 := len(out)
	var dec kgo.Decompressor = r.dec
	if t != nil {
		dec = t
	}
	out, adv, used, err := decodeBatches(out, fp, rg.Topic, rg.Partition, next, rg.Until, dec)
	if errors.Is(err, errLegacyFormat) {
		out, adv, err = decodeLegacy(out[:n0], fp, rg.Topic, rg.Partition, next, rg.Until)
		used = len(fp.RecordBatches)
	}
	if err != nil {
		return out[:n0], next, fmt.Errorf("decoding %s[%d] at offset %d: %w", rg.Topic, rg.Partition, next, err)
	}
	if adv <= next {
		return out[:n0], next, errNoProgress
	}
	if fresh {
		r.bytesPerOffset.Store(max(int64(used)/(adv-next), 1))
	}
	return out, adv, nil
}

// outOfRange handles a fetch refused as out of range: records deleted
// under the stream (after planning, or before a re-run) are a loss, skipped
// to the log start unless that is fatal; anything else is an error.
func (r *reader) outOfRange(ctx context.Context, rg OffsetRange, next int64) (int64, error) {
	tp := rg.TopicPartition()
	leader, _, _ := r.k.leader(tp)
	leaders := map[TopicPartition]int32{tp: leader}
	var start map[TopicPartition]int64
	err := r.k.retry(ctx, "listing the log start of "+tp.Topic, func(ctx context.Context) (string, error) {
		if err := r.k.refreshLeader(ctx, tp); err != nil {
			return "", err
		}
		leaders[tp], _, _ = r.k.leader(tp)
		var who string
		var err error
		start, who, err = r.k.listOffsets(ctx, leaders, -2, 0)
		return who, err
	})
	if err != nil {
		return 0, err
	}
	if s := start[tp]; s > next {
		to := min(s, rg.Until)
		if err := r.lose(tp, next, to, "reading"); err != nil {
			return 0, err
		}
		return to, nil
	}
	hwm, err := r.k.highWatermarks(ctx, leaders)
	if err != nil {
		return 0, err
	}
	return 0, &OffsetOutOfRangeError{Topic: tp.Topic, Partition: tp.Partition, Offset: next, HighWatermark: hwm[tp]}
}

// sizeFor returns the fetch size for n more offsets: what they took on the
// wire so far, with a margin, within [16 KiB, maxBytes].
func (r *reader) sizeFor(n int64) int32 {
	per := r.bytesPerOffset.Load()
	if per == 0 {
		per = 256
	}
	want := n*per + n*per/4 + 1024
	if want/per < n || want > int64(r.maxBytes) { // overflow or too big
		return r.maxBytes
	}
	return int32(max(want, 16<<10))
}

// fetch issues one read-committed fetch of tp at offset to leader and
// returns the partition's answer, or its error.
func (r *reader) fetch(ctx context.Context, leader int32, topicID [16]byte, tp TopicPartition, offset int64, maxBytes int32) (*kmsg.FetchResponseTopicPartition, error) {
	resp, err := r.fetchParts(ctx, leader, []fetchPart{{tp.Topic, topicID, tp.Partition, offset, maxBytes}})
	if err != nil {
		return nil, err
	}
	p := partitionOf(resp, tp.Topic, topicID, tp.Partition)
	if p == nil {
		return nil, fmt.Errorf("fetch answer lacks %s[%d]: %w", tp.Topic, tp.Partition, kerr.UnknownTopicOrPartition)
	}
	if p.ErrorCode != 0 {
		return nil, kerr.ErrorForCode(p.ErrorCode)
	}
	return p, nil
}

// fetchPart is one partition of a fetch request: read from offset, at most
// maxBytes.
type fetchPart struct {
	topic     string
	topicID   [16]byte
	partition int32
	offset    int64
	maxBytes  int32
}

// fetchParts issues one read-committed fetch of parts to leader, without a
// fetch session, at most the sum of the parts' sizes, and returns the
// answer, or the error of the request or of the whole answer.
func (r *reader) fetchParts(ctx context.Context, leader int32, parts []fetchPart) (*kmsg.FetchResponse, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = int32(fetchMaxWait / time.Millisecond)
	req.MinBytes = 1
	req.IsolationLevel = 1
	req.SessionID = 0
	req.SessionEpoch = -1 // no fetch session: each request stands alone
	req.MaxBytes = 0      // the sum of the parts' sizes, below (kmsg's default is the int32 maximum)
	for _, fp := range parts {
		if len(req.Topics) == 0 || req.Topics[len(req.Topics)-1].Topic != fp.topic {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = fp.topic
			rt.TopicID = fp.topicID
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = fp.partition
		rp.FetchOffset = fp.offset
		rp.CurrentLeaderEpoch = -1
		rp.LastFetchedEpoch = -1
		rp.LogStartOffset = -1
		rp.PartitionMaxBytes = fp.maxBytes
		rt := &req.Topics[len(req.Topics)-1]
		rt.Partitions = append(rt.Partitions, rp)
		req.MaxBytes += fp.maxBytes
	}
	r.fetches.Add(1)
	kresp, err := r.k.cl.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		return nil, kerr.ErrorForCode(resp.ErrorCode)
	}
	return resp, nil
}

// partitionOf returns the answer for one partition of a fetch response,
// matched by topic name or, in versions that answer with topic IDs, by ID;
// nil when it is missing.
func partitionOf(resp *kmsg.FetchResponse, topic string, id [16]byte, partition int32) *kmsg.FetchResponseTopicPartition {
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.Topic != topic && (t.TopicID == [16]byte{} || t.TopicID != id) {
			continue
		}
		for j := range t.Partitions {
			if p := &t.Partitions[j]; p.Partition == partition {
				return p
			}
		}
	}
	return nil
}

// Record batch v2 layout: the byte offsets of its header fields.
const (
	rbLength      = 8  // int32, counts from byte 12
	rbMagic       = 16 // int8
	rbCRC         = 17 // uint32, CRC-32C of bytes 21…end
	rbAttributes  = 21 // int16
	rbLastDelta   = 23 // int32
	rbFirstTime   = 27 // int64
	rbMaxTime     = 35 // int64
	rbProducerID  = 43 // int64
	rbNumRecords  = 57 // int32
	rbHeaderBytes = 61

	attrCompression   = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// decodeBatches appends to out the records of fp's record batches whose
// offsets are in [from, until), read committed, and returns the offset
// after the last batch it went through (the next to fetch) and the bytes
// those batches took. A partial batch at the end of the answer, which
// brokers send when the size limit cuts one, is left for the next fetch.
// Record batches before v2 make it return errLegacyFormat.
func decodeBatches(out []Record, fp *kmsg.FetchResponseTopicPartition, topic string, partition int32, from, until int64, dec kgo.Decompressor) ([]Record, int64, int, error) {
	buf := fp.RecordBatches
	if n := countRecords(buf, from, until); n > cap(out)-len(out) {
		out = slices.Grow(out, n)
	}
	aborts := abortIndex(fp.AbortedTransactions)
	next := from
	used := 0
	// A batch needs more than the 17 bytes up to its magic byte to be
	// read at all; fewer left over are a cut batch, ignored like any
	// partial batch (kgo's parser stops at the same point).
	for len(buf) > rbMagic+1 {
		length := int64(int32(binary.BigEndian.Uint32(buf[rbLength:])))
		total := 12 + length
		if length < 0 || int64(len(buf)) < total {
			break
		}
		if buf[rbMagic] != 2 {
			return out, next, used, errLegacyFormat
		}
		if total < rbHeaderBytes {
			return out, next, used, fmt.Errorf("record batch of %d bytes is shorter than its header", total)
		}
		b := buf[:total]
		buf = buf[total:]
		used += int(total)

		base := int64(binary.BigEndian.Uint64(b))
		last := base + int64(int32(binary.BigEndian.Uint32(b[rbLastDelta:])))
		if last < next {
			continue
		}
		if crc := crc32.Checksum(b[rbAttributes:], castagnoli); crc != binary.BigEndian.Uint32(b[rbCRC:]) {
			return out, next, used, fmt.Errorf("record batch at offset %d fails its CRC", base)
		}
		attrs := binary.BigEndian.Uint16(b[rbAttributes:])
		numRecords := int32(binary.BigEndian.Uint32(b[rbNumRecords:]))
		if numRecords < 0 {
			return out, next, used, fmt.Errorf("record batch at offset %d claims %d records", base, numRecords)
		}
		skip := attrs&attrControl != 0
		if attrs&attrTransactional != 0 && aborts != nil {
			pid := int64(binary.BigEndian.Uint64(b[rbProducerID:]))
			if firsts := aborts[pid]; len(firsts) > 0 && base >= firsts[0] {
				skip = true
				if attrs&attrControl != 0 && isAbortMarker(b, dec) {
					if len(firsts) == 1 {
						delete(aborts, pid)
					} else {
						aborts[pid] = firsts[1:]
					}
				}
			}
		}
		if !skip {
			records := b[rbHeaderBytes:]
			if c := attrs & attrCompression; c != 0 {
				var err error
				if records, err = dec.Decompress(records, kgo.CompressionCodecType(c)); err != nil {
					return out, next, used, fmt.Errorf("record batch at offset %d does not decompress: %w", base, err)
				}
			}
			firstTime := int64(binary.BigEndian.Uint64(b[rbFirstTime:]))
			if attrs&attrLogAppendTime != 0 {
				firstTime = int64(binary.BigEndian.Uint64(b[rbMaxTime:]))
			}
			var err error
			var done bool
			out, next, done, err = decodeRecords(out, records, int(numRecords), topic, partition, base, firstTime, attrs&attrLogAppendTime != 0, next, until)
			if err != nil {
				return out, next, used, fmt.Errorf("record batch at offset %d: %w", base, err)
			}
			if done {
				return out, max(last+1, until), used, nil
			}
		}
		next = max(next, last+1)
		if next >= until {
			break
		}
	}
	return out, next, used, nil
}

// minRecordBytes is the least an uncompressed record takes: its length,
// attributes, timestamp and offset deltas, key and value lengths and
// header count, one byte each.
const minRecordBytes = 7

// countRecords returns how many records the whole v2 batches of buf
// claim that may fall in [from, until), at most until − from: the room to
// make before decoding, so that appending never reallocates. A batch's
// claim counts for no more records than its bytes could hold uncompressed,
// so that a corrupt count (its CRC is not checked yet) cannot make it
// allocate far beyond the answer's size; a compressed batch holding more
// than that grows the slice as it decodes.
func countRecords(buf []byte, from, until int64) int {
	var n int64
	for len(buf) >= rbHeaderBytes {
		total := 12 + int64(int32(binary.BigEndian.Uint32(buf[rbLength:])))
		if total < rbHeaderBytes || int64(len(buf)) < total || buf[rbMagic] != 2 {
			break
		}
		base := int64(binary.BigEndian.Uint64(buf))
		last := base + int64(int32(binary.BigEndian.Uint32(buf[rbLastDelta:])))
		attrs := binary.BigEndian.Uint16(buf[rbAttributes:])
		if last >= from && base < until && attrs&attrControl == 0 {
			claim := max(int64(int32(binary.BigEndian.Uint32(buf[rbNumRecords:]))), 0)
			n += min(claim, (total-rbHeaderBytes)/minRecordBytes)
		}
		buf = buf[total:]
	}
	return int(min(n, until-from, 1<<22))
}

// decodeRecords appends the records of one batch with offsets in
// [next, until), and returns the offset after the last one it kept: a
// record below that offset (below the asked one, or not past the record
// before it) is skipped. done reports that the batch reached until.
func decodeRecords(out []Record, rs []byte, n int, topic string, partition int32, base, firstTime int64, logAppend bool, next, until int64) (_ []Record, _ int64, done bool, _ error) {
	for range n {
		l, k := varint(rs)
		if k <= 0 || l < 0 || l > int64(len(rs)-k) {
			return out, next, false, errCorruptRecord
		}
		rec := rs[k : k+int(l)]
		rs = rs[k+int(l):]
		if len(rec) < 1 {
			return out, next, false, errCorruptRecord
		}
		rec = rec[1:] // attributes, unused
		tsDelta, k := varint(rec)
		if k <= 0 {
			return out, next, false, errCorruptRecord
		}
		rec = rec[k:]
		offDelta, k := varint(rec)
		if k <= 0 {
			return out, next, false, errCorruptRecord
		}
		rec = rec[k:]
		off := base + offDelta
		if off >= until {
			return out, next, true, nil
		}
		if off < next {
			continue
		}
		key, rec, ok := varBytes(rec)
		if !ok {
			return out, next, false, errCorruptRecord
		}
		value, rec, ok := varBytes(rec)
		if !ok {
			return out, next, false, errCorruptRecord
		}
		nh, k := varint(rec)
		if k <= 0 || nh < 0 || nh > int64(len(rec)) {
			return out, next, false, errCorruptRecord
		}
		rec = rec[k:]
		var headers []Header
		if nh > 0 {
			headers = make([]Header, nh)
			for i := range headers {
				var hk, hv []byte
				if hk, rec, ok = varBytes(rec); !ok {
					return out, next, false, errCorruptRecord
				}
				if hv, rec, ok = varBytes(rec); !ok {
					return out, next, false, errCorruptRecord
				}
				headers[i] = Header{Key: string(hk), Value: hv}
			}
		}
		ts := firstTime
		if !logAppend {
			ts += tsDelta
		}
		out = append(out, Record{
			Topic:     topic,
			Partition: partition,
			Offset:    off,
			Key:       key,
			Value:     value,
			Timestamp: time.UnixMilli(ts),
			Headers:   headers,
		})
		next = off + 1
	}
	return out, next, false, nil
}

var errCorruptRecord = errors.New("corrupt record")

// varint reads a zig-zag varint, as Kafka records encode numbers, with a
// fast path for one byte.
func varint(b []byte) (int64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		u := int64(b[0])
		return (u >> 1) ^ -(u & 1), 1
	}
	return binary.Varint(b)
}

// varBytes reads a varint-length-prefixed byte string; length -1 is nil.
func varBytes(b []byte) (v, rest []byte, ok bool) {
	l, k := varint(b)
	if k <= 0 || l < -1 || l > int64(len(b)-k) {
		return nil, b, false
	}
	b = b[k:]
	if l < 0 {
		return nil, b, true
	}
	return b[:l:l], b[l:], true
}

// isAbortMarker reports whether control batch b holds an abort marker: a
// record whose key is a version and a type, type 0 being abort. A
// well-formed control batch holds one marker; like kgo, any of its records
// counts, not only the first.
func isAbortMarker(b []byte, dec kgo.Decompressor) bool {
	records := b[rbHeaderBytes:]
	if c := binary.BigEndian.Uint16(b[rbAttributes:]) & attrCompression; c != 0 {
		var err error
		if records, err = dec.Decompress(records, kgo.CompressionCodecType(c)); err != nil {
			return false
		}
	}
	for range max(int32(binary.BigEndian.Uint32(b[rbNumRecords:])), 0) {
		l, k := varint(records)
		if k <= 0 || l < 1 || l > int64(len(records)-k) {
			return false
		}
		rec := records[k+1 : k+int(l)] // past the attributes
		records = records[k+int(l):]
		ok := true
		for range 2 { // timestamp and offset deltas
			_, n := varint(rec)
			if n <= 0 {
				ok = false
				break
			}
			rec = rec[n:]
		}
		if !ok {
			return false
		}
		key, _, ok := varBytes(rec)
		if !ok {
			return false
		}
		if len(key) >= 4 && binary.BigEndian.Uint16(key[2:]) == 0 {
			return true
		}
	}
	return false
}

// abortIndex maps each producer with aborted transactions in the answer to
// the first offsets of those transactions, ascending.
func abortIndex(ats []kmsg.FetchResponseTopicPartitionAbortedTransaction) map[int64][]int64 {
	if len(ats) == 0 {
		return nil
	}
	m := make(map[int64][]int64)
	for _, a := range ats {
		m[a.ProducerID] = append(m[a.ProducerID], a.FirstOffset)
	}
	for _, f := range m {
		slices.Sort(f)
	}
	return m
}

// decodeLegacy reads answers in the message formats before record batches
// (Kafka < 0.11 logs) with kgo's parser.
func decodeLegacy(out []Record, fp *kmsg.FetchResponseTopicPartition, topic string, partition int32, from, until int64) ([]Record, int64, error) {
	p, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Offset:         from,
		IsolationLevel: kgo.ReadCommitted(),
		Topic:          topic,
		Partition:      partition,
	}, fp, kgo.DefaultDecompressor(), nil)
	if p.Err != nil {
		return out, from, p.Err
	}
	for _, r := range p.Records {
		if r.Offset < from || r.Offset >= until {
			continue
		}
		var hs []Header
		for _, h := range r.Headers {
			hs = append(hs, Header{Key: h.Key, Value: h.Value})
		}
		out = append(out, Record{Topic: topic, Partition: partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp, Headers: hs})
	}
	return out, next, nil
}
