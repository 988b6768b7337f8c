package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/seta-net/seta/pkg/datapath/bpf"
	"github.com/seta-net/seta/pkg/datapath/monitor"
	"github.com/seta-net/seta/pkg/hubble/container"
	hubblemetrics "github.com/seta-net/seta/pkg/hubble/metrics"
	"github.com/seta-net/seta/pkg/hubble/parser"
)

// The decoder measurement runs in a child process (this binary with
// --decode-child) started under taskset, so the whole process (every
// runtime thread) is on one CPU and GOMAXPROCS is 1, while the lab's agent,
// started later by the parent, keeps both cores.

// decodeResult is what the child reports, as JSON.
type decodeResult struct {
	CPUs   []int       `json:"cpus"`   // the child's affinity
	Mix    mixCounts   `json:"mix"`    // events per type in the sample set
	Runs   []decodeRun `json:"runs"`   // one per measured run
	Errors uint64      `json:"errors"` // decode errors (must be 0)
}

type mixCounts struct {
	Trace, Drop, Verdict, World int
}

type decodeRun struct {
	Events       int     `json:"events"`
	Seconds      float64 `json:"seconds"`
	PerSec       float64 `json:"perSec"`
	AllocsPerEv  float64 `json:"allocsPerEvent"`
	BytesPerEv   float64 `json:"bytesPerEvent"`
	GCs          uint32  `json:"gcs"`
	GCPauseTotal float64 `json:"gcPauseMs"`
}

// mirrorGetters answers the parser's lookups with the same work per call as
// the agent's enricher (pkg/daemon/hubble.go): a mutex, the endpoint
// generation check and a map lookup by address; a mutex, the identity
// dirty flag and a map lookup by identity; and the rule names of a cookie
// (a mutex and a map lookup: the enricher keeps the enforcer's answers,
// which never change for a cookie). pkg/daemon's BenchmarkFlowPipeline
// runs the real enricher for comparison.
type mirrorGetters struct {
	mu     sync.Mutex
	gen    atomic.Uint64 // stands in for endpoint.Manager.Generation
	epGen  uint64
	byAddr map[netip.Addr]parser.Endpoint
	eps    map[netip.Addr]parser.Endpoint // the "manager's" list

	idDirty atomic.Bool
	ids     map[uint32][]string
	allocID map[uint32][]string // the "allocator"

	polMu   sync.Mutex
	cookies map[uint32][]string
}

func (m *mirrorGetters) EndpointByIP(addr netip.Addr) (parser.Endpoint, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if g := m.gen.Load(); g != m.epGen {
		m.byAddr = map[netip.Addr]parser.Endpoint{}
		for a, ep := range m.eps {
			m.byAddr[a] = ep
		}
		m.epGen = g
	}
	ep, ok := m.byAddr[addr]
	return ep, ok
}

func (m *mirrorGetters) IdentityLabels(id uint32) ([]string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.idDirty.Swap(false) {
		clear(m.ids)
	}
	if ls, ok := m.ids[id]; ok {
		return ls, ls != nil
	}
	ls, ok := m.allocID[id]
	if !ok {
		m.ids[id] = nil
		return nil, false
	}
	ls = slices.Clone(ls) // the allocator hands out a copy
	m.ids[id] = ls
	return ls, true
}

func (m *mirrorGetters) RulesOf(cookie uint32) []string {
	m.polMu.Lock()
	defer m.polMu.Unlock()
	return m.cookies[cookie]
}

// The simulated node: 32 local endpoints in 10.244.1.0/24, 12 workload
// identities (several endpoints share one), the host, and the world.
const (
	nEndpoints  = 32
	nIdentities = 12
)

func epAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 244, 1, byte(10 + i)}) }
func epIdentity(i int) uint32 { return 256 + uint32(i%nIdentities) }

var apps = []string{"web", "api", "db", "cache", "queue", "auth", "search", "billing", "mail", "report", "gateway", "worker"}

