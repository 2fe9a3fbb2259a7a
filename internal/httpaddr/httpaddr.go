// Package httpaddr reads and listens on the --http address of Sluice's
// programs, where the examples and the commands serve their status pages,
// and routes Go's profiles on those pages.
package httpaddr

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"syscall"
)

// Default is the default --http address, Spark's UI port on loopback.
const Default = "127.0.0.1:4040"

// portTries is how many ports from the asked one [Listen] tries, as Spark
// tries spark.port.maxRetries ports from spark.ui.port.
const portTries = 16

// Check returns a one-sentence error when addr, the value of --http, is not
// empty and not host:port.
func Check(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--http %q is not host:port; write it as --http %s, or --http \"\" to serve no status page.", addr, Default)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return fmt.Errorf("--http %q has no valid port; use a number from 0 to 65535, as in --http %s:4040.", addr, host)
	}
	return nil
}

// Listen listens on addr or, when its port is taken, on the next free one
// of the following ports.
func Listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, err
	}
	tries := portTries
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

// URL returns the page's address for a listener of [Listen].
func URL(ln net.Listener) string { return "http://" + ln.Addr().String() + "/" }

// HandleProfiles routes Go's profiles (package net/http/pprof) under
// /debug/pprof/ on mux.
func HandleProfiles(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
