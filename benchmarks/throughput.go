package main

import (
	"context"
	"fmt"
	"maps"
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/kafkasource"
)

func add(a, b int64) int64 { return a + b }
func sub(a, b int64) int64 { return a - b }

// windowBatches is the windowed word count's window, in batches; it slides
// every batch.
const windowBatches = 5

// passJob counts every record of the pass-through input with Sluice.
func (h *harness) passJob(parallelism int) runner {
	n := h.cfg.records
	return func(ctx context.Context) (time.Duration, error) {
		var counted int64
		d, err := h.runSluice(ctx, sluiceJob{topic: topicPass, records: n, parallelism: parallelism,
			build: func(recs *dstream.Stream[kafkasource.Record]) {
				dstream.ForEachBatch(dstream.Count(recs), func(_ context.Context, b dstream.Batch[int64]) error {
					for x := range b.All() {
						counted += x
					}
					return nil
				})
			}})
		if err == nil && counted != int64(n) {
			err = fmt.Errorf("sluice pass-through counted %d records, want %d", counted, n)
		}
		return d, err
	}
}

// kgoPass reads every record of the pass-through input with franz-go's
// direct consumer and counts them.
func (h *harness) kgoPass() runner {
	return func(ctx context.Context) (time.Duration, error) {
		return h.runKgo(ctx, topicPass, h.cfg.records, func(kgo.Fetches) {})
	}
}

func (h *harness) pass(ctx context.Context) error {
	rates, err := h.compare(ctx, h.cfg.records, h.passJob(h.cfg.parallelism), h.kgoPass())
	if err != nil {
		return err
	}
	h.passRate = rates[0]
	r := h.throughput("pass", "pass-through ÷ franz-go consumer", fmt.Sprintf("pass-through count, %s records, %d partitions", thousands(h.cfg.records), h.cfg.partitions),
		rates[0], rates[1], "franz-go direct consumer")
	r.ratioGoal("≥ 0.8× raw", 0.8)
	h.add(r)
	return nil
}

// wordPairs is the classic word count's front: the lines split into words
// (FlatMap with strings.Fields, as the plain loop splits them), each word
// paired with 1 (Map, fused with the FlatMap).
func wordPairs(recs *dstream.Stream[kafkasource.Record]) *dstream.Stream[dstream.KV[string, int64]] {
	words := dstream.FlatMap(recs, func(r kafkasource.Record) []string { return strings.Fields(string(r.Value)) })
	return dstream.Map(words, func(w string) dstream.KV[string, int64] { return dstream.Pair(w, int64(1)) })
}

// wordCountJob counts the words of the lines input with Sluice (FlatMap →
// Map → ReduceByKey) into totals, which it clears first.
func (h *harness) wordCountJob(parallelism int, totals map[string]int64) runner {
	return func(ctx context.Context) (time.Duration, error) {
		clear(totals)
		return h.runSluice(ctx, sluiceJob{topic: topicLines, records: h.cfg.lines, parallelism: parallelism,
			build: countWordsInto(totals)})
	}
}

// countWordsInto builds the word count (FlatMap → Map → ReduceByKey) of the
// lines recs, adding each batch's counts to totals.
func countWordsInto(totals map[string]int64) func(*dstream.Stream[kafkasource.Record]) {
	return func(recs *dstream.Stream[kafkasource.Record]) {
		counts := dstream.ReduceByKey(wordPairs(recs), add)
		dstream.ForEachBatch(counts, func(_ context.Context, b dstream.Batch[dstream.KV[string, int64]]) error {
			for kv := range b.All() {
				totals[kv.Key] += kv.Value
			}
			return nil
		})
	}
}

// plainWordCount counts the words of the lines input in a plain loop over
// franz-go's consumer, as most Go code would: strings.Fields and m[word]++.
func (h *harness) plainWordCount(totals map[string]int64) runner {
	return h.plainWordCountOf(topicLines, h.cfg.lines, totals)
}

// plainWordCountOf is plainWordCount over the n lines of topic.
func (h *harness) plainWordCountOf(topic string, n int, totals map[string]int64) runner {
	return func(ctx context.Context) (time.Duration, error) {
		clear(totals)
		return h.runKgo(ctx, topic, n, func(fs kgo.Fetches) {
			fs.EachRecord(func(r *kgo.Record) {
				for _, w := range strings.Fields(string(r.Value)) {
					totals[w]++
				}
			})
		})
	}
}

