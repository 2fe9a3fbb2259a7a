package status_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/internal/metricstest"
	"github.com/sluicehq/sluice/kafkasource"
)

type lagRow struct {
	Source              string
	Topic               string
	Partition           int32
	Committed, End, Lag int64
}

func apiLag(t *testing.T, k *kafkaJob) []lagRow {
	t.Helper()
	code, body := get(t, k.h, "/api/lag")
	require.Equal(t, http.StatusOK, code, body)
	var rows []lagRow
	require.NoError(t, json.Unmarshal([]byte(body), &rows))
	return rows
}

// TestLagIsBrokerEndMinusCommitted runs a job capped at 10 records per
// partition and batch behind a producer that wrote more: the lag in
// /metrics and /api/lag is what the partition holds beyond the last
// committed batch, with the end offsets the broker itself reports.
func TestLagIsBrokerEndMinusCommitted(t *testing.T) {
	k := newKafkaJobWith(t, time.Second, time.Unix(0, 0), []kafkasource.Option{
		kafkasource.WithRateLimits(kafkasource.RateLimits{MaxRatePerPartition: 10})})
	produced := []int{35, 12, 0}
	for p, n := range produced {
		k.produce(t, int32(p), n)
	}
	adm := kadm.NewClient(k.producer)
	check := func(committed []int64) {
		t.Helper()
		ends, err := adm.ListEndOffsets(t.Context(), "clicks")
		require.NoError(t, err)
		fams := metricstest.Scrape(t, k.h)
		rows := apiLag(t, k)
		require.Len(t, rows, 3)
		for p := range 3 {
			end, ok := ends.Lookup("clicks", int32(p))
			require.True(t, ok)
			want := lagRow{Source: "kafka", Topic: "clicks", Partition: int32(p),
				Committed: committed[p], End: end.Offset, Lag: end.Offset - committed[p]}
			require.Equal(t, want, rows[p], "partition %d", p)
			lv := map[string]string{"source": "kafka", "topic": "clicks", "partition": strconv.Itoa(p)}
			require.Equal(t, float64(want.Committed), metricstest.Value(t, fams, "sluice_kafka_committed_offset", lv))
			require.Equal(t, float64(want.End), metricstest.Value(t, fams, "sluice_kafka_end_offset", lv))
			require.Equal(t, float64(want.Lag), metricstest.Value(t, fams, "sluice_kafka_lag_records", lv))
		}
	}

	require.NoError(t, k.c.RunBatches(t.Context(), 1))
	check([]int64{10, 10, 0}) // lag 25, 2, 0

	// Records produced after the plan are not known until the next one.
	k.produce(t, 0, 5)
	require.NoError(t, k.c.RunBatches(t.Context(), 1))
	check([]int64{20, 12, 0}) // lag 20 of 40: the new end, not the first one

	require.NoError(t, k.c.RunBatches(t.Context(), 2))
	check([]int64{40, 12, 0})
}
