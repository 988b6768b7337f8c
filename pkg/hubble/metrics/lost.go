package metrics

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

var descLost = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "lost_events_total"),
	"Number of lost events", []string{"source"}, nil)

// lostCollector exports hubble_lost_events_total. Losses are counted where
// they happen (the datapath's ring, the decoder queue, each ring
// follower), by their owners, so this reads them at scrape time rather
// than keeping a second count that could drift; owners that only learn of
// losses as events (a follower told it missed n flows) push them instead.
type lostCollector struct {
	pull map[string]func() (uint64, error) // fixed at New: read without locking

	mu     sync.RWMutex
	pushed map[string]*atomic.Uint64
}

func newLostCollector(pull map[string]func() (uint64, error)) *lostCollector {
	c := &lostCollector{pull: map[string]func() (uint64, error){}, pushed: map[string]*atomic.Uint64{}}
	for src, f := range pull {
		if f != nil {
			c.pull[src] = f
		}
	}
	return c
}

func (c *lostCollector) counter(source string) *atomic.Uint64 {
	c.mu.RLock()
	n := c.pushed[source]
	c.mu.RUnlock()
	if n != nil {
		return n
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n = c.pushed[source]; n == nil {
		n = new(atomic.Uint64)
		c.pushed[source] = n
	}
	return n
}

func (c *lostCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descLost }

func (c *lostCollector) Collect(ch chan<- prometheus.Metric) {
	totals := map[string]float64{}
	failed := map[string]bool{}
	for src, f := range c.pull {
		n, err := f()
		if err != nil {
			// One unreadable source must not hide the others; its series
			// is left out rather than shown without the pulled part,
			// which would look like a counter reset.
			ch <- prometheus.NewInvalidMetric(descLost, err)
			failed[src] = true
			continue
		}
		totals[src] += float64(n)
	}
	c.mu.RLock()
	for src, n := range c.pushed {
		if !failed[src] {
			totals[src] += float64(n.Load())
		}
	}
	c.mu.RUnlock()
	srcs := make([]string, 0, len(totals))
	for src := range totals {
		srcs = append(srcs, src)
	}
	sort.Strings(srcs)
	for _, src := range srcs {
		ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, totals[src], src)
	}
}

// SetLostEvents sets the cumulative count of events lost at source (see
// LostSource*), for owners that keep their own total and push it. If
// Options.LostEvents also reads source, the two are added.
func (p *Processor) SetLostEvents(source string, total uint64) {
	if p == nil {
		return
	}
	p.lost.counter(source).Store(total)
}

// AddLostEvents adds n events lost at source, for owners that learn of
// losses one notice at a time (a flow-ring follower told it missed n).
func (p *Processor) AddLostEvents(source string, n uint64) {
	if p == nil || n == 0 {
		return
	}
	p.lost.counter(source).Add(n)
}
