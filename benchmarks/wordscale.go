package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/kafkasource"
)

// The word count scale-out workload: the word count of lines, re-keyed by
// word, as processes of its own (see memberEnv). Its lines are not keyed
// by word, so in group mode the pairs go through the repartition topic
// <group>-words-repartition: each member writes its batch's counts, combined
// per word, to the task that owns the word, and the member owning that task
// adds them up in a later batch.

// topicScaleLines is the word count scale-out workload's input: lines of
// wordsPerLine words, round-robin over the partitions.
const topicScaleLines = "lines-scaleout"

// Counters the Kafka source reports of its repartition topics.
const (
	metricRepartitionBytes   = "kafka_repartition_bytes_written_total"
	metricRepartitionRecords = "kafka_repartition_records_written_total"
)

// lineTruth is what counting the words of an input of lines must come to,
// computed from the lines as they were produced.
type lineTruth struct {
	lines    int
	words    int64
	distinct int
	print    uint64 // fingerprint of the counts (see wordPrint)
	bytes    int64  // the lines' own bytes (record values)
	seen     map[string]bool
}

// wrap returns gen, noting every line it makes in t.
func (t *lineTruth) wrap(gen func(int) ([]byte, []byte)) func(int) ([]byte, []byte) {
	t.seen = map[string]bool{}
	return func(i int) ([]byte, []byte) {
		k, v := gen(i)
		t.lines++
		t.bytes += int64(len(v))
		for _, w := range strings.Fields(string(v)) {
			t.words++
			t.print += wordPrint(w, 1)
			if !t.seen[w] {
				t.seen[w] = true
				t.distinct++
			}
		}
		return k, v
	}
}

// loadScaleLines fills the word count scale-out workload's input and notes
// what its word count comes to.
func (h *harness) loadScaleLines(ctx context.Context) error {
	gen := newLineGen()
	h.scaleLines = &lineTruth{}
	if err := h.loadTopic(ctx, topicScaleLines, h.cfg.scaleLines, h.scaleLines.wrap(gen.next)); err != nil {
		return err
	}
	h.logf("loaded %d lines (%d words, %d distinct) into %s", h.cfg.scaleLines, h.scaleLines.words, h.scaleLines.distinct, topicScaleLines)
	return nil
}

