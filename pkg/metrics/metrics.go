// Package metrics exposes the agent's Prometheus metrics. Most are read at
// scrape time from the owners of the state (the endpoint manager, the
// identity allocator, the enforcer, the datapath's counters), so nothing is
// counted twice and a scrape always sees current values; the rest
// (regeneration time, API latency) are observed where they happen.
//
// It must not import cilium/ebpf: the datapath is reached through Source.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name.
const Namespace = "seta"

// DatapathCounter is one node-wide datapath counter: forwarded (Reason
// "Forwarded", code 0) or dropped for a reason, in a direction.
type DatapathCounter struct {
	Reason    string
	Code      uint8
	Direction string
	Packets   uint64
	Bytes     uint64
}

// MapUsage is how full a BPF map is.
type MapUsage struct {
	Name    string
	Entries int
	Max     int
}

// Source is where scrape-time values come from; each function may be nil.
type Source struct {
	EndpointsByState func() map[string]int
	Identities       func() map[string]int // by kind: reserved, allocated, cidr
	Policy           func() PolicyCounts
	Datapath         func() ([]DatapathCounter, error)
	Maps             func() ([]MapUsage, error)
	EventsLost       func() (uint64, error)
}

// PolicyCounts are the enforcer's counters.
type PolicyCounts struct {
	Revision        uint64
	Policies        int
	Imports         int
	ImportErrors    int
	RefusedTooLarge int
}

// Metrics is the agent's registry and the metrics observed as they happen.
type Metrics struct {
	Registry     *prometheus.Registry
	Regeneration *prometheus.HistogramVec
	APILatency   *prometheus.HistogramVec
}

// New registers every metric.
func New(src Source) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Regeneration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "endpoint_regeneration_time_seconds",
			Help:    "Time to compute and write an endpoint's policy, by outcome.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}, []string{"outcome"}),
		APILatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "api_request_duration_seconds",
			Help:    "Agent API requests by route, method and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method", "code"}),
	}
	m.Registry.MustRegister(m.Regeneration, m.APILatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&scrapeCollector{src: src})
	return m
}

// Handler serves the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ObserveRegeneration records one endpoint regeneration.
func (m *Metrics) ObserveRegeneration(d time.Duration, err error) {
	outcome := "success"
	if err != nil {
		outcome = "failure"
	}
	m.Regeneration.WithLabelValues(outcome).Observe(d.Seconds())
}

// ObserveAPI records one API request; route is the matched pattern.
func (m *Metrics) ObserveAPI(route, method string, code int, d time.Duration) {
	m.APILatency.WithLabelValues(route, method, strconv.Itoa(code)).Observe(d.Seconds())
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

var (
	descEndpoints   = desc("endpoint_state", "Endpoints by state.", "endpoint_state")
	descIdentities  = desc("identity", "Security identities by kind (reserved, allocated, cidr).", "type")
	descPolicies    = desc("policy", "Imported policies.")
	descRevision    = desc("policy_max_revision", "Revision of the policy repository.")
	descImports     = desc("policy_change_total", "Policy changes (imports and deletes) by outcome.", "outcome")
	descForwardPkts = desc("forward_count_total", "Packets forwarded by the datapath, by direction.", "direction")
	descForwardB    = desc("forward_bytes_total", "Bytes forwarded by the datapath, by direction.", "direction")
	descDropPkts    = desc("drop_count_total", "Packets dropped by the datapath, by reason and direction.", "reason", "direction")
	descDropB       = desc("drop_bytes_total", "Bytes dropped by the datapath, by reason and direction.", "reason", "direction")
	descMapPressure = desc("bpf_map_pressure", "Fill level of a BPF map, from 0 to 1.", "map_name")
	descMapEntries  = desc("bpf_map_entries", "Entries in a BPF map.", "map_name")
	descEventsLost  = desc("datapath_events_lost_total", "Datapath events (drops, policy verdicts, traces) lost because the event ring was full.")
)

// scrapeCollector reads the Source on every scrape.
type scrapeCollector struct{ src Source }

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEndpoints, descIdentities, descPolicies, descRevision, descImports,
		descForwardPkts, descForwardB, descDropPkts, descDropB, descMapPressure, descMapEntries, descEventsLost} {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	if f := c.src.EndpointsByState; f != nil {
		for state, n := range f() {
			gauge(descEndpoints, float64(n), state)
		}
	}
	if f := c.src.Identities; f != nil {
		for kind, n := range f() {
			gauge(descIdentities, float64(n), kind)
		}
	}
	if f := c.src.Policy; f != nil {
		p := f()
		gauge(descPolicies, float64(p.Policies))
		gauge(descRevision, float64(p.Revision))
		counter(descImports, float64(p.Imports), "success")
		counter(descImports, float64(p.ImportErrors-p.RefusedTooLarge), "error")
		counter(descImports, float64(p.RefusedTooLarge), "too_large")
	}
	if f := c.src.Datapath; f != nil {
		cs, err := f()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descDropPkts, err)
		}
		for _, d := range cs {
			if d.Code == 0 {
				counter(descForwardPkts, float64(d.Packets), d.Direction)
				counter(descForwardB, float64(d.Bytes), d.Direction)
				continue
			}
			counter(descDropPkts, float64(d.Packets), d.Reason, d.Direction)
			counter(descDropB, float64(d.Bytes), d.Reason, d.Direction)
		}
	}
	if f := c.src.EventsLost; f != nil {
		n, err := f()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descEventsLost, err)
		} else {
			counter(descEventsLost, float64(n))
		}
	}
	if f := c.src.Maps; f != nil {
		us, err := f()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descMapPressure, err)
		}
		for _, u := range us {
			gauge(descMapEntries, float64(u.Entries), u.Name)
			if u.Max > 0 {
				gauge(descMapPressure, float64(u.Entries)/float64(u.Max), u.Name)
			}
		}
	}
}
