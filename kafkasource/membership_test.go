package kafkasource

import (
	"testing"

	"github.com/stretchr/testify/require"
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
