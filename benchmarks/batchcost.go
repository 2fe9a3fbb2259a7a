package main

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// batchCostResult is the least-squares fit of one checkpoint setting's run
// times over the batch counts of the sweep: time = fixed × batches +
// intercept, the intercept being the per-record part (and the job's start).
type batchCostResult struct {
	Checkpoint bool `json:"checkpoint"`
	// Points holds every timed run: the batches the input was cut into and
	// the run's milliseconds.
	Points []batchCostPoint `json:"points"`
	// FixedMS is the fit's slope, milliseconds per batch; InterceptMS its
	// intercept; R2 how well the line fits.
	FixedMS     float64 `json:"fixed_ms_per_batch"`
	InterceptMS float64 `json:"intercept_ms"`
	R2          float64 `json:"r2"`
	// Breakdown is the mean per batch of the engine's own timings at the
	// sweep's largest batch count.
	Breakdown batchBreakdown `json:"breakdown_at_most_batches"`
}

type batchCostPoint struct {
	Batches int     `json:"batches"`
	MS      float64 `json:"ms"`
}

// batchBreakdown is BatchInfo's breakdown in mean milliseconds per batch.
type batchBreakdown struct {
	Batches    int     `json:"batches"`
	Processing float64 `json:"processing_ms"`
	Planning   float64 `json:"planning_ms"`
	Reading    float64 `json:"reading_ms"`
	Computing  float64 `json:"computing_ms"`
	Output     float64 `json:"output_ms"`
	Checkpoint float64 `json:"checkpoint_ms"`
}

func (b *batchBreakdown) add(info engine.BatchInfo) {
	b.Batches++
	b.Processing += ms(info.ProcessingDelay)
	b.Planning += ms(info.PlanningDelay)
	b.Reading += ms(info.ReadingDelay)
	b.Computing += ms(info.ComputingDelay)
	b.Output += ms(info.OutputDelay)
	b.Checkpoint += ms(info.CheckpointDelay)
}

func (b batchBreakdown) mean() batchBreakdown {
	n := float64(max(b.Batches, 1))
	return batchBreakdown{Batches: b.Batches, Processing: b.Processing / n, Planning: b.Planning / n, Reading: b.Reading / n,
		Computing: b.Computing / n, Output: b.Output / n, Checkpoint: b.Checkpoint / n}
}

func (b batchBreakdown) String() string {
	return fmt.Sprintf("per batch at %d batches: planning %s, reading %s, computing %s, outputs %s, checkpoint %s of %s",
		b.Batches, fmtValue(b.Planning, unitMS), fmtValue(b.Reading, unitMS), fmtValue(b.Computing, unitMS),
		fmtValue(b.Output, unitMS), fmtValue(b.Checkpoint, unitMS), fmtValue(b.Processing, unitMS))
}

// batchCost runs the word count over the same lines cut into each batch
// count of the sweep, checkpoints off and on, beside the plain loop over
// franz-go's consumer, cfg.repeat times in turn; it fits each setting's run
// times to the batch counts and compares the checkpointed run at cfg.batches
// with the plain loop.
func (h *harness) batchCost(ctx context.Context) error {
	counts := h.cfg.sweep()
	modes := h.cfg.checkpointModes()
	n := h.cfg.lines
	plain := map[string]int64{}
	fits := make([]batchCostResult, len(modes))
	var plainMS []float64
	durable := map[bool][]float64{} // ms at cfg.batches by checkpoint setting
	for i, ck := range modes {
		fits[i].Checkpoint = ck
	}
	// One untimed run first: the first job of the process also warms the
	// broker's connections and the runtime's heap.
	if _, err := h.wordCountJob(h.cfg.parallelism, map[string]int64{})(ctx); err != nil {
		return err
	}
	for range h.cfg.repeat {
		d, err := h.plainWordCount(plain)(ctx)
		if err != nil {
			return err
		}
		plainMS = append(plainMS, ms(d))
		for i, ck := range modes {
			for _, b := range counts {
				totals := map[string]int64{}
				var bd batchBreakdown
				d, err := h.runSluice(ctx, sluiceJob{topic: topicLines, records: n, parallelism: h.cfg.parallelism, checkpoint: ck,
					batches: b, listen: bd.add, build: countWordsInto(totals)})
				if err != nil {
					return err
				}
				if !maps.Equal(totals, plain) {
					return fmt.Errorf("word count in %d batches, checkpoints %s: %d words, the plain loop %d", b, onOff(ck), len(totals), len(plain))
				}
				actual := h.batchesOf(n, b)
				if bd.Batches != actual {
					return fmt.Errorf("word count cut into %d batches ran %d", actual, bd.Batches)
				}
				fits[i].Points = append(fits[i].Points, batchCostPoint{Batches: actual, MS: ms(d)})
				if b == counts[len(counts)-1] {
					fits[i].Breakdown = bd.mean() // the last repetition's
				}
				if b == h.cfg.batches {
					durable[ck] = append(durable[ck], ms(d))
				}
			}
		}
	}
	atomicMS, err := atomicWriteMS(h.dir, 20)
	if err != nil {
		return err
	}
	plainRate := float64(n) / (median(plainMS) / 1e3)
	var offFixed float64
	for i := range fits {
		f := &fits[i]
		xs, ys := make([]float64, len(f.Points)), make([]float64, len(f.Points))
		for k, p := range f.Points {
			xs[k], ys[k] = float64(p.Batches), p.MS
		}
		f.FixedMS, f.InterceptMS, f.R2 = leastSquares(xs, ys)
		h.logf("batch cost, checkpoints %s: %s", onOff(f.Checkpoint), f.Breakdown)
		sweep := fmt.Sprintf("%d–%d batches", counts[0], h.batchesOf(n, counts[len(counts)-1]))
		fig := fmt.Sprintf("fixed cost per batch, word count of %s lines in %s, checkpoints %s (fit R² %.3f)", thousands(n), sweep, onOff(f.Checkpoint), f.R2)
		r := result{Workload: "batchcost", Label: "fixed cost per batch, checkpoints " + onOff(f.Checkpoint), Figure: fig, Unit: unitBatch, Sluice: f.FixedMS, Better: "lower"}
		if f.Checkpoint {
			r.goal("≤ 2.5 ms", f.FixedMS <= 2.5)
		} else {
			r.goal("≤ 1.5 ms", f.FixedMS <= 1.5)
			offFixed = f.FixedMS
		}
		h.add(r)
		if f.Checkpoint && len(fits) == 2 {
			r := result{Workload: "batchcost", Label: "checkpoint part of the fixed cost", Unit: unitMS, Sluice: f.FixedMS - offFixed, Better: "lower",
				Figure: "checkpoint part of the fixed cost, ms per batch (on − off)"}
			r.against(atomicMS, "one fsync'd atomic file write")
			if r.Sluice > 0 {
				h.add(r)
			}
		}
		if f.InterceptMS > 0 {
			h.add(h.throughput("batchcost", "per-record part, checkpoints "+onOff(f.Checkpoint)+" ÷ plain loop",
				fmt.Sprintf("per-record part of the fit (records ÷ intercept), checkpoints %s", onOff(f.Checkpoint)),
				float64(n)/(f.InterceptMS/1e3), plainRate, "plain loop (strings.Fields, m[w]++)"))
		}
	}
	for _, ck := range modes {
		if len(durable[ck]) == 0 {
			continue
		}
		name := "word count"
		if ck {
			name = "durable word count"
		}
		r := h.throughput("batchcost", name+" ÷ plain loop, "+fmt.Sprint(h.cfg.batches)+" batches",
			fmt.Sprintf("%s, %s lines in %d batches, checkpoints %s", name, thousands(n), h.cfg.batches, onOff(ck)),
			float64(n)/(median(durable[ck])/1e3), plainRate, "plain loop (strings.Fields, m[w]++)")
		if ck {
			r.ratioGoal("≥ 1.0× plain loop", 1.0)
		}
		h.add(r)
	}
	h.batchCosts = fits
	if h.cfg.largeLines > 0 && slices.Contains(modes, true) {
		return h.largeWordCount(ctx)
	}
	return nil
}

