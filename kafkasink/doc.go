// Package kafkasink writes the batches of a stream to Kafka: exactly once,
// in one Kafka transaction per batch, with [WriteTxn], or at least once,
// with an idempotent producer, with [WriteTo].
//
// [WriteTxn] registers the output on a stream, with an encode function
// that sets each record's topic, partition, key, headers and timestamp and
// a dead-letter topic for the elements it rejects; [Txn] is the
// transactional writer under it. Readers use read_committed isolation.
//
// [WriteTo] writes a stream to one topic with the batch time in a header,
// every record acknowledged before the batch counts as done; a batch re-run
// after a crash writes its records again. Records that fail to encode are
// counted and skipped, or sent to a dead-letter topic, with either writer.
//
// Both report their counters ([Sink.Stats]) and, through the output's
// node, metrics a job's status page exports: sluice_sink_records_total,
// sluice_sink_batches_total, sluice_sink_failures_total,
// sluice_sink_dead_letters_total, sluice_sink_skipped_batches_total and the
// histogram sluice_sink_write_seconds, labelled with the sink's name.
//
// With Config.Logger set ([WriteTxn], [WriteTo], [OpenTxn]), a broker
// outage while a sink writes logs one WARN when the producer's first
// request or connection fails (the producer retries them, each retry at
// DEBUG) and one INFO, with the outage's duration, when a write succeeds
// again, as the source's outages do.
//
// # Commit marker
//
// Every transaction holds, beside the batch's records, one marker record on
// the compacted topic __sluice-<job>-<sink>-commits: its key names the job
// and the sink, its value is the batch time in Unix milliseconds. The
// marker commits or aborts with the records, so a reader of the marker
// topic with read_committed isolation sees a batch's marker exactly when
// its records are visible. A marker topic, rather than a transactional
// offset commit to a consumer group, needs no group coordinator state and
// can be read with any client (kcat included); compaction keeps it to one
// record per key.
//
// When a writer opens it reads the newest committed marker; a batch no
// newer than it, re-run after a crash between the sink's commit and the
// checkpoint's, writes nothing.
//
// # Fencing
//
// The transactional ID is sluice-<job>-<sink>, so a restarted job fences
// its predecessor: the broker bumps the producer epoch, and the older
// producer's commit fails with [ErrFenced].
//
// # Job name
//
// A transactional writer needs the job's name, set with
// engine.WithJobName: without it two jobs could share a transactional ID
// and fence each other, so [NewTxn] refuses an empty job name.
package kafkasink
