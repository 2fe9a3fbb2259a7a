// Package exampleutil is the plumbing the example jobs share: their flags,
// the embedded broker or the connection to a real cluster, the built-in
// record generator, the batch line with per-batch counts of malformed
// records, graceful stops (Ctrl-C, --duration, --stop-when-idle) and the
// --save JSON lines writer.
//
// An example is a [Spec] (its name, default topic, window and generator) and
// a build function that turns [Job].Records into results and registers the
// output operations that print and save them; [Main] does the rest.
//
// # Output
//
// Every batch prints one line when it has committed:
//
//	batch 15:04:06.000: 120 records, 2 malformed (first words[1]@17: not UTF-8 text), took 3ms
//
// Results print from output operations before it. With --save each batch's
// results are also written, atomically, to PREFIX-<batch ms>.jsonl; a batch
// re-run after a crash rewrites the same file with the same content.
//
// A result row that cannot be encoded as JSON (a [Fixed] that is not
// finite, a MarshalJSON that fails) never fails a batch: it is counted in
// the batch line, named by its key ([Keyed]) in one warning, and skipped,
// or with --dead-letter FILE appended to that file as a [DeadLetter] line
// before the batch commits (a batch re-run after a crash may append its
// lines again).
//
// # Several processes
//
// --member NAME runs the job as one member of --group (kafkasource.AsMember)
// against --brokers of a broker every member shares: the members split the
// topic's partitions, and a member that stops or dies hands its tasks and
// their state to the others; records re-keyed by another key than the
// input's go through the job's repartition topics. Offsets then live in the
// group and --checkpoint names the member's local state dir; --sink takes only
// kafka:TOPIC, whose records join the member's transaction;
// --session-timeout says how long the group waits for a silent member.
//
// # Secured clusters
//
// --tls, --tls-ca, --tls-cert with --tls-key, --tls-insecure-skip-verify
// (unsafe, for tests), --sasl-mechanism and --sasl-user build the TLS and
// SASL options ([Security].ClientOpts) of every Kafka client of the job: the
// source, the generator, the cluster check and the kafka sink. The SASL
// password comes from the environment variable SLUICE_SASL_PASSWORD
// ([PasswordEnv]), never from a flag.
package exampleutil
