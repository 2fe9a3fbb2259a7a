package status_test

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/metricstest"
	"github.com/sluicehq/sluice/kafkasink"
	"github.com/sluicehq/sluice/kafkasource"
	"github.com/sluicehq/sluice/state"
)

// checkpointBodies returns the bytes of the bodies of every checkpoint file
// under dir, and of those of the operator op's state.
func checkpointBodies(t *testing.T, dir, op string) (all, opState int64) {
	t.Helper()
	kinds := map[string]state.Kind{"offsets": state.KindOffsets, "commits": state.KindCommit, "state": 0}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "LOCK" {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		kind := state.KindFormat
		if top, _, ok := strings.Cut(rel, string(filepath.Separator)); ok {
			kind = kinds[top]
			if kind == 0 {
				kind = state.KindDelta
				if strings.HasSuffix(path, ".snapshot") {
					kind = state.KindSnapshot
				}
			}
		}
		body, err := state.ReadFile(state.OSFS{}, path, kind)
		require.NoError(t, err, rel)
		all += int64(len(body))
		if strings.HasPrefix(rel, filepath.Join("state", op)+string(filepath.Separator)) {
			opState += int64(len(body))
		}
		return nil
	})
	require.NoError(t, err)
	return all, opState
}

// TestJobMetrics checks the metrics of checkpoints, keyed state, records
// lost to retention and a job's own counter against what the job did and
// what its checkpoint dir holds, that /api/job names the dir, and that the
// README's table of metrics lists what the job exports, no more, no less.
func TestJobMetrics(t *testing.T) {
	broker, err := kafkasource.StartEmbedded(kafkasource.EmbeddedTopic("clicks", 2), kafkasource.EmbeddedTopic("totals", 1))
	require.NoError(t, err)
	t.Cleanup(func() { broker.Close() })
	producer, err := kgo.NewClient(kgo.SeedBrokers(broker.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(producer.Close)
	produce := func(p int32, keys ...string) {
		t.Helper()
		for _, k := range keys {
			require.NoError(t, producer.ProduceSync(t.Context(), &kgo.Record{Topic: "clicks", Partition: p, Value: []byte(k)}).FirstErr())
		}
	}
	dir := t.TempDir()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithCheckpoint(dir))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s, err := kafkasource.NewDirectStream(c, []string{"clicks"},
		kafkasource.WithBrokers(broker.Addrs()...), kafkasource.WithResetPolicy(kafkasource.Earliest), kafkasource.WithGroup("clicks-group"))
	require.NoError(t, err)
	var malformed atomic.Int64
	pages := dstream.Map(dstream.Filter(s, func(r kafkasource.Record) bool {
		if len(r.Value) == 0 {
			malformed.Add(1)
			return false
		}
		return true
	}), func(r kafkasource.Record) dstream.KV[string, int] { return dstream.Pair(string(r.Value), 1) })
	totals := dstream.UpdateStateByKey(pages, func(vs []int, st int, _ bool) (int, bool) { return st + len(vs), true })
	_, err = kafkasink.WriteTo(totals, "totals", kafkasink.Config{Brokers: broker.Addrs()}, func(kv dstream.KV[string, int]) (key, value []byte, err error) {
		return []byte(kv.Key), strconv.AppendInt(nil, int64(kv.Value), 10), nil
	})
	require.NoError(t, err)
	// A source running the job on several processes, for the tasks'
	// metrics; it plans nothing.
	tn := &taskNode{meta: engine.Meta{Kind: "groupSource"}}
	tn.set(engine.TaskStatus{Task: 0, Restoring: true, Restored: 1, ToRestore: 2})
	c.Register(tn)
	h, err := newHandler(c, malformed.Load)
	require.NoError(t, err)

	produce(0, "a", "b", "", "a")
	produce(1, "c")
	require.NoError(t, c.RunBatches(t.Context(), 1))
	produce(1, "d", "e", "", "f", "g", "h")
	// Retention takes offsets [0, 5) of partition 1 before the stream read
	// 1 to 4.
	adm := kadm.NewClient(producer)
	del := kadm.Offsets{}
	del.AddOffset("clicks", 1, 5, -1)
	resp, err := adm.DeleteRecords(t.Context(), del)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
	produce(0, "i")
	require.NoError(t, c.RunBatches(t.Context(), 1))

	fams := metricstest.Scrape(t, h)
	op := "updateStateByKey-1"
	// a, b, c, then i, g and h: offsets 1 to 4 of partition 1 (d, e, the
	// empty record and f) were lost.
	require.Equal(t, 6.0, metricstest.Value(t, fams, "sluice_state_keys", map[string]string{"operator": op}))
	require.Equal(t, 4.0, metricstest.Value(t, fams, "sluice_kafka_records_lost_total", map[string]string{"operator": "kafka"}))
	require.Equal(t, 1.0, metricstest.Value(t, fams, "sluice_malformed_records_total", nil))
	require.Equal(t, 2.0, metricstest.Value(t, fams, "sluice_last_committed_batch_timestamp_seconds", nil))
	require.Equal(t, 2.0, metricstest.Value(t, fams, "sluice_checkpoint_commits_total", nil))
	all, opState := checkpointBodies(t, dir, op)
	require.Equal(t, float64(all), metricstest.Value(t, fams, "sluice_checkpoint_written_bytes_total", nil), "every file written is still there")
	require.Equal(t, float64(opState), metricstest.Value(t, fams, "sluice_checkpoint_state_bytes", map[string]string{"operator": op}))
	require.Positive(t, opState)
	requireReadmeListsMetrics(t, fams)

	code, body := get(t, h, "/api/job")
	require.Equal(t, http.StatusOK, code)
	var job struct {
		CheckpointDir string `json:"checkpoint_dir"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &job))
	require.Equal(t, dir, job.CheckpointDir)
}

// requireReadmeListsMetrics checks that the README's table of /metrics
// names every sluice_ family of fams with its labels (job_name apart), and
// names no family fams lacks: the job of fams exports every one.
func requireReadmeListsMetrics(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	body, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	documented := map[string][]string{}
	in := false
	for line := range strings.Lines(string(body)) {
		switch {
		case strings.HasPrefix(line, "| metric | type | labels | what |"):
			in = true
		case in && !strings.HasPrefix(line, "|"):
			in = false
		case in:
			cols := strings.Split(line, "|")
			name := strings.Trim(strings.TrimSpace(cols[1]), "`")
			if !strings.HasPrefix(name, "sluice_") || strings.Contains(name, "<") {
				continue // the header's rule, or the row of any node's metrics
			}
			labels := regexp.MustCompile(`\([^)]*\)`).ReplaceAllString(cols[3], "")
			var names []string
			for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(labels, -1) {
				names = append(names, m[1])
			}
			slices.Sort(names)
			documented[name] = names
		}
	}
	require.NotEmpty(t, documented, "the README has a table of metrics")
	exported := map[string][]string{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "sluice_") {
			continue
		}
		var names []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			if l.GetName() != "job_name" {
				names = append(names, l.GetName())
			}
		}
		slices.Sort(names)
		exported[name] = names
	}
	require.Equal(t, documented, exported, "the README's table of metrics (name → labels) and what a job with a Kafka source in a group, keyed state, a checkpoint, a counter, a Kafka sink and a source reporting its tasks exports")
}