// wordIndex counts words without allocating for words it has seen: a
// lookup m[string(b)] does not copy b.
type wordIndex struct {
	idx    map[string]int32
	counts []int64
}

func (wi *wordIndex) add(w []byte) {
	if i, ok := wi.idx[string(w)]; ok {
		wi.counts[i]++
		return
	}
	wi.idx[string(w)] = int32(len(wi.counts))
	wi.counts = append(wi.counts, 1)
}

func (wi *wordIndex) totals() map[string]int64 {
	m := make(map[string]int64, len(wi.idx))
	for w, i := range wi.idx {
		m[w] = wi.counts[i]
	}
	return m
}

// addWords splits line at ASCII white space and counts its words.
func (wi *wordIndex) addWords(line []byte) {
	for i := 0; i < len(line); {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		j := i
		for j < len(line) && !isSpace(line[j]) {
			j++
		}
		if j > i {
			wi.add(line[i:j])
		}
		i = j
	}
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\v' || b == '\f'
}

// noAllocWordCount is the word count loop tuned not to allocate per word.
func (h *harness) noAllocWordCount(out map[string]int64) runner {
	return func(ctx context.Context) (time.Duration, error) {
		wi := &wordIndex{idx: make(map[string]int32)}
		d, err := h.runKgo(ctx, topicLines, h.cfg.lines, func(fs kgo.Fetches) {
			fs.EachRecord(func(r *kgo.Record) { wi.addWords(r.Value) })
		})
		clear(out)
		maps.Copy(out, wi.totals())
		return d, err
	}
}

func (h *harness) wordCount(ctx context.Context) error {
	sl, plain, tuned := map[string]int64{}, map[string]int64{}, map[string]int64{}
	rates, err := h.compare(ctx, h.cfg.lines, h.wordCountJob(h.cfg.parallelism, sl), h.plainWordCount(plain), h.noAllocWordCount(tuned))
	if err != nil {
		return err
	}
	if !maps.Equal(sl, plain) || !maps.Equal(plain, tuned) {
		return fmt.Errorf("word counts differ: sluice %d words, plain loop %d, non-allocating loop %d", len(sl), len(plain), len(tuned))
	}
	fig := fmt.Sprintf("word count, %s lines of %d words, parallelism %d", thousands(h.cfg.lines), wordsPerLine, h.cfg.parallelism)
	r := h.throughput("wordcount", "word count ÷ plain loop", fig, rates[0], rates[1], "plain loop (strings.Fields, m[w]++)")
	r.ratioGoal("≥ 1.0× plain loop", 1.0)
	h.add(r)
	r = h.throughput("wordcount", "word count ÷ non-allocating loop", fig, rates[0], rates[2], "non-allocating loop (m[string(b)])")
	r.ratioGoal("≥ 0.6× non-allocating loop", 0.6)
	h.add(r)
	return nil
}

// windowJob is the windowed word count: counts over the last windowBatches
// batches, sliding every batch, with an inverse function. last receives the
// last window.
func (h *harness) windowJob(checkpoint bool, last map[string]int64) runner {
	w := windowBatches * h.cfg.batch
	return func(ctx context.Context) (time.Duration, error) {
		return h.runSluice(ctx, sluiceJob{topic: topicLines, records: h.cfg.lines, parallelism: h.cfg.parallelism, checkpoint: checkpoint,
			build: func(recs *dstream.Stream[kafkasource.Record]) {
				words := wordPairs(recs)
				counts := dstream.ReduceByKeyAndWindowInv(words, add, sub, w, h.cfg.batch,
					func(kv dstream.KV[string, int64]) bool { return kv.Value > 0 })
				dstream.ForEachBatch(counts, func(_ context.Context, b dstream.Batch[dstream.KV[string, int64]]) error {
					clear(last)
					for kv := range b.All() {
						last[kv.Key] = kv.Value
					}
					return nil
				})
			}})
	}
}

