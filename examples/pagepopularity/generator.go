package main

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/examples/internal/exampleutil"
)

// Shape of the generated behaviour, as the seed's producer makes it.
const (
	pages     = 100
	maxClicks = 5
	maxStay   = 5
)

var likes = [...]int{1, 0, -1}

// newGenerator returns the behaviour generator: every second a burst of
// records (a random size around the rate), each for a random page, keyed by
// page so that a page's records stay in one partition.
func newGenerator() exampleutil.Generator {
	return exampleutil.Generator{
		Every:  time.Second,
		Bursty: true,
		Next: func(r *rand.Rand) (key, value []byte) {
			page := "page" + strconv.Itoa(1+r.IntN(pages))
			stay := float32(r.IntN(maxStay)) + r.Float32()
			v := page + "|" + strconv.Itoa(1+r.IntN(maxClicks)) + "|" +
				strconv.FormatFloat(float64(stay), 'f', -1, 32) + "|" + strconv.Itoa(likes[r.IntN(len(likes))])
			return []byte(page), []byte(v)
		},
	}
}
