package exampleutil

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/status"
)

// DefaultHTTP is the default --http address, Spark's UI port on loopback.
const DefaultHTTP = "127.0.0.1:4040"

// httpPortTries is how many ports from the asked one --http tries, as
// Spark tries spark.port.maxRetries ports from spark.ui.port.
const httpPortTries = 16

func checkHTTP(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--http %q is not host:port; write it as --http %s, or --http \"\" to serve no status page.", addr, DefaultHTTP)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return usagef("--http %q has no valid port; use a number from 0 to 65535, as in --http %s:4040.", addr, host)
	}
	return nil
}

// listenHTTP listens on addr or, when its port is taken, on the next free
// one of the following ports.
func listenHTTP(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, err
	}
	tries := httpPortTries
	if p == 0 {
		tries = 1
	}
	for i := range tries {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p+i)))
		if err == nil {
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || p+i >= 65535 {
			return nil, fmt.Errorf("cannot serve the status page on --http %s: %v; pass another address, or --http \"\" to serve none", addr, err)
		}
	}
	return nil, fmt.Errorf("cannot serve the status page on --http %s: ports %d to %d are taken; pass another address, or --http \"\" to serve none", addr, p, p+tries-1)
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
	ln, err := listenHTTP(addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/", func() { srv.Close() }, nil
}
