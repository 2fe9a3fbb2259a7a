// Sluice-broker runs Sluice's embedded Kafka broker stand-alone, so that
// examples, kcat and other Kafka clients can share one broker.
//
// Usage:
//
//	sluice-broker [--listen host:port] [--topic name:partitions]... [--data-dir dir] [--group-min-session-timeout d] [--http host:port]
//
// It listens on --listen (default 127.0.0.1:9092; port 0 picks a free port),
// creates each --topic unless it exists with that partition count, and with
// --data-dir keeps its topics and records on disk for the next start.
// --group-min-session-timeout (default 6s, as Kafka's
// group.min.session.timeout.ms) is the shortest session timeout a consumer
// group member may ask for; lower it for members that should be declared
// dead within a second. Once ready it prints one line on standard output:
//
//	sluice-broker listening on 127.0.0.1:9092; topics: words:8; data dir: /var/lib/sluice; status page: http://127.0.0.1:4040/
//
// The status page (--http, default 127.0.0.1:4040, the next free port when
// it is taken; --http "" serves none) shows each partition's start and end
// offsets and each consumer group's committed offsets and lag, and reloads
// itself; /metrics serves them to Prometheus (sluice_broker_partition_start_offset,
// sluice_broker_partition_end_offset, sluice_broker_group_committed_offset,
// sluice_broker_group_lag_records, sluice_broker_up) and /debug/pprof/ Go's
// profiler.
//
// SIGINT or SIGTERM stops it; it saves its data dir before it exits with
// status 0. A bad flag is told in one sentence on standard error, with exit
// status 2; a broker that cannot start or save exits with status 1.
package main
