package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/seta-net/seta/pkg/config"
	"github.com/seta-net/seta/pkg/datapath"
	"github.com/seta-net/seta/pkg/datapath/monitor"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/enforcer"
	"github.com/seta-net/seta/pkg/hubble/container"
	"github.com/seta-net/seta/pkg/hubble/observer"
	"github.com/seta-net/seta/pkg/hubble/parser"
	"github.com/seta-net/seta/pkg/identity"
	"github.com/seta-net/seta/pkg/version"
)

// flowObserver takes every decoded flow (Hubble's flow metrics) and the
// losses of slow observer clients. The flow given to ProcessFlow is valid
// only during the call: its memory is reused for the next event.
type flowObserver interface {
	ProcessFlow(*flowpb.Flow)
	ClientLost(n uint64)
}

// hubble is the flow pipeline of the agent: one goroutine reads datapath
// events, decodes them into flows and writes them into the ring that the
// observer API serves. Nothing in the pipeline waits for an API client.
type hubble struct {
	log    *slog.Logger
	ring   *container.Ring
	rd     *monitor.Reader
	parser *parser.Parser
	met    flowObserver
	lis    *observer.Listener
	node   string

	// rec and scratch are reused for every event by the reading
	// goroutine (handle).
	rec     container.Record
	scratch container.Block

	// decoded counts events turned into flows; decodeErrors those that
	// could not be.
	decoded, decodeErrors atomic.Uint64
	wg                    sync.WaitGroup
}

func startHubble(ctx context.Context, log *slog.Logger, cfg config.Agent, dp *datapath.Datapath, mgr *endpoint.Manager,
	alloc *identity.Allocator, pol *enforcer.Enforcer, met flowObserver) (*hubble, error) {
	log = log.With("subsys", "hubble")
	h := &hubble{log: log, ring: container.NewRing(cfg.HubbleEventBufferCapacity), met: met, node: cfg.NodeName}
	h.parser = parser.New(cfg.NodeName, newEnricher(mgr, alloc, pol))
	srv := observer.New(observer.Options{NodeName: cfg.NodeName, Version: version.String(), Address: "unix://" + cfg.HubbleSocketPath, Ring: h.ring,
		OnClientLost: met.ClientLost})
	lis, err := observer.Listen(srv, cfg.HubbleSocketPath, cfg.HubbleListenAddress)
	if err != nil {
		return nil, err
	}
	rd, err := dp.NewEventReader()
	if err != nil {
		lis.Stop()
		return nil, err
	}
	h.rd, h.lis = rd, lis
	h.wg.Add(3)
	go func() {
		defer h.wg.Done()
		if err := lis.Serve(); err != nil {
			log.Error("Hubble observer API stopped", "error", err)
		}
	}()
	go func() { defer h.wg.Done(); h.readLoop() }()
	go func() { defer h.wg.Done(); h.lostLoop(ctx) }()
	log.Info("Hubble observer API serving", "socket", cfg.HubbleSocketPath, "tcp", cfg.HubbleListenAddress, "capacity", h.ring.Cap())
	return h, nil
}

// readLoop decodes every event into the ring until the reader is closed.
func (h *hubble) readLoop() {
	for {
		ev, err := h.rd.Read()
		if errors.Is(err, monitor.ErrClosed) {
			return
		}
		if err != nil {
			// A malformed sample costs that one event, never the loop.
			if h.decodeErrors.Add(1) == 1 {
				h.log.Warn("Undecodable datapath event (reported once)", "error", err)
			}
			continue
		}
		h.handle(ev)
	}
}

// handle turns one event into a flow: the metrics count it and the ring
// stores it. It allocates nothing: the event is filled into one reused
// record, which the ring copies into a slot, and the metrics see the flow
// built in one reused block. Flows are built to keep only when a client
// reads them (pkg/hubble/container).
func (h *hubble) handle(ev monitor.Event) {
	h.parser.Fill(ev, &h.rec)
	h.met.ProcessFlow(h.rec.BuildInto(&h.scratch))
	h.ring.WriteRecord(&h.rec)
	h.decoded.Add(1)
}

