package exampleutil

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultEvery is how often a generator writes when its Every is zero.
const DefaultEvery = 100 * time.Millisecond

// Generator makes the records an example's built-in generator writes.
type Generator struct {
	// Every is how often a burst of records is written; DefaultEvery when
	// zero.
	Every time.Duration
	// Bursty makes burst sizes vary uniformly between 1 and twice the mean
	// (as the page popularity seed's producer does), instead of steady.
	Bursty bool
	// Next returns one record's key (nil for none) and value.
	Next func(r *rand.Rand) (key, value []byte)
}

// runGenerator writes about rate records/s to topic through cl until ctx is
// done, then flushes what it wrote. Produce errors are logged once each time
// they start.
func runGenerator(ctx context.Context, cl *kgo.Client, rate float64, g Generator, rnd *rand.Rand, logger *slog.Logger) {
	every := g.Every
	if every <= 0 {
		every = DefaultEvery
	}
	var (
		mu      sync.Mutex
		failing bool
	)
	done := func(_ *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			failing = true
			logger.Warn("generator cannot write", "error", err)
		case err == nil && failing:
			failing = false
			logger.Warn("generator writes again")
		}
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	carry := 0.0
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = cl.Flush(flushCtx)
			cancel()
			return
		case <-tick.C:
		}
		carry += rate * every.Seconds()
		m := int(carry)
		if m == 0 {
			continue
		}
		carry -= float64(m)
		n := m
		if g.Bursty && m > 1 {
			n = 1 + rnd.IntN(2*m-1)
		}
		for range n {
			k, v := g.Next(rnd)
			cl.Produce(ctx, &kgo.Record{Key: k, Value: v}, done)
		}
	}
}
