package kafkasource

import (
	"io"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPlanRanges(t *testing.T) {
	a0, a1, b0 := TopicPartition{"a", 0}, TopicPartition{"a", 1}, TopicPartition{"b", 0}
	for _, tc := range []struct {
		name                    string
		positions, latest, caps map[TopicPartition]int64
		want                    []OffsetRange
	}{
		{"no cap reads to latest", map[TopicPartition]int64{a0: 3, a1: 0, b0: 9}, map[TopicPartition]int64{b0: 12, a1: 5, a0: 3}, nil,
			[]OffsetRange{{"a", 0, 3, 3}, {"a", 1, 0, 5}, {"b", 0, 9, 12}}},
		{"cap bounds until", map[TopicPartition]int64{a0: 3, a1: 0}, map[TopicPartition]int64{a0: 100, a1: 2}, map[TopicPartition]int64{a0: 10, a1: 10},
			[]OffsetRange{{"a", 0, 3, 13}, {"a", 1, 0, 2}}},
		{"position past the stable end reads nothing", map[TopicPartition]int64{a0: 8}, map[TopicPartition]int64{a0: 5}, nil,
			[]OffsetRange{{"a", 0, 8, 8}}},
		{"huge cap does not overflow", map[TopicPartition]int64{a0: 7}, map[TopicPartition]int64{a0: 9}, map[TopicPartition]int64{a0: math.MaxInt64},
			[]OffsetRange{{"a", 0, 7, 9}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := planRanges(tc.positions, tc.latest, tc.caps)
			require.Equal(t, tc.want, got)
			require.Equal(t, totalCount(tc.want), totalCount(got))
		})
	}
}

func TestPlanEncodingRoundTrip(t *testing.T) {
	for _, rs := range [][]OffsetRange{
		{},
		{{"t", 0, 0, 0}},
		{{"a", 0, 5, 9}, {"a", 3, 0, 1 << 40}, {"b-long.topic_name", math.MaxInt32, math.MaxInt64 - 1, math.MaxInt64}},
	} {
		got, err := decodePlan(encodePlan(rs))
		require.NoError(t, err)
		require.Equal(t, rs, got, "Replan must see exactly the planned ranges")
	}
}

func TestDecodePlanRejects(t *testing.T) {
	good := encodePlan([]OffsetRange{{"a", 0, 5, 9}, {"b", 1, 2, 3}})
	unordered := encodePlan([]OffsetRange{{"b", 1, 2, 3}, {"a", 0, 5, 9}})
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(append([]byte(nil), good...), 0)},
		{"out of order", unordered},
		{"count larger than the body", []byte{planVersion, 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodePlan(tc.b)
			require.ErrorIs(t, err, ErrBadPlan)
		})
	}
}

func FuzzDecodePlan(f *testing.F) {
	f.Add(encodePlan([]OffsetRange{{"a", 0, 5, 9}, {"b", 1, 2, 3}}))
	f.Add([]byte{planVersion, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := decodePlan(b)
		if err != nil {
			return
		}
		for _, r := range rs {
			require.GreaterOrEqual(t, r.From, int64(0))
			require.GreaterOrEqual(t, r.Until, r.From)
		}
		again, err := decodePlan(encodePlan(rs))
		require.NoError(t, err)
		require.Equal(t, rs, again)
	})
}

func TestOffsetRange(t *testing.T) {
	r := OffsetRange{"clicks", 3, 10, 25}
	require.Equal(t, int64(15), r.Count())
	require.Equal(t, TopicPartition{"clicks", 3}, r.TopicPartition())
	require.Equal(t, "clicks[3] [10, 25)", r.String())
}

func TestStateEncodingRoundTrip(t *testing.T) {
	n := &directNode{positions: map[TopicPartition]int64{{"a", 0}: 5, {"b", 2}: 1 << 40}, planned: []OffsetRange{{"a", 0, 5, 9}, {"c", 1, 0, 4}},
		sub: subscription{topics: []string{"a", "b", "c"}}}
	w := &snapshotWriter{}
	require.NoError(t, n.SaveState(w))
	pos, subs, err := decodeState(w.body)
	require.NoError(t, err)
	require.Equal(t, []string{"t:a", "t:b", "t:c"}, subs, "the subscription is saved with the positions")
	require.Equal(t, map[TopicPartition]int64{{"a", 0}: 9, {"b", 2}: 1 << 40, {"c", 1}: 4}, pos, "positions after the checkpointed batch")
	for _, bad := range [][]byte{nil, {9}, w.body[:len(w.body)-1], append(append([]byte(nil), w.body...), 1)} {
		_, _, err := decodeState(bad)
		require.Error(t, err)
	}
}

// snapshotWriter keeps what SaveState writes.
type snapshotWriter struct{ body []byte }

func (w *snapshotWriter) Snapshot(b []byte) error                { w.body = b; return nil }
func (w *snapshotWriter) WriteDelta(func(io.Writer) error) error { return nil }
func (w *snapshotWriter) SnapshotDue() bool                      { return false }
func (w *snapshotWriter) WriteSnapshot(func(io.Writer) error)    {}
