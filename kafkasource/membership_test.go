package kafkasource

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
)

func TestMembershipOf(t *testing.T) {
	b := startBroker(t, map[string]int32{"clicks": 2})
	single := b.stream(t, newEngine(t), []string{"clicks"}, WithGroup("g"))
	_, ok := MembershipOf(single.Node())
	require.False(t, ok, "a stream in single-process mode is no member")

	member := b.stream(t, newEngine(t), []string{"clicks"}, WithGroup("g"), AsMember("a"))
	m, ok := MembershipOf(member.Node())
	require.True(t, ok)
	require.Equal(t, Membership{Group: "g", Member: "a"}, m)
}

// TestGroupModeRefusedSessionTimeout checks that a member whose session
// timeout the broker refuses (below its group.min.session.timeout.ms, 6s
// by default) fails its next batch with ErrSessionTimeout instead of
// trying to join for ever.
func TestGroupModeRefusedSessionTimeout(t *testing.T) {
	b := startBroker(t, map[string]int32{"clicks": 2})
	c := newEngine(t)
	s := b.stream(t, c, []string{"clicks"}, WithGroup("g"), AsMember("a"), WithMemberOptions(kgo.SessionTimeout(time.Second), kgo.HeartbeatInterval(300*time.Millisecond)))
	dstream.ForEachBatch(s, func(context.Context, dstream.Batch[Record]) error { return nil })
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for err == nil {
		require.True(t, time.Now().Before(deadline), "no batch failed within 30s")
		err = c.RunBatches(t.Context(), 1)
	}
	require.ErrorIs(t, err, ErrSessionTimeout)
	require.ErrorContains(t, err, `group "g": the broker refuses the member's session timeout, which must lie within its group.min.session.timeout.ms and group.max.session.timeout.ms; give one within them with WithMemberOptions(kgo.SessionTimeout(d))`)
}
