package main

import (
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/metricstest"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// TestBrokerStatusPage produces records to a broker run with --http, has a
// group commit offsets, and checks that /metrics (parsed with the
// Prometheus text parser) and the page show the partitions' offsets and the
// group's lag.
func TestBrokerStatusPage(t *testing.T) {
	b := startBroker(t, "--listen", "127.0.0.1:0", "--topic", "words:3", "--http", "127.0.0.1:0")
	require.Regexp(t, `^http://127\.0\.0\.1:\d+/$`, b.page)

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	var recs []*kgo.Record
	for p := range int32(3) {
		for i := range 10 * (p + 1) { // 10, 20 and 30 records
			recs = append(recs, &kgo.Record{Topic: "words", Partition: p, Value: fmt.Appendf(nil, "v%d", i)})
		}
	}
	require.NoError(t, cl.ProduceSync(testCtx(t), recs...).FirstErr())
	adm := kadm.NewClient(cl)
	os := make(kadm.Offsets)
	os.Add(kadm.Offset{Topic: "words", Partition: 1, At: 5, LeaderEpoch: -1})
	resps, err := adm.CommitOffsets(testCtx(t), "readers", os)
	require.NoError(t, err)
	require.NoError(t, resps.Error())

	code, body := get(t, b.page+"metrics")
	require.Equal(t, http.StatusOK, code)
	families := metricstest.Parse(t, body)
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		return metricstest.Value(t, families, name, labels)
	}
	require.Equal(t, 1.0, value("sluice_broker_up", nil))
	for p, want := range []float64{10, 20, 30} {
		part := fmt.Sprint(p)
		require.Equal(t, want, value("sluice_broker_partition_end_offset", map[string]string{"topic": "words", "partition": part}))
		require.Equal(t, 0.0, value("sluice_broker_partition_start_offset", map[string]string{"topic": "words", "partition": part}))
	}
	g := map[string]string{"group": "readers", "topic": "words", "partition": "1"}
	require.Equal(t, 5.0, value("sluice_broker_group_committed_offset", g))
	require.Equal(t, 15.0, value("sluice_broker_group_lag_records", g))

	code, body = get(t, b.page)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "<td>words</td><td>2</td><td>0</td><td>30</td><td>30</td>", "the partitions table")
	require.Contains(t, body, "<td>readers</td><td>words</td><td>1</td><td>5</td><td>15</td>", "the groups table")
	require.Contains(t, body, b.addr)

	code, _ = get(t, b.page+"debug/pprof/")
	require.Equal(t, http.StatusOK, code)
	code, _ = get(t, b.page+"nothing-here")
	require.Equal(t, http.StatusNotFound, code)

	require.Equal(t, 0, b.stop(t, syscall.SIGTERM), "stderr: %s", b.stderr)
}
