// Package copart assigns the partitions of co-partitioned Kafka topics to the
// members of a consumer group: partition p of every topic the group reads
// goes to the same member.
//
// # Tasks
//
// A job whose input topics have n partitions each has n tasks; task p is
// partition p of every input topic. Records with the same key, written with
// the same partitioner, land in the same partition number of every topic, so
// a member that owns task p sees all the records of the keys of task p, and
// keyed state can be held per task. [Balancer] hands out whole tasks, never a
// partition of one topic without the same partition of the others.
//
// # Balance
//
// [Balancer] is a franz-go group balancer (pass it to kgo.Balancers). The
// member that leads the group plans:
//
//   - Every member must subscribe to the same topics, and those topics must
//     have the same number of partitions; otherwise balancing fails with an
//     error naming them ([ErrMixedSubscriptions], [*UnequalPartitionsError])
//     and the group assigns nothing until the topics are fixed.
//   - Each member gets ⌊n/m⌋ or ⌈n/m⌉ of the n tasks (m members).
//   - Sticky: a member keeps the tasks it owned, as far as its share allows.
//     Ownership comes from the partitions each member says it owns when it
//     joins, with the generation it owned them at; when two members claim a
//     task, the one of the later generation keeps it (KIP-792). Tasks that
//     nobody keeps go, lowest first, to the members below their share, in
//     member order.
//   - Deterministic: the same members with the same claims and partition
//     counts get the same plan, whatever order they joined in.
//
// # Cooperative rebalancing
//
// The balancer is cooperative (KIP-429): members keep working on the tasks
// they keep while the group rebalances. A task that moves from one member to
// another is first revoked from its owner and assigned to the new one in the
// rebalance that follows, once the owner has given it up, so no task is ever
// owned by two members at once. List [Balancer] as the group's only
// balancer: given another one every member supports, Kafka may choose it, and
// no other balancer keeps topics co-partitioned.
package copart
