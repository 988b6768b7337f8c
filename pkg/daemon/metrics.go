package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	hubblemetrics "github.com/seta-net/seta/pkg/hubble/metrics"

	"github.com/seta-net/seta/pkg/datapath"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/enforcer"
	"github.com/seta-net/seta/pkg/identity"
	"github.com/seta-net/seta/pkg/metrics"
)

// lateMetrics lets the policy, API and flow code observe into a registry
// whose scrape-time sources exist only later.
type lateMetrics struct {
	m *metrics.Metrics
	// flows is read on the flow decoder's goroutine.
	flows atomic.Pointer[hubblemetrics.Processor]
}

func newMetrics() *lateMetrics { return &lateMetrics{} }

func (l *lateMetrics) ObserveRegeneration(d time.Duration, err error) {
	if l.m != nil {
		l.m.ObserveRegeneration(d, err)
	}
}

// ProcessFlow feeds a decoded flow to the Hubble flow metrics (none until
// they are registered).
func (l *lateMetrics) ProcessFlow(f *flowpb.Flow) { l.flows.Load().ProcessFlow(f) }

// ClientLost counts flows an observer client missed by reading too slowly.
func (l *lateMetrics) ClientLost(n uint64) {
	l.flows.Load().AddLostEvents(hubblemetrics.LostSourceHubbleRing, n)
}

func (l *lateMetrics) ObserveAPI(route, method string, code int, d time.Duration) {
	if l.m != nil {
		l.m.ObserveAPI(route, method, code, d)
	}
}

// serveMetrics registers the agent's metrics and serves them on addr.
func serveMetrics(log *slog.Logger, addr string, hubbleMetrics []string, late *lateMetrics, mgr *endpoint.Manager, alloc *identity.Allocator,
	pol *enforcer.Enforcer, dp *datapath.Datapath) (func(), error) {
	late.m = metrics.New(metrics.Source{
		EndpointsByState: func() map[string]int {
			out := map[string]int{}
			for _, ep := range mgr.List() {
				out[string(ep.State)]++
			}
			return out
		},
		Identities: func() map[string]int {
			out := map[string]int{"reserved": 0, "allocated": 0, "cidr": 0}
			for _, id := range alloc.List() {
				switch {
				case id.ID.IsReserved():
					out["reserved"]++
				case id.ID.IsLocal():
					out["cidr"]++
				default:
					out["allocated"]++
				}
			}
			return out
		},
		Policy: func() metrics.PolicyCounts {
			st := pol.Stats()
			return metrics.PolicyCounts{Revision: pol.Revision(), Policies: len(pol.Policies()),
				Imports: st.Imports, ImportErrors: st.ImportErrors, RefusedTooLarge: st.TooLarge}
		},
		Datapath: func() ([]metrics.DatapathCounter, error) {
			m, err := dp.Metrics()
			if err != nil {
				return nil, err
			}
			var out []metrics.DatapathCounter
			for k, v := range m {
				out = append(out, metrics.DatapathCounter{Reason: k.Reason.String(), Code: uint8(k.Reason),
					Direction: k.Direction, Packets: v.Packets, Bytes: v.Bytes})
			}
			return out, nil
		},
		EventsLost: dp.EventsLost,
		Maps: func() ([]metrics.MapUsage, error) {
			us, err := dp.MapUsage()
			out := make([]metrics.MapUsage, 0, len(us))
			for _, u := range us {
				out = append(out, metrics.MapUsage{Name: u.Name, Entries: u.Entries, Max: u.Max})
			}
			return out, err
		},
	})
	// Hubble's flow metrics share the registry; lost events are always
	// exported, the flow families only as --hubble-metrics asks.
	flows, err := hubblemetrics.New(late.m.Registry, hubblemetrics.Options{
		Metrics:    hubbleMetrics,
		LostEvents: map[string]func() (uint64, error){hubblemetrics.LostSourcePerfRing: dp.EventsLost},
	})
	if err != nil {
		return nil, err
	}
	late.flows.Store(flows)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", late.m.Handler())
	log.Info("Serving Prometheus metrics", "addr", ln.Addr().String())
	return serveHTTP(log, "metrics", ln, mux), nil
}
