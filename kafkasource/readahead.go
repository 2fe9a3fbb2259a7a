package kafkasource

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Read-ahead bounds: a range is read ahead when its records are expected to
// take at most readAheadRange bytes, and one batch reads ahead at most
// readAheadTotal bytes. Big ranges are read by their tasks alone: their
// fetch round trips are few against the records they bring.
const (
	readAheadRange = 1 << 20
	readAheadTotal = 8 << 20
)

// readAhead is the first fetch of every small range of one batch, sent as
// one request per leader as soon as the batch is planned, so that a batch of
// many small ranges waits for one round trip instead of one per range and
// its tasks find their data already there. A range whose answer is missing
// or failed is fetched by its task as usual.
type readAhead struct {
	done  chan struct{}
	parts []*kmsg.FetchResponseTopicPartition // by range index; nil where nothing usable came
}

// readAhead starts fetching the beginning of the small ranges of rs, each
// at its From offset.
func (r *reader) readAhead(ctx context.Context, rs []OffsetRange) *readAhead {
	type want struct {
		i     int
		id    [16]byte
		bytes int32
	}
	byLeader := make(map[int32][]want)
	var total int64
	for i, rg := range rs {
		n := rg.Count()
		if n == 0 || r.tailOf(rg.TopicPartition()).covers(rg.From) {
			continue // nothing to read, or its task starts from the partition's tail
		}
		size := r.sizeFor(n)
		if size > readAheadRange || total+int64(size) > readAheadTotal {
			continue
		}
		leader, id, ok := r.k.leader(rg.TopicPartition())
		if !ok {
			continue
		}
		total += int64(size)
		byLeader[leader] = append(byLeader[leader], want{i, id, size})
	}
	if len(byLeader) == 0 {
		return nil
	}
	ra := &readAhead{done: make(chan struct{}), parts: make([]*kmsg.FetchResponseTopicPartition, len(rs))}
	// The engine's context outlives the batch: bound the read-ahead by the
	// time one fetch may take, so that a broker that does not answer holds
	// the tasks no longer than that.
	ctx, cancel := context.WithTimeout(ctx, fetchMaxWait+5*time.Second)
	remaining := len(byLeader)
	finished := make(chan struct{}, len(byLeader))
	for leader, ws := range byLeader {
		go func() {
			defer func() { finished <- struct{}{} }()
			parts := make([]fetchPart, len(ws))
			for k, w := range ws {
				rg := rs[w.i]
				parts[k] = fetchPart{rg.Topic, w.id, rg.Partition, rg.From, w.bytes}
			}
			resp, err := r.fetchParts(ctx, leader, parts)
			if err != nil {
				return
			}
			for _, w := range ws {
				rg := rs[w.i]
				if p := partitionOf(resp, rg.Topic, w.id, rg.Partition); p != nil && p.ErrorCode == 0 {
					ra.parts[w.i] = p
				}
			}
		}()
	}
	go func() {
		for ; remaining > 0; remaining-- {
			<-finished
		}
		cancel()
		close(ra.done)
	}()
	return ra
}

// first returns what was read ahead for range i, once the read-ahead is
// over, or nil when nothing usable came for it or ctx ends first.
func (ra *readAhead) first(ctx context.Context, i int) *kmsg.FetchResponseTopicPartition {
	if ra == nil {
		return nil
	}
	select {
	case <-ra.done:
		return ra.parts[i]
	case <-ctx.Done():
		return nil
	}
}
