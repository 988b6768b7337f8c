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
// losses of slow observer clients.
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
		f := h.parser.Decode(ev)
		h.met.ProcessFlow(f)
		h.ring.WriteFlow(f)
		h.decoded.Add(1)
	}
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
// endpoints or identities changed.
type enricher struct {
	alloc *identity.Allocator
	pol   *enforcer.Enforcer

	// byIP finds a local endpoint (the manager's AddrCache).
	byIP    func(netip.Addr) (*endpoint.Endpoint, bool)
	mu      sync.Mutex
	idDirty atomic.Bool
	ids     map[uint32][]string
}

func newEnricher(mgr *endpoint.Manager, alloc *identity.Allocator, pol *enforcer.Enforcer) *enricher {
	e := &enricher{byIP: endpoint.NewAddrCache(mgr).Lookup, alloc: alloc, pol: pol, ids: map[uint32][]string{}}
	alloc.OnChange(func() { e.idDirty.Store(true) })
	return e
}

func (e *enricher) EndpointByIP(addr netip.Addr) (parser.Endpoint, bool) {
	ep, ok := e.byIP(addr)
	if !ok {
		return parser.Endpoint{}, false
	}
	return parser.Endpoint{ID: ep.ID, Namespace: ep.Namespace, PodName: ep.PodName}, true
}

func (e *enricher) IdentityLabels(id uint32) ([]string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.idDirty.Swap(false) {
		clear(e.ids)
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

func (e *enricher) RulesOf(cookie uint32) []string { return e.pol.RulesOf(cookie) }
