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
			req := kmsg.NewPtrFetchRequest()
			req.ReplicaID = -1
			req.MaxWaitMillis = int32(fetchMaxWait / time.Millisecond)
			req.MinBytes = 1
			req.MaxBytes = 0 // the sum of the partitions' sizes, below
			req.IsolationLevel = 1
			req.SessionEpoch = -1 // no fetch session: each request stands alone
			for _, w := range ws {
				rg := rs[w.i]
				if len(req.Topics) == 0 || req.Topics[len(req.Topics)-1].Topic != rg.Topic {
					rt := kmsg.NewFetchRequestTopic()
					rt.Topic = rg.Topic
					rt.TopicID = w.id
					req.Topics = append(req.Topics, rt)
				}
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition = rg.Partition
				rp.FetchOffset = rg.From
				rp.CurrentLeaderEpoch = -1
				rp.LastFetchedEpoch = -1
				rp.LogStartOffset = -1
				rp.PartitionMaxBytes = w.bytes
				rt := &req.Topics[len(req.Topics)-1]
				rt.Partitions = append(rt.Partitions, rp)
				req.MaxBytes += w.bytes
			}
			r.fetches.Add(1)
			kresp, err := r.k.cl.Broker(int(leader)).Request(ctx, req)
			if err != nil {
				return
			}
			resp := kresp.(*kmsg.FetchResponse)
			if resp.ErrorCode != 0 {
				return
			}
			for _, w := range ws {
				rg := rs[w.i]
				ra.parts[w.i] = findPartition(resp, rg.Topic, w.id, rg.Partition)
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

// findPartition returns the answer for one partition of a fetch response,
// matched by topic name or, in versions that answer with topic IDs, by ID;
// nil when it is missing or carries an error.
func findPartition(resp *kmsg.FetchResponse, topic string, id [16]byte, partition int32) *kmsg.FetchResponseTopicPartition {
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.Topic != topic && (t.TopicID == [16]byte{} || t.TopicID != id) {
			continue
		}
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if p.Partition == partition {
				if p.ErrorCode != 0 {
					return nil
				}
				return p
			}
		}
	}
	return nil
}