func newMirror() *mirrorGetters {
	m := &mirrorGetters{eps: map[netip.Addr]parser.Endpoint{}, ids: map[uint32][]string{}, allocID: map[uint32][]string{},
		cookies: map[uint32][]string{}}
	m.epGen = ^uint64(0)
	for i := 0; i < nEndpoints; i++ {
		app := apps[i%nIdentities]
		m.eps[epAddr(i)] = parser.Endpoint{ID: uint16(100 + i), Namespace: "default", PodName: fmt.Sprintf("%s-%d", app, i/nIdentities)}
	}
	for i := 0; i < nIdentities; i++ {
		m.allocID[epIdentity(i)] = []string{"k8s:app=" + apps[i], "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default",
			"k8s:io.kubernetes.pod.namespace=default"}
	}
	m.allocID[1] = []string{"reserved:host"}
	m.allocID[2] = []string{"reserved:world"}
	for c := uint32(1); c <= 8; c++ {
		m.cookies[c] = []string{fmt.Sprintf("CiliumNetworkPolicy/default/%s-policy", apps[c])}
	}
	return m
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

var servicePorts = []uint16{80, 443, 8080, 5432, 6379, 7000, 9090, 3306}

// tcpFlagSets are the flag bytes of traced packets: what medium
// aggregation lets through (first SYN, SYN-ACK, ACK, FIN, RST per
// direction, and the periodic report of an established connection).
var tcpFlagSets = []uint8{0x02, 0x12, 0x10, 0x18, 0x11, 0x10, 0x04, 0x18}

// buildSamples returns n raw ring samples: about 70% traces of TCP between
// the local endpoints, 20% drops (policy denied without a rule, denied by
// a deny rule with its cookie, invalid source, unroutable; some to the
// world), 10% allowed policy verdicts with their cookies.
func buildSamples(n int, seed uint64) ([][]byte, mixCounts) {
	rng := rand.New(rand.NewPCG(seed, 42))
	var mix mixCounts
	out := make([][]byte, 0, n)
	ts := uint64(4000 * time.Second)
	for len(out) < n {
		ts += uint64(rng.IntN(20000))
		a, b := rng.IntN(nEndpoints), rng.IntN(nEndpoints)
		if a == b {
			b = (a + 1) % nEndpoints
		}
		sport, dport := uint16(32768+rng.IntN(28000)), servicePorts[rng.IntN(len(servicePorts))]
		ev := bpf.LxcDatapathEvent{Timestamp: ts, Len: uint32(54 + rng.IntN(1400)), Ifindex: uint32(10 + rng.IntN(40))}
		ev.Tuple.Family = uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV4)
		ev.Tuple.Proto = 6
		src, dst := epAddr(a), epAddr(b)
		srcID, dstID := epIdentity(a), epIdentity(b)
		flags := tcpFlagSets[rng.IntN(len(tcpFlagSets))]
		switch r := rng.IntN(100); {
		case r < 70: // trace
			mix.Trace++
			ev.Type = uint8(bpf.LxcEventTypeEVENT_TRACE)
			reason := uint8(bpf.LxcTraceReasonTRACE_REASON_CT_ESTABLISHED)
			switch {
			case flags == 0x02:
				reason = uint8(bpf.LxcTraceReasonTRACE_REASON_POLICY) // a new connection
			case flags == 0x12 || rng.IntN(2) == 0:
				reason = uint8(bpf.LxcTraceReasonTRACE_REASON_CT_REPLY)
			}
			if reason == uint8(bpf.LxcTraceReasonTRACE_REASON_CT_REPLY) {
				// The answer: from the server's port back to the client.
				src, dst, srcID, dstID = dst, src, dstID, srcID
				sport, dport = dport, sport
			}
			ev.Reason = reason
			if rng.IntN(2) == 0 {
				ev.ObsPoint, ev.Dir, ev.EpId = uint8(bpf.LxcTracePointTRACE_TO_LXC), uint8(bpf.LxcTrafficDirDIR_INGRESS), uint16(100+b)
			} else {
				ev.ObsPoint, ev.Dir, ev.EpId = uint8(bpf.LxcTracePointTRACE_TO_STACK), uint8(bpf.LxcTrafficDirDIR_EGRESS), uint16(100+a)
			}
			ev.TcpFlags = flags
		case r < 90: // drop
			mix.Drop++
			ev.Type = uint8(bpf.LxcEventTypeEVENT_DROP)
			ev.Dir, ev.EpId = uint8(bpf.LxcTrafficDirDIR_INGRESS), uint16(100+b)
			ev.TcpFlags = 0x02
			switch d := rng.IntN(20); {
			case d < 10: // no rule allows it
				ev.Reason, ev.MatchType = uint8(bpf.LxcDropReasonDROP_POLICY), uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_NONE)
			case d < 15: // a deny rule
				ev.Reason, ev.MatchType = uint8(bpf.LxcDropReasonDROP_POLICY_DENY), uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_L3L4)
				ev.Cookie = uint32(1 + rng.IntN(8))
			case d < 18: // egress to the world, denied
				mix.World++
				ev.Reason, ev.MatchType = uint8(bpf.LxcDropReasonDROP_POLICY_DENY), uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_L3ONLY)
				ev.Cookie = uint32(1 + rng.IntN(8))
				ev.Dir, ev.EpId = uint8(bpf.LxcTrafficDirDIR_EGRESS), uint16(100+a)
				dst, dstID = netip.AddrFrom4([4]byte{93, 184, byte(rng.IntN(256)), byte(rng.IntN(256))}), 2
			case d < 19:
				ev.Reason = uint8(bpf.LxcDropReasonDROP_INVALID_SOURCE_IP)
				ev.Dir, ev.EpId = uint8(bpf.LxcTrafficDirDIR_EGRESS), uint16(100+a)
			default:
				ev.Reason = uint8(bpf.LxcDropReasonDROP_UNROUTABLE)
				ev.Dir, ev.EpId = uint8(bpf.LxcTrafficDirDIR_EGRESS), uint16(100+a)
			}
			if rng.IntN(4) == 0 {
				ev.Tuple.Proto, ev.TcpFlags = 17, 0
			}
		default: // allowed verdict for a new connection
			mix.Verdict++
			ev.Type = uint8(bpf.LxcEventTypeEVENT_POLICY_VERDICT)
			ev.MatchType = []uint8{uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_L3L4), uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_L3ONLY),
				uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_ALL)}[rng.IntN(3)]
			ev.Cookie = uint32(1 + rng.IntN(8))
			ev.TcpFlags = 0x02
			if rng.IntN(2) == 0 {
				ev.Dir, ev.EpId = uint8(bpf.LxcTrafficDirDIR_INGRESS), uint16(100+b)
			} else {
				ev.Dir, ev.EpId = uint8(bpf.LxcTrafficDirDIR_EGRESS), uint16(100+a)
			}
		}
		ev.SrcIdentity, ev.DstIdentity = srcID, dstID
		copy(ev.Tuple.Saddr[:], src.AsSlice())
		copy(ev.Tuple.Daddr[:], dst.AsSlice())
		ev.Tuple.Sport, ev.Tuple.Dport = htons(sport), htons(dport)
		ev.L4Port = htons(dport)
		var buf bytes.Buffer
		if err := binary.Write(&buf, binary.NativeEndian, &ev); err != nil {
			panic(err)
		}
		out = append(out, buf.Bytes())
	}
	return out, mix
}

