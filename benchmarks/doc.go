// Command benchmarks measures Sluice against plain Go baselines in one
// process and one run: it starts an embedded Kafka broker, loads the input
// once, then runs each workload and its baseline over the same records and
// prints a markdown table (figure, Sluice, baseline, ratio, target), writes
// the same as JSON and draws an SVG chart.
//
// # Workloads
//
//   - pass: a pass-through count of every record versus franz-go's direct
//     consumer (kgo.ConsumePartitions) reading the same records.
//   - wordcount: words of Zipf-distributed lines counted with FlatMap and
//     ReduceByKey versus a plain loop over the raw consumer (strings.Fields,
//     m[word]++) and a loop that does not allocate per word.
//   - batchcost: the word count with its lines cut into 10 to 1000 batches,
//     checkpoints off and on, beside the plain loop; a least-squares fit of
//     run time over batch count gives the fixed cost of a batch and the
//     per-record rate.
//   - window: a windowed word count (ReduceByKeyAndWindowInv), checkpoints
//     off and on.
//   - pagepop: page popularity (UpdateStateByKey over pageID|clicks|stay|like
//     records), checkpoints off and on, versus a plain loop.
//   - overhead: the cost of an empty batch over 8 partitions, checkpoints off
//     and on.
//   - latency: producer timestamp to output, p50 and p99, at a fixed input
//     rate on the real clock.
//   - checkpoint: checkpoint cost per batch and restore time against the
//     number of keys in state.
//   - scaling: pass-through and word count at parallelism and GOMAXPROCS 1
//     and 2.
//   - sinks: the outputs, each against a baseline writing the same records
//     in the same run, the sides taking turns batch by batch: the
//     transactional Kafka sink against the at-least-once one and a plain
//     kgo producer; the SQL sink's row-by-row upserts into SQLite and
//     PostgreSQL against plain loops (database/sql, pgx) of the same
//     upserts in one transaction a batch, and its bulk path against a
//     plain bulk loop (prepared multi-row upserts on SQLite; pgx CopyFrom
//     into a temporary table and one merge on PostgreSQL) and raw CopyFrom;
//     and the time each sink takes per batch, which is what it adds to a
//     1 s batch. PostgreSQL runs on a server the workload starts as
//     internal/pgtest does; without PostgreSQL's binaries it is skipped,
//     saying how to install them.
//   - scaleout: page popularity over records keyed by page, as processes of
//     their own with GOMAXPROCS 1 each (the benchmarks binary started
//     again): two members of the job in group mode ÷ one member, and one
//     member ÷ the same job in single-process mode, checkpointed; then the
//     failover: two members on the real clock hold -failover-keys keys per
//     task, one is killed with SIGKILL, and the time from the kill to the
//     first batch the other commits with one of its tasks is reported
//     beside the session timeout.
//   - wordcount-scaleout: the word count of -scaleout-lines lines, re-keyed
//     by word (its pairs the stream "words"), as processes of their own
//     with GOMAXPROCS 1 each: two members in group mode, where the pairs go
//     through the repartition topic <group>-words-repartition, ÷ one
//     member, and one member ÷ the same job in single-process mode,
//     checkpointed; every run must count the input's words exactly. Beside
//     them, the bytes the broker holds in the repartition topic per input
//     line, against the line's own bytes, and what the Kafka source says it
//     wrote there (kafka_repartition_bytes_written_total).
//
// Throughput workloads run on the manual clock as fast as they can: each
// batch reads at most its share of the input (the Kafka source's
// MaxRatePerPartition × batch seconds), until every record is read.
//
// # Usage
//
//	go run ./benchmarks                # full run, results/latest.json and latest.svg
//	go run ./benchmarks -quick         # under a minute, results/quick.json
//	go run ./benchmarks -workloads wordcount -cpuprofile wc.pprof
//	go run ./benchmarks -workloads batchcost -checkpoint on -trace bc.trace && go tool trace -pprof=syscall bc.trace > io.pprof
//
// Run it with -h for every flag. Targets are goals reported beside the
// figures, not assertions: a missed target does not fail the run.
package main
