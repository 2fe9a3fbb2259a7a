package exampleutil

import (
	"net/http"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/httpaddr"
	"github.com/sluicehq/sluice/status"
)

// DefaultHTTP is the default --http address, Spark's UI port on loopback.
const DefaultHTTP = httpaddr.Default

func checkHTTP(addr string) error {
	if err := httpaddr.Check(addr); err != nil {
		return usagef("%s", err)
	}
	return nil
}

// serveStatus serves the status of c on addr, with the job's malformed
// records as sluice_malformed_records_total, and returns the page's URL and
// a function that stops serving.
func serveStatus(c *engine.Context, addr string, malformed *Counter) (url string, stop func(), err error) {
	h, err := status.New(c, status.WithCounter("malformed_records_total",
		"Input records the job could not parse, counted and skipped.",
		func() float64 { return float64(malformed.Total()) }))
	if err != nil {
		return "", nil, err
	}
	ln, err := httpaddr.Listen(addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return httpaddr.URL(ln), func() { srv.Close() }, nil
}
