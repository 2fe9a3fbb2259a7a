package status

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
)

// memberTasks is what a source running the job on several processes (an
// [engine.TaskReporter] whose Distributed reports true) says of the tasks
// its member owns: one element of /api/tasks.
type memberTasks struct {
	Source string `json:"source"`
	// Group and Member name the consumer group and this process's member
	// name, for a Kafka source in group mode; empty otherwise.
	Group  string              `json:"group,omitempty"`
	Member string              `json:"member,omitempty"`
	Tasks  []engine.TaskStatus `json:"tasks"`
}

// members returns the tasks of every distributed source of c that reports
// them, sources in graph order, tasks in task order.
func members(c *engine.Context) []memberTasks {
	var out []memberTasks
	for _, n := range c.Nodes() {
		r, ok := n.(engine.TaskReporter)
		if !ok {
			continue
		}
		if d, ok := n.(engine.Distributed); !ok || !d.Distributed() {
			continue
		}
		m := memberTasks{Source: n.Meta().Name(), Tasks: slices.Clone(r.Tasks())}
		if m.Tasks == nil {
			m.Tasks = []engine.TaskStatus{}
		}
		slices.SortFunc(m.Tasks, func(a, b engine.TaskStatus) int { return a.Task - b.Task })
		if ms, ok := kafkasource.MembershipOf(n); ok {
			m.Group, m.Member = ms.Group, ms.Member
		}
		out = append(out, m)
	}
	return out
}

func (h *Handler) serveTasks(w http.ResponseWriter, r *http.Request) {
	if !noParams(w, r) {
		return
	}
	ms := members(h.ctx)
	if ms == nil {
		ms = []memberTasks{}
	}
	writeJSON(w, ms)
}

// taskDescs are the metrics of the tasks a member owns.
type taskDescs struct {
	owned, restoring, restored, toRestore *prometheus.Desc
}

func newTaskDescs(labels prometheus.Labels) taskDescs {
	src, task := []string{"source", "group", "member"}, []string{"source", "group", "member", "task"}
	return taskDescs{
		owned:     prometheus.NewDesc("sluice_owned_tasks", "Tasks this member of the job owns.", src, labels),
		restoring: prometheus.NewDesc("sluice_restoring_tasks", "Tasks whose state this member is restoring, before their first batch.", src, labels),
		restored:  prometheus.NewDesc("sluice_task_restored_records", "State records of the task read so far by its last restore.", task, labels),
		toRestore: prometheus.NewDesc("sluice_task_restore_records", "State records of the task its last restore reads in all (0 while not known).", task, labels),
	}
}

func (d taskDescs) collect(c *engine.Context, ch chan<- prometheus.Metric) {
	for _, m := range members(c) {
		restoring := 0
		for _, t := range m.Tasks {
			if t.Restoring {
				restoring++
			}
			lv := []string{m.Source, m.Group, m.Member, strconv.Itoa(t.Task)}
			ch <- prometheus.MustNewConstMetric(d.restored, prometheus.GaugeValue, float64(t.Restored), lv...)
			ch <- prometheus.MustNewConstMetric(d.toRestore, prometheus.GaugeValue, float64(t.ToRestore), lv...)
		}
		lv := []string{m.Source, m.Group, m.Member}
		ch <- prometheus.MustNewConstMetric(d.owned, prometheus.GaugeValue, float64(len(m.Tasks)), lv...)
		ch <- prometheus.MustNewConstMetric(d.restoring, prometheus.GaugeValue, float64(restoring), lv...)
	}
}