func (h *harness) window(ctx context.Context) error {
	modes := h.cfg.checkpointModes()
	lasts := make([]map[string]int64, len(modes))
	runs := make([]runner, 0, len(modes)+1)
	for i, ck := range modes {
		lasts[i] = map[string]int64{}
		runs = append(runs, h.windowJob(ck, lasts[i]))
	}
	runs = append(runs, h.plainWordCount(map[string]int64{}))
	rates, err := h.compare(ctx, h.cfg.lines, runs...)
	if err != nil {
		return err
	}
	if len(lasts[0]) == 0 || (len(lasts) == 2 && !maps.Equal(lasts[0], lasts[1])) {
		return fmt.Errorf("the last windows are empty or differ with checkpoints on and off (%d and %d words)", len(lasts[0]), len(lasts[len(lasts)-1]))
	}
	plain := rates[len(rates)-1]
	for i, ck := range modes {
		fig := fmt.Sprintf("windowed word count (ReduceByKeyAndWindowInv, %d-batch window), checkpoints %s", windowBatches, onOff(ck))
		r := h.throughput("window", "windowed word count, checkpoints "+onOff(ck)+" ÷ plain loop", fig, rates[i], plain, "plain word count loop")
		if ck && i > 0 {
			r = h.throughput("window", "windowed word count, checkpoints on ÷ off", fig, rates[i], rates[0], "Sluice, checkpoints off")
		}
		h.add(r)
	}
	return nil
}

// parseBehavior parses pageID|clicks|stay|like and returns the page and its
// popularity contribution, 0.8·clicks + 0.8·stay + like.
func parseBehavior(line string) (page string, contribution float64, ok bool) {
	f := strings.Split(line, "|")
	if len(f) != 4 || f[0] == "" {
		return "", 0, false
	}
	var v [3]float64
	for i := range v {
		x, err := strconv.ParseFloat(f[i+1], 64)
		if err != nil {
			return "", 0, false
		}
		v[i] = x
	}
	return f[0], 0.8*v[0] + 0.8*v[1] + v[2], true
}

// behaviorPairs is page popularity's FlatMap function: one (page,
// contribution) pair, or none for a malformed record.
func behaviorPairs(r kafkasource.Record) []dstream.KV[string, float64] {
	page, c, ok := parseBehavior(string(r.Value))
	if !ok {
		return nil
	}
	return []dstream.KV[string, float64]{dstream.Pair(page, c)}
}

func accumulate(contributions []float64, total float64, _ bool) (float64, bool) {
	for _, c := range contributions {
		total += c
	}
	return total, true
}

// pagePopularityJob keeps every page's popularity with UpdateStateByKey;
// last receives the states after the last batch.
func (h *harness) pagePopularityJob(checkpoint bool, last map[string]float64) runner {
	return func(ctx context.Context) (time.Duration, error) {
		return h.runSluice(ctx, sluiceJob{topic: topicBehavior, records: h.cfg.behaviors, parallelism: h.cfg.parallelism, checkpoint: checkpoint,
			build: func(recs *dstream.Stream[kafkasource.Record]) {
				pop := dstream.UpdateStateByKey(dstream.FlatMap(recs, behaviorPairs), accumulate).Name("popularity")
				dstream.ForEachBatch(pop, func(_ context.Context, b dstream.Batch[dstream.KV[string, float64]]) error {
					clear(last)
					for kv := range b.All() {
						last[kv.Key] = kv.Value
					}
					return nil
				})
			}})
	}
}

// plainPagePopularity sums the contributions in a plain loop over franz-go's
// consumer.
func (h *harness) plainPagePopularity(totals map[string]float64) runner {
	return func(ctx context.Context) (time.Duration, error) {
		clear(totals)
		return h.runKgo(ctx, topicBehavior, h.cfg.behaviors, func(fs kgo.Fetches) {
			fs.EachRecord(func(r *kgo.Record) {
				if page, c, ok := parseBehavior(string(r.Value)); ok {
					totals[page] += c
				}
			})
		})
	}
}

