package daemon

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seta-net/seta/pkg/datapath/bpf"
	"github.com/seta-net/seta/pkg/datapath/monitor"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/enforcer"
	"github.com/seta-net/seta/pkg/hubble/container"
	hubblemetrics "github.com/seta-net/seta/pkg/hubble/metrics"
	"github.com/seta-net/seta/pkg/hubble/parser"
	"github.com/seta-net/seta/pkg/identity"
	"github.com/seta-net/seta/pkg/policy"
	"github.com/seta-net/seta/pkg/policy/api"
)

// nopDP is a datapath that accepts every write.
type nopDP struct{}

func (nopDP) WritePolicy(uint16, policy.Update) error                      { return nil }
func (nopDP) SetPolicyOpen(uint16, bool, bool) error                       { return nil }
func (nopDP) PolicyState() (map[uint16]map[policy.Key]policy.Value, error) { return nil, nil }
func (nopDP) SyncIPCache(map[netip.Prefix]uint32) error                    { return nil }
func (nopDP) UpdateEndpoint(*endpoint.Endpoint) error                      { return nil }
func (nopDP) NodeAddrs() ([]netip.Addr, error)                             { return nil, nil }
func (nopDP) PolicyCapacity() int                                          { return 1 << 20 }

var benchApps = []string{"web", "api", "db", "cache", "queue", "auth", "search", "billing", "mail", "report", "gateway", "worker"}

// benchNode is a node's agent state for the flow pipeline: 32 endpoints
// with identities from the real allocator, policies with cookies from the
// real enforcer, and the agent's enricher over them.
func benchNode(b testing.TB) (*enricher, []*endpoint.Endpoint, []uint32) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	alloc, err := identity.NewAllocator(identity.Options{})
	if err != nil {
		b.Fatal(err)
	}
	pol, err := enforcer.New(log, enforcer.Config{Mode: policy.ModeDefault, AllowLocalhost: true}, alloc, nopDP{})
	if err != nil {
		b.Fatal(err)
	}
	var y strings.Builder
	for i, app := range benchApps {
		fmt.Fprintf(&y, "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: %s-policy, namespace: default}\nspec:\n  endpointSelector: {matchLabels: {app: %s}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: %s}}]\n    toPorts: [{ports: [{port: \"80\", protocol: TCP}]}]\n  - fromEndpoints: [{matchLabels: {app: %s}}]\n  ingressDeny:\n  - fromEndpoints: [{matchLabels: {app: %s}}]\n",
			app, app, benchApps[(i+1)%len(benchApps)], benchApps[(i+2)%len(benchApps)], benchApps[(i+3)%len(benchApps)])
	}
	ps, err := api.Parse([]byte(y.String()), "bench")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pol.Import(ps); err != nil {
		b.Fatal(err)
	}
	var eps []*endpoint.Endpoint
	for i := 0; i < 32; i++ {
		app := benchApps[i%len(benchApps)]
		ep := &endpoint.Endpoint{ID: uint16(100 + i), Namespace: "default", PodName: fmt.Sprintf("%s-%d", app, i/len(benchApps)),
			Labels: []string{"app=" + app}, IPv4: netip.AddrFrom4([4]byte{10, 244, 1, byte(10 + i)})}
		if err := pol.Prepare(ep); err != nil {
			b.Fatal(err)
		}
		eps = append(eps, ep)
	}
	var cookies []uint32
	for c := uint32(1); c < 1000; c++ {
		if len(pol.RulesOf(c)) > 0 {
			cookies = append(cookies, c)
		}
	}
	if len(cookies) == 0 {
		b.Fatal("the enforcer made no cookies")
	}
	mgr := endpoint.NewManager(log, endpoint.Config{}, nil, nil, nil)
	e := newEnricher(mgr, alloc, pol)
	// What the manager's AddrCache holds once the endpoints exist: a map
	// lookup.
	byAddr := map[netip.Addr]*endpoint.Endpoint{}
	for _, ep := range eps {
		byAddr[ep.IPv4] = ep
	}
	e.byIP = func(a netip.Addr) (*endpoint.Endpoint, bool) { ep, ok := byAddr[a]; return ep, ok }
	return e, eps, cookies
}

