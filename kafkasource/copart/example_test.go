package copart_test

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/kafkasource/copart"
)

// Plan the tasks of two topics with three partitions each for two members,
// as the group's leader does: each member gets the same partitions of both
// topics.
func ExampleBalancer() {
	b := copart.Balancer()
	var members []kmsg.JoinGroupResponseMember
	for _, id := range []string{"member-a", "member-b"} {
		m := kmsg.NewJoinGroupResponseMember()
		m.MemberID = id
		m.ProtocolMetadata = b.JoinGroupMetadata([]string{"clicks", "views"}, nil, -1)
		members = append(members, m)
	}
	mb, _, err := b.MemberBalancer(members)
	if err != nil {
		panic(err)
	}
	plan, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(map[string]int32{"clicks": 3, "views": 3})
	if err != nil {
		panic(err)
	}
	for _, a := range plan.IntoSyncAssignment() {
		assigned, err := b.ParseSyncAssignment(a.MemberAssignment)
		if err != nil {
			panic(err)
		}
		fmt.Println(a.MemberID, "clicks", assigned["clicks"], "views", assigned["views"])
	}

	// A client uses it as its group's only balancer.
	_ = []kgo.Opt{kgo.ConsumerGroup("pagepopularity"), kgo.ConsumeTopics("clicks", "views"), kgo.Balancers(b)}
	// Output:
	// member-a clicks [0 1] views [0 1]
	// member-b clicks [2] views [2]
}
