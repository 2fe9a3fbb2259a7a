// Package status makes a running job visible: Prometheus metrics, a JSON
// API of recent batches and Kafka lag, and Go's profiler, served by one
// [http.Handler] a job mounts in one line:
//
//	h, err := status.New(c)
//	…
//	go http.ListenAndServe("127.0.0.1:4040", h)
//
// The handler listens to the context's batch events ([engine.Listener]). A
// batch only appends to a bounded history under a short lock and updates
// counters; requests copy what they need and write it outside that lock, so a
// slow client, or one that never reads, does not slow a batch.
//
// # Paths
//
//   - /: a live page like Spark's Streaming tab, embedded in the binary (it
//     loads nothing from the network): charts of input rate, scheduling
//     delay, processing time and total delay over the last 100 batches with
//     their averages, the batches newest first (failed ones marked, with
//     their offset ranges), the lag per partition, the tasks this process
//     owns when the job runs on several (with their restore progress) and
//     the operator graph.
//     It polls the JSON API below.
//   - /metrics: the Prometheus text format. Batches by outcome, input
//     records, histograms of processing time, scheduling delay, total delay
//     and checkpoint write time, the time of the last completed batch and,
//     with a checkpoint, of the last committed one, the checkpoint's commits,
//     bytes written and state bytes per operator, per partition committed
//     offset, end offset and lag, the tasks this process owns and restores
//     when the job runs on several (sluice_owned_tasks,
//     sluice_restoring_tasks, and per task sluice_task_restored_records of
//     sluice_task_restore_records), the counters given with [WithCounter], and
//     every metric of a
//     node implementing [engine.MetricsReporter], prefixed "sluice_" and
//     labelled with the node's name as "operator": among them the sinks'
//     (packages kafkasink and sqlsink) sluice_sink_records_total,
//     sluice_sink_batches_total, sluice_sink_failures_total,
//     sluice_sink_dead_letters_total, sluice_sink_skipped_batches_total and
//     the histogram sluice_sink_write_seconds, labelled with the sink's
//     name as "sink".
//   - /api/job: the job's name, batch interval, start time (when its
//     context started), zero time of batch times, checkpoint dir and
//     operators with their kinds.
//   - /api/batches?n=N: the last N batches (default and most: the history
//     size, 1,000 unless [WithHistory] says otherwise), newest first, with
//     their delays (scheduling, processing and its breakdown into
//     planning, reading, computing, output and checkpoint), outcome and Kafka offset ranges.
//   - /api/lag: per Kafka partition, the committed offset (the next to read
//     as of the last committed batch), the end offset (last stable offset)
//     the brokers gave when the last batch was planned, and their
//     difference, as the source knows them ([kafkasource.ProgressOf]).
//   - /api/tasks: for a job running on several processes (a source that is
//     an [engine.TaskReporter] and [engine.Distributed], as a Kafka source
//     in group mode), per such source its consumer group and member name
//     ([kafkasource.MembershipOf]) and the tasks this process owns, each
//     with whether its state is being restored and how many state records
//     the restore has read of how many; an empty list otherwise.
//   - /debug/pprof/: Go's profiler (net/http/pprof).
//
// Other paths answer 404; bad query parameters 400 with a sentence saying
// what is wrong. No request changes the job.
package status
