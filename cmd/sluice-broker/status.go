package main

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/httpaddr"
)

// brokerStatus answers the status page, /metrics and /debug/pprof/ of a
// running broker. What it shows it asks the broker over the Kafka protocol,
// as any client would, at each request.
type brokerStatus struct {
	adm     *kadm.Client
	cl      *kgo.Client
	addrs   []string
	dataDir string
	started time.Time
	reg     *prometheus.Registry
}

// partitionOffsets is one partition's log start and end.
type partitionOffsets struct {
	Topic      string
	Partition  int32
	Start, End int64
}

// groupOffsets is one group's committed offset in a partition, and its lag
// behind the partition's end.
type groupOffsets struct {
	Group, Topic string
	Partition    int32
	Committed    int64
	Lag          int64
}

type brokerSnapshot struct {
	Partitions []partitionOffsets
	Groups     []groupOffsets
}

func newBrokerStatus(addrs []string, dataDir string) (*brokerStatus, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return nil, err
	}
	s := &brokerStatus{adm: kadm.NewClient(cl), cl: cl, addrs: addrs, dataDir: dataDir, started: time.Now(), reg: prometheus.NewRegistry()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), s)
	return s, nil
}

func (s *brokerStatus) close() { s.cl.Close() }

// snapshot lists every topic's partitions with their offsets and every
// group's committed offsets and lag.
func (s *brokerStatus) snapshot(ctx context.Context) (brokerSnapshot, error) {
	var snap brokerSnapshot
	topics, err := s.adm.ListTopics(ctx)
	if err != nil {
		return snap, err
	}
	names := topics.Names()
	if len(names) == 0 {
		return snap, nil
	}
	starts, err := s.adm.ListStartOffsets(ctx, names...)
	if err != nil {
		return snap, err
	}
	ends, err := s.adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return snap, err
	}
	ends.Each(func(o kadm.ListedOffset) {
		st, _ := starts.Lookup(o.Topic, o.Partition)
		snap.Partitions = append(snap.Partitions, partitionOffsets{Topic: o.Topic, Partition: o.Partition, Start: st.Offset, End: o.Offset})
	})
	sort.Slice(snap.Partitions, func(i, j int) bool {
		a, b := snap.Partitions[i], snap.Partitions[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	groups, err := s.adm.ListGroups(ctx)
	if err != nil {
		return snap, err
	}
	if len(groups) == 0 {
		return snap, nil
	}
	lags, err := s.adm.Lag(ctx, groups.Groups()...)
	if err != nil {
		return snap, err
	}
	lags.Each(func(l kadm.DescribedGroupLag) {
		for _, ps := range l.Lag {
			for _, m := range ps {
				if m.Err == nil && m.Commit.At >= 0 {
					snap.Groups = append(snap.Groups, groupOffsets{Group: l.Group, Topic: m.Topic, Partition: m.Partition, Committed: m.Commit.At, Lag: m.Lag})
				}
			}
		}
	})
	sort.Slice(snap.Groups, func(i, j int) bool {
		a, b := snap.Groups[i], snap.Groups[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	return snap, nil
}

var (
	descStart     = prometheus.NewDesc("sluice_broker_partition_start_offset", "Offset of the oldest record kept in the partition.", []string{"topic", "partition"}, nil)
	descEnd       = prometheus.NewDesc("sluice_broker_partition_end_offset", "Offset the partition's next record gets (its high watermark).", []string{"topic", "partition"}, nil)
	descCommitted = prometheus.NewDesc("sluice_broker_group_committed_offset", "Offset a consumer group committed in the partition.", []string{"group", "topic", "partition"}, nil)
	descLag       = prometheus.NewDesc("sluice_broker_group_lag_records", "Records between a group's committed offset and the partition's end.", []string{"group", "topic", "partition"}, nil)
	descUp        = prometheus.NewDesc("sluice_broker_up", "1 when the broker answered the scrape's requests, else 0.", nil, nil)
)

func (s *brokerStatus) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStart, descEnd, descCommitted, descLag, descUp} {
		ch <- d
	}
}

func (s *brokerStatus) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snap, err := s.snapshot(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	for _, p := range snap.Partitions {
		part := strconv.Itoa(int(p.Partition))
		ch <- prometheus.MustNewConstMetric(descStart, prometheus.GaugeValue, float64(p.Start), p.Topic, part)
		ch <- prometheus.MustNewConstMetric(descEnd, prometheus.GaugeValue, float64(p.End), p.Topic, part)
	}
	for _, g := range snap.Groups {
		part := strconv.Itoa(int(g.Partition))
		ch <- prometheus.MustNewConstMetric(descCommitted, prometheus.GaugeValue, float64(g.Committed), g.Group, g.Topic, part)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(g.Lag), g.Group, g.Topic, part)
	}
}

// handler serves / (the page), /metrics, /debug/pprof/; other paths 404.
func (s *brokerStatus) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	httpaddr.HandleProfiles(mux)
	return mux
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>sluice-broker</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:1.5em}
th,td{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}
.err{color:#b00}</style></head><body>
<h1>sluice-broker</h1>
<p>Listening on {{range $i, $a := .Addrs}}{{if $i}}, {{end}}<code>{{$a}}</code>{{end}}; data dir: {{.DataDir}}; up {{.Uptime}}.
<a href="metrics">/metrics</a> · <a href="debug/pprof/">/debug/pprof/</a></p>
{{if .Err}}<p class="err" id="error">{{.Err}}</p>{{end}}
<h2>Partitions</h2>
<table id="partitions"><tr><th>topic</th><th>partition</th><th>start offset</th><th>end offset</th><th>records kept</th></tr>
{{range .Snap.Partitions}}<tr><td>{{.Topic}}</td><td>{{.Partition}}</td><td>{{.Start}}</td><td>{{.End}}</td><td>{{.Kept}}</td></tr>
{{else}}<tr><td colspan="5">no topics yet</td></tr>{{end}}</table>
<h2>Consumer groups</h2>
<table id="groups"><tr><th>group</th><th>topic</th><th>partition</th><th>committed offset</th><th>lag</th></tr>
{{range .Snap.Groups}}<tr><td>{{.Group}}</td><td>{{.Topic}}</td><td>{{.Partition}}</td><td>{{.Committed}}</td><td>{{.Lag}}</td></tr>
{{else}}<tr><td colspan="5">no committed offsets</td></tr>{{end}}</table>
<p>The page reloads every 2 s.</p>
</body></html>
`))

// Kept is the number of records the partition holds.
func (p partitionOffsets) Kept() int64 { return p.End - p.Start }

func (s *brokerStatus) page(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	snap, err := s.snapshot(ctx)
	data := struct {
		Addrs   []string
		DataDir string
		Uptime  string
		Snap    brokerSnapshot
		Err     string
	}{Addrs: s.addrs, DataDir: s.dataDir, Uptime: time.Since(s.started).Round(time.Second).String(), Snap: snap}
	if err != nil {
		data.Err = fmt.Sprintf("the broker did not answer: %v", err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pageTmpl.Execute(w, data)
}

// serveStatus serves the broker's status on addr (see httpaddr.Listen) and
// returns the page's URL and a function that stops serving.
func serveStatus(addr string, brokerAddrs []string, dataDir string) (url string, stop func(), err error) {
	s, err := newBrokerStatus(brokerAddrs, dataDir)
	if err != nil {
		return "", nil, err
	}
	ln, err := httpaddr.Listen(addr)
	if err != nil {
		s.close()
		return "", nil, err
	}
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return httpaddr.URL(ln), func() {
		srv.Close()
		s.close()
	}, nil
}
