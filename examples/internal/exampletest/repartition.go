package exampletest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/internal/keyhash"
)

// RawRecord is one record read by [KcatReadRaw], its key and value as
// bytes (nil when null).
type RawRecord struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
}

// KcatReadRaw is [KcatRead] for records whose keys and values are binary:
// kcat prints the lengths of key and value before their bytes, so that
// they may hold any byte.
func KcatReadRaw(t testing.TB, addr, topic string, committed bool) []RawRecord {
	t.Helper()
	out := kcatConsume(t, addr, topic, committed, `%p %o %K %S\n%k%s`)
	recs, err := parseRaw(out)
	require.NoError(t, err, "kcat's records of %s", topic)
	return recs
}

// parseRaw parses kcat's output in the format "%p %o %K %S\n%k%s": a head
// line of partition, offset, key length and value length (-1 for null),
// then the key's and the value's bytes.
func parseRaw(out []byte) ([]RawRecord, error) {
	var recs []RawRecord
	for len(out) > 0 {
		head, rest, ok := bytes.Cut(out, []byte("\n"))
		if !ok {
			return nil, fmt.Errorf("record %d: head line %q has no end", len(recs), head)
		}
		f := strings.Fields(string(head))
		if len(f) != 4 {
			return nil, fmt.Errorf("record %d: head line %q is not partition, offset, key length, value length", len(recs), head)
		}
		var n [4]int64
		for i, s := range f {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("record %d: head line %q: %w", len(recs), head, err)
			}
			n[i] = v
		}
		r := RawRecord{Partition: int32(n[0]), Offset: n[1]}
		for i, dst := range []*[]byte{&r.Key, &r.Value} {
			size := n[2+i]
			if size < 0 {
				continue
			}
			if int64(len(rest)) < size {
				return nil, fmt.Errorf("record %d (partition %d, offset %d): %d bytes left, %d announced", len(recs), r.Partition, r.Offset, len(rest), size)
			}
			*dst = append([]byte{}, rest[:size]...)
			rest = rest[size:]
		}
		recs = append(recs, r)
		out = rest
	}
	return recs, nil
}

// RepartitionTopic is the repartition topic of a stream named exchange in
// group, as kafkasource names it.
func RepartitionTopic(group, exchange string) string { return group + "-" + exchange + "-repartition" }

// ConsumerHash is the FNV-32a hash of a consumer's name, which leads its
// section in a repartition record's value.
func ConsumerHash(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()
}

// RepartitionValue splits the value of a repartition record into the
// payloads of its consumers, whose names are given: version byte 1, then
// for each consumer that has a payload, by ascending name, the FNV-32a hash
// of its name (4 bytes, big-endian), the payload's length (uvarint) and the
// payload. It refuses a value that does not follow that format, a section
// of a consumer not named, and sections out of order.
func RepartitionValue(value []byte, consumers []string) (map[string][]byte, error) {
	if len(value) == 0 || value[0] != 1 {
		return nil, fmt.Errorf("value %x does not start with version 1", value)
	}
	names := slices.Sorted(slices.Values(consumers))
	byHash := map[uint32]int{}
	for i, n := range names {
		byHash[ConsumerHash(n)] = i
	}
	out := map[string][]byte{}
	last := -1
	for rest := value[1:]; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, fmt.Errorf("value %x: %d bytes where a consumer's hash is due", value, len(rest))
		}
		h := binary.BigEndian.Uint32(rest)
		i, ok := byHash[h]
		if !ok {
			return nil, fmt.Errorf("value %x: a section of consumer hash %08x, which is none of %q", value, h, names)
		}
		if i <= last {
			return nil, fmt.Errorf("value %x: consumer %q's section after %q's; they go by ascending name, once each", value, names[i], names[last])
		}
		last = i
		size, n := binary.Uvarint(rest[4:])
		if n <= 0 || size > uint64(len(rest)-4-n) {
			return nil, fmt.Errorf("value %x: consumer %q's section has no valid length", value, names[i])
		}
		rest = rest[4+n:]
		out[names[i]] = rest[:size]
		rest = rest[size:]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("value %x holds no consumer's section", value)
	}
	return out, nil
}

// ZigZag decodes a payload that is one zig-zag varint and nothing else.
func ZigZag(payload []byte) (int64, error) {
	v, n := binary.Varint(payload)
	if n <= 0 || n != len(payload) {
		return 0, fmt.Errorf("payload %x is not one zig-zag varint", payload)
	}
	return v, nil
}

// ZigZagList decodes a payload that is a list of zig-zag varints, as a
// grouping consumer's (UpdateStateByKey, GroupByKey) values are: their
// count (uvarint), then each value's length (uvarint) and the value.
func ZigZagList(payload []byte) ([]int64, error) {
	count, n := binary.Uvarint(payload)
	if n <= 0 || count > uint64(len(payload)) {
		return nil, fmt.Errorf("payload %x does not start with a valid count", payload)
	}
	rest := payload[n:]
	vs := make([]int64, 0, count)
	for range count {
		size, n := binary.Uvarint(rest)
		if n <= 0 || size > uint64(len(rest)-n) {
			return nil, fmt.Errorf("payload %x ends inside value %d of %d", payload, len(vs)+1, count)
		}
		v, err := ZigZag(rest[n : n+int(size)])
		if err != nil {
			return nil, fmt.Errorf("payload %x, value %d of %d: %w", payload, len(vs)+1, count, err)
		}
		vs = append(vs, v)
		rest = rest[n+int(size):]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("payload %x has %d bytes after its %d values", payload, len(rest), count)
	}
	return vs, nil
}