// largeWordCount compares the durable word count of the large input, in
// cfg.batches batches, with the plain loop over the same lines, cfg.repeat
// times in turn.
func (h *harness) largeWordCount(ctx context.Context) error {
	n := h.cfg.largeLines
	plain, totals := map[string]int64{}, map[string]int64{}
	durable := func(ctx context.Context) (time.Duration, error) {
		clear(totals)
		d, err := h.runSluice(ctx, sluiceJob{topic: topicLarge, records: n, parallelism: h.cfg.parallelism, checkpoint: true,
			build: countWordsInto(totals)})
		if err == nil && !maps.Equal(totals, plain) {
			err = fmt.Errorf("durable word count of %s lines: %d words, the plain loop %d", thousands(n), len(totals), len(plain))
		}
		return d, err
	}
	rates, err := h.compare(ctx, n, h.plainWordCountOf(topicLarge, n, plain), durable)
	if err != nil {
		return err
	}
	r := h.throughput("batchcost", fmt.Sprintf("durable word count ÷ plain loop, %d batches, %s lines", h.cfg.batches, thousands(n)),
		fmt.Sprintf("durable word count, %s lines in %d batches, checkpoints on", thousands(n), h.cfg.batches),
		rates[1], rates[0], "plain loop (strings.Fields, m[w]++)")
	r.ratioGoal("≥ 1.0× plain loop", 1.0)
	h.add(r)
	return nil
}

// batchesOf is how many batches an input of n records is read in when
// limited to the share of batches batches.
func (h *harness) batchesOf(n, batches int) int {
	perPart := (n + h.cfg.partitions - 1) / h.cfg.partitions
	perBatch := (perPart + batches - 1) / batches
	return (perPart + perBatch - 1) / perBatch
}

// leastSquares fits y = slope·x + intercept and returns both and R².
func leastSquares(xs, ys []float64) (slope, intercept, r2 float64) {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	slope = (n*sxy - sx*sy) / den
	intercept = (sy - slope*sx) / n
	mean := sy / n
	var ssRes, ssTot float64
	for i := range xs {
		e := ys[i] - (slope*xs[i] + intercept)
		ssRes += e * e
		ssTot += (ys[i] - mean) * (ys[i] - mean)
	}
	r2 = 1
	if ssTot > 0 {
		r2 = 1 - ssRes/ssTot
	}
	return slope, intercept, r2
}

// atomicWriteMS returns the median milliseconds of writing a small file
// the durable way in dir, rounds times: a temporary file written and
// fsync'd, renamed over the target, the directory fsync'd.
func atomicWriteMS(dir string, rounds int) (float64, error) {
	d, err := os.MkdirTemp(dir, "fsync-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(d)
	data := make([]byte, 256)
	times := make([]float64, rounds)
	for i := range times {
		start := time.Now()
		if err := atomicWrite(d, data); err != nil {
			return 0, err
		}
		times[i] = ms(time.Since(start))
	}
	return median(times), nil
}

func atomicWrite(dir string, data []byte) error {
	tmp := filepath.Join(dir, "file.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "file")); err != nil {
		return err
	}
	df, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer df.Close()
	return df.Sync()
}
