package kafkasource

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/engine"
)

// TestTopicCreatedWhileDownIsReadFromItsStart stops a checkpointed job,
// creates topics its subscription covers (one by name that did not exist
// yet, one matching its regular expression) while it is down, and restarts
// it: both are read from their earliest offset, as a job that never stopped
// would have read them, although the reset policy is Latest.
func TestTopicCreatedWhileDownIsReadFromItsStart(t *testing.T) {
	cases := []struct {
		name   string
		topics []string
		opts   []Option
		later  string
	}{
		{"by name", []string{"present", "later"}, nil, "later"},
		{"by regular expression", []string{"^ev-.*"}, []Option{WithTopicRegex()}, "ev-new"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, map[string]int32{"present": 1, "ev-old": 1})
			b.produce(t, "present", 0, 0, 2)
			b.produce(t, "ev-old", 0, 0, 2)
			dir := t.TempDir()
			ctx := bounded(t)
			opts := append([]Option{WithResetPolicy(Latest)}, tc.opts...)

			c1, err := engine.NewContext(time.Second, engine.WithManualClock(unixSeconds(1000)), engine.WithCheckpoint(dir))
			require.NoError(t, err)
			watch(b.stream(t, c1, tc.topics, opts...))
			require.NoError(t, c1.RunBatches(ctx, 2))
			require.NoError(t, c1.Close())

			require.NoError(t, b.e.CreateTopic(ctx, tc.later, 1))
			b.refresh(t)
			b.produce(t, tc.later, 0, 0, 5)

			c2, err := engine.NewContext(time.Second, engine.WithManualClock(unixSeconds(1000)), engine.WithCheckpoint(dir))
			require.NoError(t, err)
			defer c2.Close()
			w := watch(b.stream(t, c2, tc.topics, opts...))
			require.NoError(t, c2.RunBatches(ctx, 1))
			var got int
			for _, r := range w.all() {
				if r.Topic == tc.later {
					got++
				}
			}
			require.Equal(t, 5, got, "every record of %s, created while the job was down", tc.later)
		})
	}
}

func TestStateDecodesVersionOne(t *testing.T) {
	b := []byte{1}
	b = binary.AppendUvarint(b, 1)
	b = binary.AppendUvarint(b, 1)
	b = append(b, 'a')
	b = binary.AppendUvarint(b, 0)
	b = binary.AppendUvarint(b, 7)
	pos, subs, err := decodeState(b)
	require.NoError(t, err)
	require.Equal(t, map[TopicPartition]int64{{"a", 0}: 7}, pos)
	require.Empty(t, subs)
}

// FuzzDecodeState feeds arbitrary bytes to the saved-positions decoder: it
// must not panic, and what it accepts must encode a subscription it can
// read back.
func FuzzDecodeState(f *testing.F) {
	n := &directNode{positions: map[TopicPartition]int64{{"a", 0}: 5}, sub: subscription{topics: []string{"a", "b"}}}
	w := &snapshotWriter{}
	if err := n.SaveState(w); err != nil {
		f.Fatal(err)
	}
	f.Add(w.body)
	f.Add([]byte{1, 0})
	f.Add([]byte{2, 0, 1, 2, 't', ':'})
	f.Fuzz(func(t *testing.T, b []byte) {
		pos, subs, err := decodeState(b)
		if err != nil {
			return
		}
		for tp, off := range pos {
			if tp.Topic == "" || off < 0 {
				t.Fatalf("accepted position %v at %d", tp, off)
			}
		}
		for _, s := range subs {
			if s == "" {
				t.Fatal("accepted an empty subscription entry")
			}
		}
	})
}

func unixSeconds(s int64) time.Time { return time.Unix(s, 0) }
