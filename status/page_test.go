package status_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

const chromiumPath = "/usr/bin/chromium"

// browser returns a chromedp context of a headless chromium, skipping the
// test when chromium is not installed (failing it under CI).
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing; CI must install it (apt-get install chromium)", chromiumPath)
		}
		t.Skipf("%s is missing; install it with apt-get install chromium to test the status page in a browser", chromiumPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // tests run as root
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1400),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	return ctx
}

// TestPageInBrowser opens the page in headless chromium while a job reads
// three partitions of the embedded broker, and checks what a person sees:
// charts with a point per batch, a batches table that grows and marks a
// failed batch, a lag row per partition and the operator graph.
func TestPageInBrowser(t *testing.T) {
	ctx := browser(t)
	// Batch times from now, as a job on the real clock has them (the screenshot shows them).
	k := newKafkaJobWith(t, 200*time.Millisecond, time.Now().Truncate(time.Second), nil)
	srv := httptest.NewServer(k.h)
	defer srv.Close()

	k.produce(t, 0, 4)
	k.produce(t, 1, 2)
	k.produce(t, 2, 3)
	require.NoError(t, k.c.RunBatches(t.Context(), 3))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")))

	wait := func(what, expr string) {
		t.Helper()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
		require.NoError(t, err, "waiting for %s (%s)", what, expr)
	}
	rows := `document.querySelectorAll('#batches tbody tr').length`
	wait("3 batches in the table", rows+` === 3`)
	points, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[...document.querySelectorAll('.chart')].map(c => c.querySelectorAll('.point').length)`))
	require.NoError(t, err)
	require.Equal(t, []int{3, 3, 3, 3}, points, "every chart has a point per batch")
	avg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#chart-rate .avg').textContent`))
	require.NoError(t, err)
	require.Contains(t, avg, "average 15.0 over the last 3 batches", "9 records in 3 batches of 0.2 s")

	k.produce(t, 0, 1)
	require.NoError(t, k.c.RunBatches(t.Context(), 3))
	wait("the table to grow to 6 batches", rows+` === 6`)

	wait("a lag row per partition", `document.querySelectorAll('#lag tbody tr').length === 3`)
	parts, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#lag tbody tr')].map(r => r.cells[1].textContent + '/' + r.cells[2].textContent + '@' + r.cells[3].textContent)`))
	require.NoError(t, err)
	require.Equal(t, []string{"clicks/0@5", "clicks/1@2", "clicks/2@3"}, parts)

	summary, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('summary').textContent`))
	require.NoError(t, err)
	require.Contains(t, summary, "started "+k.c.StartTime().UTC().Format("2006-01-02 15:04:05")+"Z", "the summary says when the job started")

	hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('tasks').hidden`))
	require.NoError(t, err)
	require.True(t, hidden, "a job on one process shows no tasks section")

	ops, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#graph .op')].map(g => g.dataset.name)`))
	require.NoError(t, err)
	require.Equal(t, []string{"kafka", "map-1", "forEachBatch-1"}, ops)

	k.failAt = 7
	k.produce(t, 2, 2)
	require.Error(t, k.c.RunBatches(t.Context(), 1))
	wait("the failed batch marked failed", `(() => { const r = document.querySelector('#batches tbody tr');
		return r && r.classList.contains('failed') && r.querySelector('.status').textContent === 'failed'
			&& r.querySelector('.err').textContent.includes('the sink refused the batch')
			&& r.querySelector('.ranges').textContent.includes('clicks[2] [3, 5)') })()`)
	wait("the failed point in the charts", `document.querySelectorAll('#chart-total .point.failed').length === 1`)

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(shot, []byte("\x89PNG")), "screenshot is a PNG")
	path := filepath.Join(t.TempDir(), "status.png")
	require.NoError(t, os.WriteFile(path, shot, 0o644))
	if out := os.Getenv("SLUICE_STATUS_SCREENSHOT"); out != "" {
		require.NoError(t, os.WriteFile(out, shot, 0o644))
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
}
