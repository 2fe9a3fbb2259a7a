package status_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/metricstest"
	"github.com/sluicehq/sluice/kafkasource"
	"github.com/sluicehq/sluice/status"
)

// taskNode stands for a source that runs the job on several processes
// (engine.Distributed) and reports the tasks its member owns
// (engine.TaskReporter), with tasks the test sets. It plans no input.
type taskNode struct {
	meta  engine.Meta
	mu    sync.Mutex
	tasks []engine.TaskStatus
}

func (n *taskNode) Meta() *engine.Meta { return &n.meta }
func (n *taskNode) Distributed() bool  { return true }

func (n *taskNode) Plan(context.Context, *engine.Job) ([]byte, error) { return nil, nil }
func (n *taskNode) Replan(context.Context, *engine.Job, []byte) error { return nil }
func (n *taskNode) Commit(context.Context, *engine.Job) error         { return nil }

func (n *taskNode) Tasks() []engine.TaskStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.tasks)
}

func (n *taskNode) set(tasks ...engine.TaskStatus) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tasks = tasks
}

// newTaskJob is newKafkaJob with a taskNode beside the Kafka source.
func newTaskJob(t *testing.T, interval time.Duration, start time.Time) (*kafkaJob, *taskNode) {
	t.Helper()
	k := newKafkaJobWith(t, interval, start, nil)
	n := &taskNode{meta: engine.Meta{Kind: "groupSource"}}
	k.c.Register(n)
	return k, n
}

type tasksJSON []struct {
	Source string
	Group  string
	Member string
	Tasks  []engine.TaskStatus
}

func TestTasksAPIAndMetrics(t *testing.T) {
	k := newKafkaJob(t)
	code, body := get(t, k.h, "/api/tasks")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "[]\n", body, "a job on one process has no tasks to show")
	for name := range metricstest.Scrape(t, k.h) {
		require.NotContains(t, name, "task", "nor task metrics")
	}

	k, n := newTaskJob(t, time.Second, time.Unix(0, 0))
	n.set(engine.TaskStatus{Task: 4, Restored: 10, ToRestore: 10},
		engine.TaskStatus{Task: 1, Restoring: true, Restored: 250, ToRestore: 1000})
	k.produce(t, 0, 2)
	require.NoError(t, k.c.RunBatches(t.Context(), 1))
	code, body = get(t, k.h, "/api/tasks")
	require.Equal(t, http.StatusOK, code)
	var got tasksJSON
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	require.Len(t, got, 1)
	require.Equal(t, "groupSource-1", got[0].Source)
	require.Empty(t, got[0].Group, "not a Kafka source: no group")
	require.Equal(t, []engine.TaskStatus{{Task: 1, Restoring: true, Restored: 250, ToRestore: 1000}, {Task: 4, Restored: 10, ToRestore: 10}},
		got[0].Tasks, "tasks in task order")
	require.Contains(t, body, `"restored_records":250,"to_restore_records":1000`)
	code, _ = get(t, k.h, "/api/tasks?x=1")
	require.Equal(t, http.StatusBadRequest, code)

	fams := metricstest.Scrape(t, k.h)
	src := map[string]string{"source": "groupSource-1", "job_name": "clicks-job"}
	require.Equal(t, 2.0, metricstest.Value(t, fams, "sluice_owned_tasks", src))
	require.Equal(t, 1.0, metricstest.Value(t, fams, "sluice_restoring_tasks", src))
	require.Equal(t, 250.0, metricstest.Value(t, fams, "sluice_task_restored_records", map[string]string{"source": "groupSource-1", "task": "1"}))
	require.Equal(t, 1000.0, metricstest.Value(t, fams, "sluice_task_restore_records", map[string]string{"source": "groupSource-1", "task": "1"}))
	require.Equal(t, 10.0, metricstest.Value(t, fams, "sluice_task_restored_records", map[string]string{"source": "groupSource-1", "task": "4"}))
}