func benchHtons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// benchSamples is the mix of bench/hubble: 70% TCP traces between the
// endpoints, 20% drops (policy, deny rules with cookies, some to the
// world), 10% allowed verdicts with cookies.
func benchSamples(b testing.TB, eps []*endpoint.Endpoint, cookies []uint32) [][]byte {
	rng := rand.New(rand.NewPCG(1, 42))
	ports := []uint16{80, 443, 8080, 5432, 6379, 7000, 9090, 3306}
	flagSets := []uint8{0x02, 0x12, 0x10, 0x18, 0x11, 0x10, 0x04, 0x18}
	var out [][]byte
	for len(out) < 8192 {
		a, c := eps[rng.IntN(len(eps))], eps[rng.IntN(len(eps))]
		ev := bpf.LxcDatapathEvent{Timestamp: uint64(4000*time.Second) + uint64(len(out))*5000, Len: uint32(54 + rng.IntN(1400)),
			Ifindex: uint32(10 + rng.IntN(40)), SrcIdentity: a.Identity, DstIdentity: c.Identity, TcpFlags: flagSets[rng.IntN(len(flagSets))]}
		ev.Tuple.Family, ev.Tuple.Proto = uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV4), 6
		src, dst := a.IPv4, c.IPv4
		dport := ports[rng.IntN(len(ports))]
		switch r := rng.IntN(100); {
		case r < 70:
			ev.Type, ev.Reason = uint8(bpf.LxcEventTypeEVENT_TRACE), uint8(rng.IntN(3))
			ev.ObsPoint, ev.Dir, ev.EpId = uint8(bpf.LxcTracePointTRACE_TO_LXC), uint8(bpf.LxcTrafficDirDIR_INGRESS), c.ID
			if rng.IntN(2) == 0 {
				ev.ObsPoint, ev.Dir, ev.EpId = uint8(bpf.LxcTracePointTRACE_TO_STACK), uint8(bpf.LxcTrafficDirDIR_EGRESS), a.ID
			}
		case r < 90:
			ev.Type, ev.Dir, ev.EpId, ev.TcpFlags = uint8(bpf.LxcEventTypeEVENT_DROP), uint8(bpf.LxcTrafficDirDIR_INGRESS), c.ID, 0x02
			ev.Reason = uint8(bpf.LxcDropReasonDROP_POLICY)
			if rng.IntN(2) == 0 {
				ev.Reason, ev.Cookie, ev.MatchType = uint8(bpf.LxcDropReasonDROP_POLICY_DENY), cookies[rng.IntN(len(cookies))], 1
			}
			if rng.IntN(7) == 0 {
				dst, ev.DstIdentity, ev.Dir, ev.EpId = netip.AddrFrom4([4]byte{93, 184, 1, byte(rng.IntN(256))}), 2, uint8(bpf.LxcTrafficDirDIR_EGRESS), a.ID
			}
		default:
			ev.Type, ev.Cookie, ev.MatchType, ev.TcpFlags = uint8(bpf.LxcEventTypeEVENT_POLICY_VERDICT), cookies[rng.IntN(len(cookies))], 2, 0x02
			ev.Dir, ev.EpId = uint8(bpf.LxcTrafficDirDIR_INGRESS), c.ID
		}
		copy(ev.Tuple.Saddr[:], src.AsSlice())
		copy(ev.Tuple.Daddr[:], dst.AsSlice())
		ev.Tuple.Sport, ev.Tuple.Dport, ev.L4Port = benchHtons(uint16(32768+rng.IntN(28000))), benchHtons(dport), benchHtons(dport)
		var buf bytes.Buffer
		if err := binary.Write(&buf, binary.NativeEndian, &ev); err != nil {
			b.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

// pipelineNode is the agent's flow pipeline (hubble.handle) over benchNode,
// with every Hubble metric family, and step, which feeds it sample i as the
// reader does: copied out of the ring into one reused buffer, then
// monitor.Decode.
func pipelineNode(tb testing.TB) (h *hubble, step func(i int)) {
	e, eps, cookies := benchNode(tb)
	samples := benchSamples(tb, eps, cookies)
	met, err := hubblemetrics.New(prometheus.NewRegistry(), hubblemetrics.Options{
		Metrics: []string{"drop,tcp,flow,port-distribution,icmp,policy,flows-to-world"}})
	if err != nil {
		tb.Fatal(err)
	}
	h = &hubble{ring: container.NewRing(container.DefaultCapacity), parser: parser.New("node1", e), met: lateOf(met)}
	boot := time.Now()
	var raw []byte
	return h, func(i int) {
		raw = append(raw[:0], samples[i%len(samples)]...)
		ev, err := monitor.Decode(raw, boot)
		if err != nil {
			tb.Fatal(err)
		}
		h.handle(ev)
	}
}

// BenchmarkFlowPipeline is the agent's per-event work in readLoop, with
// the agent's own enricher over a real allocator and enforcer: the ring
// reader's copy of the sample, monitor.Decode, parser.Fill, the Hubble
// flow metrics (every family), the flow ring. One op is one event.
//
//	go test -run - -bench FlowPipeline -benchmem -cpu 1 ./pkg/daemon
func BenchmarkFlowPipeline(b *testing.B) {
	_, step := pipelineNode(b)
	for i := 0; i < 100_000; i++ { // warm the label caches and fill the ring
		step(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		step(i)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// Once its caches are warm, the agent's pipeline allocates nothing per
// event, with every metric family on and the agent's own enricher: the
// garbage collector has nothing to do, however many events arrive.
func TestFlowPipelineAllocations(t *testing.T) {
	h, step := pipelineNode(t)
	for i := 0; i < 20_000; i++ {
		step(i)
	}
	i := 0
	if n := testing.AllocsPerRun(20_000, func() { step(i); i++ }); n != 0 {
		t.Errorf("the flow pipeline costs %.3f allocations per event, want 0", n)
	}
	if h.ring.Seen() != h.decoded.Load() || h.ring.Len() != h.ring.Cap() {
		t.Errorf("ring: seen %d of %d decoded, %d of %d slots", h.ring.Seen(), h.decoded.Load(), h.ring.Len(), h.ring.Cap())
	}
}

// lateOf wraps a processor as the agent's lateMetrics does.
func lateOf(p *hubblemetrics.Processor) *lateMetrics {
	l := newMetrics()
	l.flows.Store(p)
	return l
}
