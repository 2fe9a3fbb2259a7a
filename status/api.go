package status

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// jobJSON is the body of /api/job.
type jobJSON struct {
	Name            string         `json:"name"`
	BatchIntervalMS int64          `json:"batch_interval_ms"`
	StartTime       *time.Time     `json:"start_time,omitempty"`
	ZeroTime        *time.Time     `json:"zero_time,omitempty"`
	Checkpointing   bool           `json:"checkpointing"`
	CheckpointDir   string         `json:"checkpoint_dir,omitempty"`
	Parallelism     int            `json:"parallelism"`
	History         int            `json:"history"`
	Operators       []operatorJSON `json:"operators"`
}

type operatorJSON struct {
	ID      int    `json:"id"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Parents []int  `json:"parents"`
}

// batchJSON is one batch of /api/batches.
type batchJSON struct {
	TimeMS            int64       `json:"time_ms"`
	Status            string      `json:"status"` // running, succeeded or failed
	Records           int64       `json:"records"`
	SchedulingDelayMS float64     `json:"scheduling_delay_ms"`
	ProcessingMS      float64     `json:"processing_ms"`
	TotalDelayMS      float64     `json:"total_delay_ms"`
	CheckpointMS      float64     `json:"checkpoint_ms"`
	PlanningMS        float64     `json:"planning_ms"`
	ReadingMS         float64     `json:"reading_ms"`
	ComputingMS       float64     `json:"computing_ms"`
	OutputMS          float64     `json:"output_ms"`
	OutputOps         int         `json:"output_ops"`
	OutputOpsOK       int         `json:"output_ops_succeeded"`
	Error             string      `json:"error,omitempty"`
	OffsetRanges      []rangeJSON `json:"offset_ranges"`
}

type rangeJSON struct {
	Source    string `json:"source"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	From      int64  `json:"from"`
	Until     int64  `json:"until"`
}

// lagJSON is one partition of /api/lag.
type lagJSON struct {
	Source    string `json:"source"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"`
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (h *Handler) serveJob(w http.ResponseWriter, r *http.Request) {
	if !noParams(w, r) {
		return
	}
	c := h.ctx
	j := jobJSON{
		Name:            c.JobName(),
		BatchIntervalMS: c.BatchInterval().Milliseconds(),
		Checkpointing:   c.Checkpointing(),
		CheckpointDir:   c.CheckpointDir(),
		Parallelism:     c.Parallelism(),
		History:         len(h.hist.ring),
		Operators:       []operatorJSON{},
	}
	if st := c.StartTime(); !st.IsZero() {
		st = st.UTC()
		j.StartTime = &st
	}
	if z := c.Zero(); !z.IsZero() {
		z = z.UTC()
		j.ZeroTime = &z
	}
	for _, n := range c.Nodes() {
		m := n.Meta()
		op := operatorJSON{ID: m.ID(), Name: m.Name(), Kind: m.Kind, Parents: []int{}}
		for _, p := range m.Parents {
			op.Parents = append(op.Parents, p.Meta().ID())
		}
		j.Operators = append(j.Operators, op)
	}
	writeJSON(w, j)
}

func (h *Handler) serveBatches(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size := len(h.hist.ring)
	n := size
	for k, vs := range q {
		if k != "n" {
			badRequest(w, fmt.Sprintf("query parameter %q is not known; /api/batches takes only n, the number of batches", k))
			return
		}
		if len(vs) != 1 {
			badRequest(w, "query parameter n is given more than once; give it once")
			return
		}
		v, err := strconv.Atoi(vs[0])
		if err != nil || v < 1 || v > size {
			badRequest(w, fmt.Sprintf("n=%q is not a number of batches from 1 to %d; pass such as n=100", vs[0], size))
			return
		}
		n = v
	}
	bs := h.hist.last(n)
	out := make([]batchJSON, len(bs))
	for i, b := range bs {
		status := "succeeded"
		switch {
		case b.Running:
			status = "running"
		case b.Err != "":
			status = "failed"
		}
		out[i] = batchJSON{
			TimeMS:            b.Time.UnixMilli(),
			Status:            status,
			Records:           b.Records,
			SchedulingDelayMS: ms(b.SchedulingDelay),
			ProcessingMS:      ms(b.ProcessingDelay),
			TotalDelayMS:      ms(b.TotalDelay),
			CheckpointMS:      ms(b.CheckpointDelay),
			PlanningMS:        ms(b.Breakdown[0]),
			ReadingMS:         ms(b.Breakdown[1]),
			ComputingMS:       ms(b.Breakdown[2]),
			OutputMS:          ms(b.Breakdown[3]),
			OutputOps:         b.OutputOps,
			OutputOpsOK:       b.OutputOpsOK,
			Error:             b.Err,
			OffsetRanges:      make([]rangeJSON, len(b.Ranges)),
		}
		for k, r := range b.Ranges {
			out[i].OffsetRanges[k] = rangeJSON{r.Source, r.Topic, r.Partition, r.From, r.Until}
		}
	}
	writeJSON(w, out)
}

func (h *Handler) serveLag(w http.ResponseWriter, r *http.Request) {
	if !noParams(w, r) {
		return
	}
	ps := lag(h.ctx)
	out := make([]lagJSON, len(ps))
	for i, p := range ps {
		out[i] = lagJSON{p.Source, p.Topic, p.Partition, p.Committed, p.End, p.Lag()}
	}
	writeJSON(w, out)
}

// noParams answers 400 when r has query parameters, and reports whether it
// has none.
func noParams(w http.ResponseWriter, r *http.Request) bool {
	for k := range r.URL.Query() {
		badRequest(w, fmt.Sprintf("query parameter %q is not known; %s takes none", k, r.URL.Path))
		return false
	}
	return true
}

func badRequest(w http.ResponseWriter, msg string) {
	http.Error(w, msg, http.StatusBadRequest)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding the answer failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}