func (h *harness) pagePopularity(ctx context.Context) error {
	modes := h.cfg.checkpointModes()
	lasts := make([]map[string]float64, len(modes))
	runs := make([]runner, 0, len(modes)+1)
	for i, ck := range modes {
		lasts[i] = map[string]float64{}
		runs = append(runs, h.pagePopularityJob(ck, lasts[i]))
	}
	plain := map[string]float64{}
	runs = append(runs, h.plainPagePopularity(plain))
	rates, err := h.compare(ctx, h.cfg.behaviors, runs...)
	if err != nil {
		return err
	}
	for _, last := range lasts {
		if !sameFloats(last, plain) {
			return fmt.Errorf("page popularity differs between Sluice (%d pages) and the plain loop (%d pages)", len(last), len(plain))
		}
	}
	for i, ck := range modes {
		fig := fmt.Sprintf("page popularity (UpdateStateByKey, %s records), checkpoints %s", thousands(h.cfg.behaviors), onOff(ck))
		r := h.throughput("pagepop", "page popularity, checkpoints "+onOff(ck)+" ÷ plain loop", fig, rates[i], rates[len(rates)-1], "plain loop (m[page] += c)")
		if ck && i > 0 {
			r = h.throughput("pagepop", "page popularity, checkpoints on ÷ off", fig, rates[i], rates[0], "Sluice, checkpoints off")
		}
		h.add(r)
	}
	return nil
}

// sameFloats reports whether a and b hold the same keys with values equal
// up to the rounding of summing in another order.
func sameFloats(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || math.Abs(x-y) > 1e-9*math.Max(1, math.Abs(y)) {
			return false
		}
	}
	return true
}

// scaling measures pass-through and word count with parallelism and
// GOMAXPROCS 1, then 2, each beside its baseline at the same GOMAXPROCS.
// Every repetition runs all settings in turn, so that they share the
// machine's load alike.
func (h *harness) scaling(ctx context.Context) error {
	procs := []int{1, 2}
	// pass[i] and wc[i] hold the rates of Sluice and of its baseline at
	// procs[i].
	pass := make([][][]float64, len(procs))
	wc := make([][][]float64, len(procs))
	for i := range procs {
		pass[i], wc[i] = make([][]float64, 2), make([][]float64, 2)
	}
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	for range h.cfg.repeat {
		for i, p := range procs {
			runtime.GOMAXPROCS(p)
			if err := rateOnce(ctx, h.cfg.records, pass[i], []runner{h.passJob(p), h.kgoPass()}); err != nil {
				return err
			}
			if err := rateOnce(ctx, h.cfg.lines, wc[i], []runner{h.wordCountJob(p, map[string]int64{}), h.plainWordCount(map[string]int64{})}); err != nil {
				return err
			}
		}
	}
	runtime.GOMAXPROCS(prev)
	type pair struct{ sluice, base float64 }
	passMed, wcMed := make([]pair, len(procs)), make([]pair, len(procs))
	for i, p := range procs {
		m := medians(pass[i])
		passMed[i] = pair{m[0], m[1]}
		h.add(h.throughput("scaling", fmt.Sprintf("pass-through, %s ÷ franz-go", cores(p)), fmt.Sprintf("pass-through, parallelism and GOMAXPROCS %d", p), m[0], m[1], "franz-go direct consumer"))
		m = medians(wc[i])
		wcMed[i] = pair{m[0], m[1]}
		h.add(h.throughput("scaling", fmt.Sprintf("word count, %s ÷ plain loop", cores(p)), fmt.Sprintf("word count, parallelism and GOMAXPROCS %d", p), m[0], m[1], "plain loop (strings.Fields, m[w]++)"))
	}
	last := len(procs) - 1
	h.add(h.speedup("pass-through speed-up ÷ franz-go's", fmt.Sprintf("pass-through speed-up, %d → %d cores", procs[0], procs[last]), passMed[last].sluice/passMed[0].sluice, passMed[last].base/passMed[0].base, "franz-go direct consumer"))
	h.add(h.speedup("word count speed-up ÷ plain loop's", fmt.Sprintf("word count speed-up, %d → %d cores", procs[0], procs[last]), wcMed[last].sluice/wcMed[0].sluice, wcMed[last].base/wcMed[0].base, "plain loop"))
	return nil
}

func cores(n int) string {
	if n == 1 {
		return "1 core"
	}
	return strconv.Itoa(n) + " cores"
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// thousands formats n with commas: 5,000,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
