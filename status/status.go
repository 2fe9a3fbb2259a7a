package status

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/httpaddr"
	"github.com/sluicehq/sluice/kafkasource"
)

// ErrOption is wrapped by the errors of bad options given to [New].
var ErrOption = errors.New("status: bad option")

// DefaultHistory is the number of batches the handler remembers unless
// [WithHistory] says otherwise.
const DefaultHistory = 1000

// Option configures [New].
type Option func(*config) error

type config struct {
	history  int
	counters []counterFunc
}

// WithCounter exports a counter the job keeps itself, such as the records
// it found malformed and skipped, as "sluice_" + name (with the job_name
// label); value is called at every scrape, from the scraping goroutine, so
// it must be safe for concurrent use (an atomic counter's Load). name is
// snake case and ends in "_total", such as "malformed_records_total".
func WithCounter(name, help string, value func() float64) Option {
	return func(c *config) error {
		if !metricName.MatchString(name) || !strings.HasSuffix(name, "_total") {
			return fmt.Errorf("%w: counter name %q is not snake case ending in _total; name it such as malformed_records_total", ErrOption, name)
		}
		if value == nil {
			return fmt.Errorf("%w: counter %q has a nil value function; pass one that returns the count", ErrOption, name)
		}
		if help == "" {
			help = "Counted by the job."
		}
		c.counters = append(c.counters, counterFunc{name: "sluice_" + name, help: help, value: value})
		return nil
	}
}

var metricName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// counterFunc is a [WithCounter] counter; the job_name label is added by
// the registry's wrapping.
type counterFunc struct {
	name, help string
	value      func() float64
}

// WithHistory sets how many of the most recent batches /api/batches and the
// page can show, overriding the default of [DefaultHistory]. n must be at
// least 1.
func WithHistory(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: history of %d batches is not positive; pass at least 1 to WithHistory", ErrOption, n)
		}
		c.history = n
		return nil
	}
}

// Handler serves the status of one job; see the package documentation for
// its paths. It is safe for concurrent use.
type Handler struct {
	ctx     *engine.Context
	mux     *http.ServeMux
	hist    *history
	metrics *metrics
}

var _ http.Handler = (*Handler)(nil)
var _ engine.Listener = (*listener)(nil)

// New returns a handler serving the status of the job c and adds its
// listener to c. Call it before c runs to see every batch.
func New(c *engine.Context, opts ...Option) (*Handler, error) {
	cfg := config{history: DefaultHistory}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	h := &Handler{ctx: c, hist: newHistory(cfg.history)}
	reg := prometheus.NewRegistry()
	h.metrics = newMetrics(c, h.hist)
	for _, cf := range cfg.counters {
		f := cf
		if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: f.name, Help: f.help, ConstLabels: h.metrics.jobLabels(),
		}, f.value)); err != nil {
			return nil, fmt.Errorf("%w: counter %s: %v; give each WithCounter another name", ErrOption, f.name, err)
		}
	}
	reg.MustRegister(h.metrics,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /api/job", h.serveJob)
	mux.HandleFunc("GET /api/batches", h.serveBatches)
	mux.HandleFunc("GET /api/lag", h.serveLag)
	mux.HandleFunc("GET /api/tasks", h.serveTasks)
	httpaddr.HandleProfiles(mux)
	h.routePage(mux)
	h.mux = mux
	c.AddListener(&listener{h: h})
	return h, nil
}

// ServeHTTP serves one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// listener records batch events. It runs on the batch goroutine: it only
// takes the history's lock and updates counters.
type listener struct{ h *Handler }

func (l *listener) BatchStarted(info engine.BatchInfo) {
	l.h.hist.started(newBatch(info, true))
}

func (l *listener) BatchCompleted(info engine.BatchInfo) {
	b := newBatch(info, false)
	l.h.hist.completed(b)
	l.h.metrics.observe(info)
}

// batch is what the history keeps of one batch.
type batch struct {
	Time            time.Time
	Records         int64
	SchedulingDelay time.Duration
	ProcessingDelay time.Duration
	TotalDelay      time.Duration
	CheckpointDelay time.Duration
	Breakdown       [4]time.Duration // planning, reading, computing, output
	OutputOps       int
	OutputOpsOK     int
	Running         bool
	Err             string
	Ranges          []sourceRange
}

type sourceRange struct {
	Source string
	kafkasource.OffsetRange
}

func newBatch(info engine.BatchInfo, running bool) batch {
	b := batch{
		Time:            info.Time,
		Records:         info.Records,
		SchedulingDelay: info.SchedulingDelay,
		ProcessingDelay: info.ProcessingDelay,
		TotalDelay:      info.TotalDelay,
		CheckpointDelay: info.CheckpointDelay,
		Breakdown:       [4]time.Duration{info.PlanningDelay, info.ReadingDelay, info.ComputingDelay, info.OutputDelay},
		OutputOps:       info.OutputOps,
		OutputOpsOK:     info.OutputOpsSucceeded,
		Running:         running,
	}
	if info.Err != nil {
		b.Err = info.Err.Error()
	}
	n := 0
	for _, v := range info.Sources {
		if rs, ok := v.([]kafkasource.OffsetRange); ok {
			n += len(rs)
		}
	}
	if n > 0 {
		b.Ranges = make([]sourceRange, 0, n) // one allocation a batch
	}
	for name, v := range info.Sources {
		rs, ok := v.([]kafkasource.OffsetRange)
		if !ok {
			continue
		}
		for _, r := range rs {
			b.Ranges = append(b.Ranges, sourceRange{Source: name, OffsetRange: r})
		}
	}
	if len(info.Sources) > 1 {
		sort.Slice(b.Ranges, func(i, j int) bool { return b.Ranges[i].Source < b.Ranges[j].Source })
	}
	return b
}

// history is a ring of the most recent batches.
type history struct {
	mu      sync.Mutex
	ring    []batch
	next    int   // index the next batch goes to
	n       int   // batches held
	running batch // the batch in flight, when running.Running
}

func newHistory(size int) *history {
	return &history{ring: make([]batch, size)}
}

func (h *history) started(b batch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running = b
}

func (h *history) completed(b batch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running = batch{}
	h.ring[h.next] = b
	h.next = (h.next + 1) % len(h.ring)
	h.n = min(h.n+1, len(h.ring))
}

// last returns up to n batches, newest first, the running one leading.
func (h *history) last(n int) []batch {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]batch, 0, min(n, h.n+1))
	if h.running.Running && n > 0 {
		out = append(out, h.running)
	}
	for i := 1; i <= h.n && len(out) < n; i++ {
		out = append(out, h.ring[(h.next-i+len(h.ring))%len(h.ring)])
	}
	return out
}

// partitionLag is one partition of one Kafka source.
type partitionLag struct {
	Source string
	kafkasource.PartitionProgress
}

// lag returns the progress of every partition of every Kafka source of c,
// sources in graph order, as the sources know it: the end offsets the
// brokers gave when the last batch was planned and the offsets of the last
// committed batch.
func lag(c *engine.Context) []partitionLag {
	var out []partitionLag
	for _, n := range c.Nodes() {
		ps, ok := kafkasource.ProgressOf(n)
		if !ok {
			continue
		}
		name := n.Meta().Name()
		for _, p := range ps {
			out = append(out, partitionLag{Source: name, PartitionProgress: p})
		}
	}
	return out
}
