package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Input topics. Each holds its records spread round-robin over the
// configured partitions; latency runs produce into topics of their own.
const (
	topicPass     = "pass"
	topicLines    = "lines"
	topicLarge    = "lines-large" // the batchcost workload's large word count input
	topicBehavior = "behavior"
	topicEmpty    = "empty"
)

// Shapes of the generated input.
const (
	vocabularySize = 10_000 // distinct words of the word count lines
	wordsPerLine   = 8
	pageCount      = 10_000 // distinct pages of the page popularity records
	zipfS          = 1.1    // Zipf exponent of words and pages
)

// producer returns a client that produces to explicit partitions.
func (h *harness) producer(opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{
		kgo.SeedBrokers(h.broker.Addrs()...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(200_000),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("producer client: %w", err)
	}
	return cl, nil
}

// produce writes n records made by gen to topic, record i to partition
// i mod partitions, and waits until the broker has them all.
func (h *harness) produce(ctx context.Context, topic string, n int, gen func(i int) (key, value []byte)) error {
	cl, err := h.producer()
	if err != nil {
		return err
	}
	defer cl.Close()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	parts := int32(h.cfg.partitions)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		k, v := gen(i)
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(i) % parts, Key: k, Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("producing %s: %w", topic, first)
	}
	return ctx.Err()
}

// load creates the topics the chosen workloads read and fills them.
func (h *harness) load(ctx context.Context) error {
	cfg := &h.cfg
	needPass := cfg.has("pass") || cfg.has("scaling") || (cfg.has("latency") && cfg.latencyRate == 0)
	needLines := cfg.has("wordcount") || cfg.has("batchcost") || cfg.has("window") || cfg.has("scaling")
	if needPass {
		start := time.Now()
		if err := h.loadTopic(ctx, topicPass, cfg.records, passRecord); err != nil {
			return err
		}
		h.produceRate = float64(cfg.records) / time.Since(start).Seconds()
		h.logf("loaded %d records into %s at %s", cfg.records, topicPass, fmtRate(h.produceRate))
	}
	if needLines {
		gen := newLineGen()
		if err := h.loadTopic(ctx, topicLines, cfg.lines, gen.next); err != nil {
			return err
		}
		h.logf("loaded %d lines into %s", cfg.lines, topicLines)
	}
	if cfg.has("batchcost") && cfg.largeLines > 0 {
		gen := newLineGen()
		if err := h.loadTopic(ctx, topicLarge, cfg.largeLines, gen.next); err != nil {
			return err
		}
		h.logf("loaded %d lines into %s", cfg.largeLines, topicLarge)
	}
	if cfg.has("pagepop") {
		gen := newBehaviorGen()
		if err := h.loadTopic(ctx, topicBehavior, cfg.behaviors, gen.next); err != nil {
			return err
		}
		h.logf("loaded %d behaviors into %s", cfg.behaviors, topicBehavior)
	}
	if cfg.has("scaleout") {
		if err := h.loadScaleOut(ctx); err != nil {
			return err
		}
	}
	if cfg.has("wordcount-scaleout") {
		if err := h.loadScaleLines(ctx); err != nil {
			return err
		}
	}
	if cfg.has("overhead") {
		if err := h.broker.CreateTopic(ctx, topicEmpty, int32(cfg.partitions)); err != nil {
			return err
		}
	}
	return nil
}

func (h *harness) loadTopic(ctx context.Context, topic string, n int, gen func(int) ([]byte, []byte)) error {
	if err := h.broker.CreateTopic(ctx, topic, int32(h.cfg.partitions)); err != nil {
		return err
	}
	return h.produce(ctx, topic, n, gen)
}

// passRecord is record i of the pass-through input: a 13-byte key and a
// 48-byte value.
func passRecord(i int) (key, value []byte) {
	key = strconv.AppendInt(append(make([]byte, 0, 16), "key-"...), int64(i), 10)
	value = strconv.AppendInt(append(make([]byte, 0, 64), "value-"...), int64(i), 10)
	value = append(value, "-payload-payload-payload-payload"...)
	return key, value
}

// lineGen makes lines of wordsPerLine words drawn with Zipf frequencies
// from a vocabulary of vocabularySize made-up words, deterministically.
type lineGen struct {
	vocab []string
	zipf  *rand.Zipf
}

func newLineGen() *lineGen {
	r := rand.New(rand.NewPCG(1, 2))
	return &lineGen{vocab: vocabulary(r, vocabularySize), zipf: rand.NewZipf(r, zipfS, 1, vocabularySize-1)}
}

func (g *lineGen) next(int) (key, value []byte) {
	b := make([]byte, 0, 64)
	for w := range wordsPerLine {
		if w > 0 {
			b = append(b, ' ')
		}
		b = append(b, g.vocab[g.zipf.Uint64()]...)
	}
	return nil, b
}

// vocabulary returns n distinct pronounceable words of 2 to 4 syllables.
func vocabulary(r *rand.Rand, n int) []string {
	const consonants, vowels = "bcdfghjklmnprstvz", "aeiou"
	seen := make(map[string]bool, n)
	words := make([]string, 0, n)
	for len(words) < n {
		var b []byte
		for range 2 + r.IntN(3) {
			b = append(b, consonants[r.IntN(len(consonants))], vowels[r.IntN(len(vowels))])
		}
		if w := string(b); !seen[w] {
			seen[w] = true
			words = append(words, w)
		}
	}
	return words
}

// behaviorGen makes pageID|clicks|stay|like records: Zipf-distributed
// pages, 0–9 clicks, a stay of 0.0–30.0 minutes and a like of -1, 0 or 1.
type behaviorGen struct {
	r    *rand.Rand
	zipf *rand.Zipf
}

func newBehaviorGen() *behaviorGen {
	r := rand.New(rand.NewPCG(3, 4))
	return &behaviorGen{r: r, zipf: rand.NewZipf(r, zipfS, 1, pageCount-1)}
}

func (g *behaviorGen) next(int) (key, value []byte) {
	var page uint64
	if g.zipf != nil {
		page = g.zipf.Uint64()
	} else {
		page = g.r.Uint64N(pageCount)
	}
	b := make([]byte, 0, 32)
	b = fmt.Appendf(b, "page-%05d|%d|%d.%d|%d", page, g.r.IntN(10), g.r.IntN(30), g.r.IntN(10), g.r.IntN(3)-1)
	return nil, b
}

// newUniformBehaviorGen makes records of pages drawn uniformly instead.
func newUniformBehaviorGen() *behaviorGen {
	return &behaviorGen{r: rand.New(rand.NewPCG(5, 6))}
}

// errShortRead reports a job that stopped reading before the end of its
// input.
var errShortRead = errors.New("benchmarks: the job stopped reading before the end of its input")