// lostLoop turns growth of the datapath's lost-event counter into lost-event
// notices in the ring, so a client reading flows learns of the gap where it
// happened. Losses from before this agent started are in the metric only.
func (h *hubble) lostLoop(ctx context.Context) {
	last, err := h.rd.Lost()
	if err != nil {
		h.log.Warn("Reading the lost-event counter failed", "error", err)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, err := h.rd.Lost()
		if err != nil || n <= last {
			continue
		}
		now := timestamppb.Now()
		h.ring.Write(&observerpb.GetFlowsResponse{Time: now, NodeName: h.node,
			ResponseTypes: &observerpb.GetFlowsResponse_LostEvents{LostEvents: &flowpb.LostEvent{
				Source: flowpb.LostEventSource_PERF_EVENT_RING_BUFFER, NumEventsLost: n - last, Last: now,
			}}})
		h.log.Warn("Datapath events lost: the event ring was full", "lost", n-last)
		last = n
	}
}

// Stop stops the API and the pipeline.
func (h *hubble) Stop() {
	h.lis.Stop()
	h.rd.Close()
	h.wg.Wait()
}

// enricher answers the parser's lookups from the agent's state. Lookups
// happen for every event, so it keeps maps that it rebuilds only when the
// endpoints or identities changed, and in front of them small
// direct-mapped tables of the last answers, valid while the endpoints'
// and identities' generations are those they were taken at. What it
// returns is stored in flows and never modified. Lookups come from the one
// decoding goroutine; the tables are that goroutine's alone.
type enricher struct {
	alloc *identity.Allocator
	pol   *enforcer.Enforcer

	// byIP finds a local endpoint (the manager's AddrCache); epGen is the
	// manager's generation, which changes with its endpoints.
	byIP  func(netip.Addr) (*endpoint.Endpoint, bool)
	epGen func() uint64
	// idGen counts the allocator's changes.
	idGen atomic.Uint64

	mu     sync.Mutex
	ids    map[uint32][]string
	idsGen uint64 // idGen when ids was last cleared
	// rules caches the enforcer's rule names by cookie. The enforcer
	// gives a cookie its names when it first uses it and never changes
	// them, so a known cookie's names stay right; an unknown cookie (none
	// yet) is asked again each time.
	rules map[uint32][]string

	recentEPs [64]recentEP
	recentIDs [64]recentID
}

type recentEP struct {
	addr netip.Addr
	gen  uint64
	ep   parser.Endpoint
	ok   bool
	set  bool
}

type recentID struct {
	id     uint32
	gen    uint64
	labels []string
	ok     bool
	set    bool
}

func newEnricher(mgr *endpoint.Manager, alloc *identity.Allocator, pol *enforcer.Enforcer) *enricher {
	e := &enricher{byIP: endpoint.NewAddrCache(mgr).Lookup, epGen: mgr.Generation, alloc: alloc, pol: pol,
		ids: map[uint32][]string{}, rules: map[uint32][]string{}}
	alloc.OnChange(func() { e.idGen.Add(1) })
	return e
}

func (e *enricher) EndpointByIP(addr netip.Addr) (parser.Endpoint, bool) {
	gen := e.epGen() // before the lookup: a change during it invalidates the answer
	r := &e.recentEPs[parser.AddrSlot(addr, len(e.recentEPs))]
	if r.set && r.addr == addr && r.gen == gen {
		return r.ep, r.ok
	}
	var out parser.Endpoint
	ep, ok := e.byIP(addr)
	if ok {
		out = parser.Endpoint{ID: ep.ID, Namespace: ep.Namespace, PodName: ep.PodName}
	}
	*r = recentEP{addr: addr, gen: gen, ep: out, ok: ok, set: true}
	return out, ok
}

func (e *enricher) IdentityLabels(id uint32) ([]string, bool) {
	gen := e.idGen.Load()
	r := &e.recentIDs[id%uint32(len(e.recentIDs))]
	if r.set && r.id == id && r.gen == gen {
		return r.labels, r.ok
	}
	ls, ok := e.identityLabels(id, gen)
	*r = recentID{id: id, gen: gen, labels: ls, ok: ok, set: true}
	return ls, ok
}

func (e *enricher) identityLabels(id uint32, gen uint64) ([]string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.idsGen != gen {
		clear(e.ids)
		e.idsGen = gen
	}
	if ls, ok := e.ids[id]; ok {
		return ls, ls != nil
	}
	ident, ok := e.alloc.Get(identity.ID(id))
	if !ok {
		e.ids[id] = nil
		return nil, false
	}
	e.ids[id] = ident.LabelStrings
	return ident.LabelStrings, true
}

func (e *enricher) RulesOf(cookie uint32) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if names, ok := e.rules[cookie]; ok {
		return names
	}
	names := e.pol.RulesOf(cookie)
	if len(names) > 0 {
		e.rules[cookie] = names
	}
	return names
}