// pipeline is the agent's per-event work (pkg/daemon/hubble.go handle):
// the ring reader's copy of the sample, monitor.Decode, parser.Fill with
// the enricher into a reused record, the Hubble flow metrics on the flow
// built in a reused block, the flow ring.
type pipeline struct {
	boot    time.Time
	parser  *parser.Parser
	met     *hubblemetrics.Processor
	ring    *container.Ring
	rec     container.Record
	scratch container.Block
	decoded atomic.Uint64
	errs    atomic.Uint64
}

func newPipeline() (*pipeline, error) {
	met, err := hubblemetrics.New(prometheus.NewRegistry(), hubblemetrics.Options{
		Metrics: []string{"drop,tcp,flow,port-distribution,icmp,policy,flows-to-world"},
	})
	if err != nil {
		return nil, err
	}
	return &pipeline{boot: time.Now().Add(-time.Hour), parser: parser.New("node1", newMirror()), met: met,
		ring: container.NewRing(container.DefaultCapacity)}, nil
}

func (p *pipeline) run(samples [][]byte, n int) {
	var raw []byte
	for i := 0; i < n; i++ {
		s := samples[i%len(samples)]
		// The agent's reader copies every sample out of the ring into
		// one reused record (ringbuf.Reader.ReadInto).
		raw = append(raw[:0], s...)
		ev, err := monitor.Decode(raw, p.boot)
		if err != nil {
			p.errs.Add(1)
			continue
		}
		p.parser.Fill(ev, &p.rec)
		p.met.ProcessFlow(p.rec.BuildInto(&p.scratch))
		p.ring.WriteRecord(&p.rec)
		p.decoded.Add(1)
	}
}

// decodeChild is the child process: it measures and prints JSON.
func decodeChild(events, runs int, profile string) int {
	runtime.GOMAXPROCS(1)
	var set unix.CPUSet
	res := decodeResult{}
	if err := unix.SchedGetaffinity(0, &set); err == nil {
		for c := 0; c < 1024; c++ {
			if set.IsSet(c) {
				res.CPUs = append(res.CPUs, c)
			}
		}
	}
	samples, mix := buildSamples(8192, 1)
	res.Mix = mix
	p, err := newPipeline()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Warm up: every label combination seen once, the ring full, the heap
	// at its steady size.
	p.run(samples, 200_000)
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	for r := 0; r < runs; r++ {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		t0 := time.Now()
		p.run(samples, events)
		d := time.Since(t0)
		runtime.ReadMemStats(&m1)
		res.Runs = append(res.Runs, decodeRun{
			Events: events, Seconds: d.Seconds(), PerSec: float64(events) / d.Seconds(),
			AllocsPerEv: float64(m1.Mallocs-m0.Mallocs) / float64(events),
			BytesPerEv:  float64(m1.TotalAlloc-m0.TotalAlloc) / float64(events),
			GCs:         m1.NumGC - m0.NumGC, GCPauseTotal: float64(m1.PauseTotalNs-m0.PauseTotalNs) / 1e6,
		})
	}
	res.Errors = p.errs.Load()
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}
