// Sluice-broker runs Sluice's embedded Kafka broker stand-alone, so that
// examples, kcat and other Kafka clients can share one broker.
//
// Usage:
//
//	sluice-broker [--listen host:port] [--topic name:partitions]... [--data-dir dir]
//
// It listens on --listen (default 127.0.0.1:9092; port 0 picks a free port),
// creates each --topic unless it exists with that partition count, and with
// --data-dir keeps its topics and records on disk for the next start. Once
// ready it prints one line on standard output:
//
//	sluice-broker listening on 127.0.0.1:9092; topics: words:8; data dir: /var/lib/sluice
//
// SIGINT or SIGTERM stops it; it saves its data dir before it exits with
// status 0. A bad flag is told in one sentence on standard error, with exit
// status 2; a broker that cannot start or save exits with status 1.
package main
