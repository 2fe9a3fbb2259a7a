package exampleutil

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
)

// TestRunServesStatusOnNextFreePort takes the --http port, then checks that
// the job serves its status on the next port, prints that URL, and that its
// metrics count the batches while it runs.
func TestRunServesStatusOnNextFreePort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	next := "127.0.0.1:" + strconv.Itoa(port+1)
	if ln, err := net.Listen("tcp", next); err != nil {
		t.Skipf("port %d is taken too; the test needs it free", port+1)
	} else {
		ln.Close()
	}

	var metrics, page string
	var bad int64
	c := &counting{}
	batches := 0
	c.onBatch = func(b dstream.Batch[string]) error {
		if batches++; batches != 3 { // earlier batches have completed
			return nil
		}
		get := func(path string) string {
			resp, err := http.Get("http://" + next + path)
			if err != nil {
				return ""
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return string(body)
		}
		bad = c.bad.Load() // every bad record of batches 1 to 3 is counted
		page, metrics = get("/"), get("/metrics")
		return nil
	}
	code, out, errOut := run(t, t.Context(), c, "--listen", "127.0.0.1:0", "--checkpoint", "", "--http", taken.Addr().String(),
		"--batch", "100ms", "--generate", "200", "--duration", "600ms")
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
	require.Contains(t, out, "status page on http://"+next+"/ (Prometheus metrics on http://"+next+"/metrics)")
	require.Contains(t, page, "<svg id=\"graph\"")
	require.Regexp(t, `sluice_batches_total\{job_name="goodbad",outcome="succeeded"\} [1-9]`, metrics, "batches completed before the one that scraped")
	require.Contains(t, metrics, `sluice_kafka_committed_offset{job_name="goodbad",partition="0",source="kafka",topic="goodbad"}`)
	require.Contains(t, metrics, "sluice_malformed_records_total{job_name=\"goodbad\"} "+strconv.FormatInt(bad, 10)+"\n")
}

func TestRunWithoutHTTP(t *testing.T) {
	code, out, errOut := run(t, context.Background(), &counting{}, "--listen", "127.0.0.1:0", "--checkpoint", "", "--http", "",
		"--batch", "100ms", "--duration", "300ms")
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
	require.NotContains(t, out, "status page")
}

func TestHTTPFlagErrors(t *testing.T) {
	for arg, want := range map[string]string{
		"4040":            `--http "4040" is not host:port; write it as --http 127.0.0.1:4040, or --http "" to serve no status page.`,
		"127.0.0.1:x":     `--http "127.0.0.1:x" has no valid port`,
		"127.0.0.1:70000": `--http "127.0.0.1:70000" has no valid port`,
	} {
		_, err := ParseFlags(goodBad, []string{"--http", arg}, nil)
		require.ErrorContains(t, err, want, arg)
	}
	cfg, err := ParseFlags(goodBad, nil, nil)
	require.NoError(t, err)
	require.Equal(t, DefaultHTTP, cfg.HTTP)
	require.False(t, strings.HasPrefix(cfg.HTTP, "0.0.0.0"), "loopback by default")
}