// wordCountScaleOut measures the word count re-keyed by word on two
// members ÷ one, and on one member in group mode ÷ the same job in
// single-process mode (checkpointed), every process with GOMAXPROCS 1; and
// the bytes of the repartition topic per input line.
func (h *harness) wordCountScaleOut(ctx context.Context) error {
	truth := h.scaleLines
	job := scaleJob{job: jobWordCount, topic: topicScaleLines, records: h.cfg.scaleLines, outputs: truth.words, group: "bench-wordscale"}
	cpu := map[int][]float64{}     // CPU seconds of each run, by members
	others := map[int][]float64{}  // cores other processes kept busy, by members
	stored := map[int][]float64{}  // bytes of the repartition topic per input line, by members
	payload := map[int][]float64{} // bytes the source wrote to it per input line
	written := map[int][]float64{} // records the source wrote to it per input line
	perLine := func(x float64) float64 { return x / float64(h.cfg.scaleLines) }
	run := func(members int) runner {
		return func(ctx context.Context) (time.Duration, error) {
			got := &jobState{}
			d, group, err := h.scaleRun(ctx, job, members, got)
			if err != nil {
				return 0, err
			}
			if got.sum != float64(truth.words) || got.print != truth.print || got.keys != truth.distinct {
				return 0, fmt.Errorf("the run with %d members (0: single-process mode) counted %g words, %d distinct, fingerprint %x (%s); the input holds %d words, %d distinct, fingerprint %x",
					members, got.sum, got.keys, got.print, strings.Join(got.members, ", "), truth.words, truth.distinct, truth.print)
			}
			cpu[members] = append(cpu[members], got.cpu.Seconds())
			others[members] = append(others[members], got.others)
			line := fmt.Sprintf("word count, %d members (0: single-process mode): %v, the members' CPU %v, the broker's process CPU %v while they read, other processes %.2f cores",
				members, d.Round(time.Millisecond), got.cpu.Round(time.Millisecond), got.broker.Round(time.Millisecond), got.others)
			if members > 0 {
				topic := kafkasource.RepartitionTopic(group, wordsExchange)
				size, err := h.topicSize(ctx, topic)
				if err != nil {
					return 0, fmt.Errorf("the size of %s: %w", topic, err)
				}
				if size == 0 {
					return 0, fmt.Errorf("the repartition topic %s is empty after a group-mode word count", topic)
				}
				stored[members] = append(stored[members], perLine(float64(size)))
				line += fmt.Sprintf("; %s holds %d bytes", topic, size)
				if b, ok := got.metrics[metricRepartitionBytes]; ok {
					payload[members] = append(payload[members], perLine(b))
					written[members] = append(written[members], perLine(got.metrics[metricRepartitionRecords]))
					line += fmt.Sprintf(", the source wrote %.0f records of %.0f bytes to it", got.metrics[metricRepartitionRecords], b)
				}
			}
			h.logf("%s", line)
			return d, nil
		}
	}
	rates, err := h.compare(ctx, h.cfg.scaleLines, run(0), run(1), run(2))
	if err != nil {
		return err
	}
	single, one, two := rates[0], rates[1], rates[2]
	size := fmt.Sprintf("%s lines of %d words", thousands(h.cfg.scaleLines), wordsPerLine)
	r := h.throughput("wordcount-scaleout", "word count, 2 members ÷ 1, GOMAXPROCS 1 each",
		fmt.Sprintf("word count re-keyed by word (repartition topic), %s, 2 members in group mode, each a process with GOMAXPROCS 1 (other processes kept %.2f of the %d cores busy meanwhile)",
			size, median(others[2]), runtime.NumCPU()), two, one, "1 member, GOMAXPROCS 1")
	r.ratioGoal("≥ 1.7×", 1.7)
	h.add(r)
	cpuTwo, cpuOne := median(cpu[2]), median(cpu[1])
	h.add(result{Workload: "wordcount-scaleout", Label: "word count, CPU time, 2 members ÷ 1", Unit: unitTimes, Better: "lower",
		Figure: fmt.Sprintf("CPU time of the 2 word count members (user and system) over the same input, %.2f s against %.2f s", cpuTwo, cpuOne),
		Sluice: cpuTwo / cpuOne})
	h.add(h.throughput("wordcount-scaleout", "word count, group mode on 1 member ÷ single-process",
		fmt.Sprintf("word count re-keyed by word, %s, group mode on 1 member (through the repartition topic), GOMAXPROCS 1", size),
		one, single, "single-process mode, checkpoints on, GOMAXPROCS 1"))
	lineBytes := float64(truth.bytes) / float64(truth.lines)
	for _, members := range []int{2, 1} {
		fig := fmt.Sprintf("bytes of the repartition topic per input line, %d member%s in group mode, %d batches: record batches as the broker holds them (kgo's default compression, transaction markers included)",
			members, plural(members), h.cfg.batches)
		if len(payload[members]) > 0 {
			fig += fmt.Sprintf("; the source wrote %.2f records and %.1f bytes of keys and values per line (%s)", median(written[members]), median(payload[members]), metricRepartitionBytes)
		} else {
			fig += fmt.Sprintf("; the source reports no %s", metricRepartitionBytes)
		}
		r := result{Workload: "wordcount-scaleout", Label: fmt.Sprintf("repartition bytes per line, %d member%s", members, plural(members)), Unit: unitBytes, Better: "lower",
			Figure: fig, Sluice: median(stored[members])}
		r.against(lineBytes, "the input line's own bytes")
		h.add(r)
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// topicSize returns the bytes the broker holds in topic's partitions.
func (h *harness) topicSize(ctx context.Context, topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.broker.Addrs()...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ts, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, err
	}
	d, ok := ts[topic]
	if !ok || d.Err != nil {
		return 0, errors.Join(errors.New("no such topic"), d.Err)
	}
	set := kadm.TopicsSet{}
	set.Add(topic, d.Partitions.Numbers()...)
	dirs, err := adm.DescribeAllLogDirs(ctx, set)
	if err != nil {
		return 0, err
	}
	var size int64
	dirs.Each(func(dir kadm.DescribedLogDir) {
		if err == nil && dir.Err != nil {
			err = dir.Err
		}
		size += dir.Topics.Size()
	})
	return size, err
}
