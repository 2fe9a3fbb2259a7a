// Package topictest reads Kafka topics to their end for tests that check
// what a job wrote: read committed, only what committed transactions hold;
// read uncommitted, their aborted records too.
package topictest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadToEnd returns the values of topic's records, partition by partition
// in offset order, reading each partition up to its end when called: the
// last stable offset when committed (read_committed), else the high
// watermark (read_uncommitted). Control records are skipped. It fails t
// when a partition is not read to its end within 30 seconds.
func ReadToEnd(t testing.TB, seeds []string, topic string, committed bool) []string {
	t.Helper()
	var out []string
	for _, r := range RecordsToEnd(t, seeds, topic, committed) {
		out = append(out, string(r.Value))
	}
	return out
}

// RecordsToEnd is [ReadToEnd] returning the records themselves, in offset
// order within each partition.
func RecordsToEnd(t testing.TB, seeds []string, topic string, committed bool) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	list, iso := kadm.NewClient(adm).ListEndOffsets, kgo.ReadUncommitted()
	if committed {
		list, iso = kadm.NewClient(adm).ListCommittedOffsets, kgo.ReadCommitted()
	}
	ends, err := list(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	left := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
			parts[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(left) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.FetchIsolationLevel(iso), kgo.KeepControlRecords(),
		kgo.FetchMaxWait(100*time.Millisecond), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []*kgo.Record
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: partitions %v not read to their end", topic, left)
		}
		if err := fs.Err(); err != nil {
			t.Fatalf("reading %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if !r.Attrs.IsControl() {
				got = append(got, r)
			}
			if r.Offset >= end-1 {
				delete(left, r.Partition)
			}
		})
	}
	return got
}