// TestTasksInBrowser opens the page in headless chromium beside a job
// whose source reports its tasks, and checks that the tasks section shows
// them as they change: none yet, a task restoring with its progress, then
// done, a task gained, a task given away, and none again.
func TestTasksInBrowser(t *testing.T) {
	ctx := browser(t)
	k, n := newTaskJob(t, 200*time.Millisecond, time.Now().Truncate(time.Second))
	srv := httptest.NewServer(k.h)
	defer srv.Close()
	wait := func(what, expr string) {
		t.Helper()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
		require.NoError(t, err, "waiting for %s (%s)", what, expr)
	}
	rows := func() []string {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#tasks tbody tr')].map(r => [...r.cells].map(c => c.textContent).join(' | '))`))
		require.NoError(t, err)
		return got
	}

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")))
	wait("a member that owns no task yet", `!document.getElementById('tasks').hidden &&
		document.querySelector('#tasks .who').textContent === 'Source groupSource-1: 0 tasks'`)

	n.set(engine.TaskStatus{Task: 0, Restored: 3, ToRestore: 3}, engine.TaskStatus{Task: 2, Restoring: true, Restored: 40, ToRestore: 160})
	k.produce(t, 0, 3)
	require.NoError(t, k.c.RunBatches(t.Context(), 1))
	wait("the tasks section", `!document.getElementById('tasks').hidden && document.querySelectorAll('#tasks tbody tr').length === 2`)
	require.Equal(t, []string{"0 | running | restored 3 records", "2 | restoring | 40 of 160 records (25%)"}, rows())
	who, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#tasks .who').textContent`))
	require.NoError(t, err)
	require.Equal(t, "Source groupSource-1: 2 tasks, 1 restoring", who)
	bar, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => { const p = document.querySelector('#tasks tr.restoring progress'); return [p.value, p.max] })()`))
	require.NoError(t, err)
	require.Equal(t, []float64{40, 160}, bar, "a progress bar of the restore")
	rowClass, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#tasks tr[data-task="2"]').className`))
	require.NoError(t, err)
	require.Equal(t, "restoring", rowClass)

	n.set(engine.TaskStatus{Task: 2, Restored: 160, ToRestore: 160}, engine.TaskStatus{Task: 5, Restoring: true, Restored: 7})
	wait("task 0 given away, task 2 restored, task 5 gained", `document.querySelectorAll('#tasks tbody tr').length === 2 &&
		document.querySelector('#tasks tbody tr').dataset.task === '2'`)
	require.Equal(t, []string{"2 | running | restored 160 records", "5 | restoring | 7 records read, total not known yet"}, rows())

	n.set()
	wait("a member left with no task", `document.querySelectorAll('#tasks tbody tr').length === 0`)
	who, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#tasks .who').textContent`))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(who, "Source groupSource-1: 0 tasks"), who)
}

// TestTasksOfAGroupMember runs a Kafka source in group mode, the only
// member of its group, with a keyed state per task, and checks that
// /api/tasks and the page in headless chromium name its group and member
// and list the tasks the group gave it, each restored (from an empty
// changelog) and running.
func TestTasksOfAGroupMember(t *testing.T) {
	broker, err := kafkasource.StartEmbedded(kafkasource.EmbeddedTopic("clicks", 3))
	require.NoError(t, err)
	t.Cleanup(func() { broker.Close() })
	c, err := engine.NewContext(100*time.Millisecond, engine.WithJobName("clicks-job"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s, err := kafkasource.NewDirectStream(c, []string{"clicks"}, kafkasource.WithBrokers(broker.Addrs()...),
		kafkasource.WithGroup("clicks-group"), kafkasource.AsMember("a"), kafkasource.WithResetPolicy(kafkasource.Earliest))
	require.NoError(t, err)
	pages := dstream.CoPartitioned(dstream.Map(s, func(r kafkasource.Record) dstream.KV[string, int] { return dstream.Pair(string(r.Key), 1) }))
	counts := dstream.UpdateStateByKey(pages, func(vs []int, n int, _ bool) (int, bool) { return n + len(vs), true }).Name("counts")
	dstream.ForEachBatch(counts, func(context.Context, dstream.Batch[dstream.KV[string, int]]) error { return nil })
	h, err := status.New(c)
	require.NoError(t, err)

	var got tasksJSON
	deadline := time.Now().Add(30 * time.Second)
	for len(got) == 0 || len(got[0].Tasks) < 3 {
		require.True(t, time.Now().Before(deadline), "the group gave member a no tasks within 30s: %v", got)
		require.NoError(t, c.RunBatches(t.Context(), 1))
		code, body := get(t, h, "/api/tasks")
		require.Equal(t, http.StatusOK, code)
		got = nil
		require.NoError(t, json.Unmarshal([]byte(body), &got))
		require.Len(t, got, 1, body)
	}
	require.Equal(t, "kafka", got[0].Source)
	require.Equal(t, "clicks-group", got[0].Group)
	require.Equal(t, "a", got[0].Member)
	for i, task := range got[0].Tasks {
		require.Equal(t, engine.TaskStatus{Task: i}, task, "task %d: restored from an empty changelog, running", i)
	}

	// The page says so too.
	ctx := browser(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")))
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll('#tasks tbody tr').length === 3`,
		chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	require.NoError(t, err, "waiting for the member's three tasks on the page")
	who, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#tasks .who').textContent`))
	require.NoError(t, err)
	require.Equal(t, "Member a of group clicks-group: 3 tasks (source kafka)", who)
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#tasks tbody tr')].map(r => [...r.cells].map(c => c.textContent).join(' | '))`))
	require.NoError(t, err)
	require.Equal(t, []string{"0 | running | restored 0 records", "1 | running | restored 0 records", "2 | running | restored 0 records"}, rows)
	summary, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('summary').textContent`))
	require.NoError(t, err)
	require.Contains(t, summary, "member a of group clicks-group")
}