// Repartition is what [CheckRepartition] checks a repartition topic for.
type Repartition struct {
	Addr, Topic string
	Partitions  int
	// Consumers are the names of the operators reading the topic.
	Consumers []string
	// Decode turns a consumer's payload into the count it adds to its key.
	Decode func(consumer string, payload []byte) (int64, error)
	// Want is every key's count, as the input gives it.
	Want map[string]int64
}

// RepartitionStats is what [CheckRepartition] found in a repartition topic.
type RepartitionStats struct {
	Committed, Uncommitted int // records read committed and read uncommitted
	Bytes                  int // of the keys and values read committed
	// Aborted is, by consumer, the counts the records of aborted
	// transactions hold: what read-committed readers would count twice if
	// they saw them.
	Aborted map[string]int64
}

// CheckRepartition reads a repartition topic with kcat, read committed,
// and checks that every record is keyed by a key of r.Want (keys are
// strings, their bytes as they are) in partition
// keyhash.Partition(hash(key), r.Partitions), that its value follows the
// format of [RepartitionValue], and that every consumer's counts of a key,
// summed over the records, are its count in r.Want: no record is missing
// and none is there twice (every count is positive). Read uncommitted, the
// topic must hold the same records and those of aborted transactions,
// whose counts it returns.
func CheckRepartition(t testing.TB, r Repartition) RepartitionStats {
	t.Helper()
	committed := KcatReadRaw(t, r.Addr, r.Topic, true)
	sums, wrong := sumRepartition(r, committed)
	require.Empty(t, wrong, "%s, read committed: %d records", r.Topic, len(committed))
	for _, c := range r.Consumers {
		for key, want := range r.Want {
			if got := sums[c][key]; got != want {
				wrong = append(wrong, fmt.Sprintf("%s: %d, the input has %d", key, got, want))
			}
		}
		slices.Sort(wrong)
		require.Empty(t, wrong, "%s, read committed: consumer %q's counts summed over %d records differ from the input's for %d of %d keys",
			r.Topic, c, len(committed), len(wrong), len(r.Want))
	}

	all := KcatReadRaw(t, r.Addr, r.Topic, false)
	withAborted, wrong := sumRepartition(r, all)
	require.Empty(t, wrong, "%s, read uncommitted: %d records", r.Topic, len(all))
	st := RepartitionStats{Committed: len(committed), Uncommitted: len(all), Aborted: map[string]int64{}}
	for _, rec := range committed {
		st.Bytes += len(rec.Key) + len(rec.Value)
	}
	var total int64
	for _, c := range r.Consumers {
		for key, n := range withAborted[c] {
			extra := n - sums[c][key]
			require.GreaterOrEqual(t, extra, int64(0), "%s: consumer %q's counts of %q read uncommitted are below those read committed", r.Topic, c, key)
			st.Aborted[c] += extra
			total += extra
		}
	}
	if st.Uncommitted > st.Committed {
		require.Positive(t, total, "%s: %d records of aborted transactions hold no counts", r.Topic, st.Uncommitted-st.Committed)
	}
	return st
}

// sumRepartition checks recs as CheckRepartition says and sums their
// counts by consumer and key; it returns what is wrong with them, the
// first 20 faults.
func sumRepartition(r Repartition, recs []RawRecord) (map[string]map[string]int64, []string) {
	hash := keyhash.For[string]()
	sums := map[string]map[string]int64{}
	for _, c := range r.Consumers {
		sums[c] = map[string]int64{}
	}
	var wrong []string
	for _, rec := range recs {
		if len(wrong) >= 20 {
			break
		}
		where := fmt.Sprintf("record %d/%d (key %q)", rec.Partition, rec.Offset, rec.Key)
		key := string(rec.Key)
		if _, ok := r.Want[key]; !ok || rec.Key == nil {
			wrong = append(wrong, where+": a key not in the input")
			continue
		}
		if p := keyhash.Partition(hash(key), r.Partitions); int32(p) != rec.Partition {
			wrong = append(wrong, fmt.Sprintf("%s: in partition %d, its key hashes to %d", where, rec.Partition, p))
		}
		sections, err := RepartitionValue(rec.Value, r.Consumers)
		if err != nil {
			wrong = append(wrong, where+": "+err.Error())
			continue
		}
		for c, payload := range sections {
			v, err := r.Decode(c, payload)
			switch {
			case err != nil:
				wrong = append(wrong, fmt.Sprintf("%s: consumer %q: %v", where, c, err))
			case v <= 0:
				wrong = append(wrong, fmt.Sprintf("%s: consumer %q: a count of %d", where, c, v))
			default:
				sums[c][key] += v
			}
		}
	}
	return sums, wrong
}
