// Package observer serves Hubble's observer.Observer gRPC API from the
// node's flow ring (pkg/hubble/container): GetFlows with Hubble's
// whitelist/blacklist filters, number/first/follow/since/until and field
// masks; ServerStatus; GetNodes; GetNamespaces. An unmodified Hubble client
// (the hubble CLI, Hubble UI through a relay) talks to it.
//
// A client only ever reads: a slow or stuck one loses entries of its own
// follow buffer (reported to it as lost events), and never blocks the
// writer of the ring or other clients.
package observer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/seta-net/seta/pkg/hubble/container"
	"github.com/seta-net/seta/pkg/hubble/filters"
)

// FollowBuffer is how many entries a following client may fall behind the
// writer before it loses some.
const FollowBuffer = 4096

// Options configure a Server.
type Options struct {
	NodeName string
	Version  string
	// Address is what GetNodes reports as the node's observer address.
	Address string
	Ring    *container.Ring
	Started time.Time
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
	// OnClientLost, if set, learns how many entries a following client
	// missed by reading too slowly (for hubble_lost_events_total).
	OnClientLost func(n uint64)
}

// Server implements observerpb.ObserverServer.
type Server struct {
	observerpb.UnimplementedObserverServer
	o Options
}

// New returns a server over opts.Ring.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Started.IsZero() {
		opts.Started = opts.Now()
	}
	return &Server{o: opts}
}

var _ observerpb.ObserverServer = (*Server)(nil)

// request is a validated GetFlows request.
type request struct {
	set          *filters.Set
	mask         *fieldMask
	since, until time.Time
	number       uint64
	first        bool
	follow       bool
}

func parseRequest(req *observerpb.GetFlowsRequest) (*request, error) {
	r := &request{number: req.GetNumber(), first: req.GetFirst(), follow: req.GetFollow()}
	if r.first && r.follow {
		return nil, errors.New("first and follow cannot be combined: first reads the oldest flows, follow waits for new ones")
	}
	for _, ts := range []struct {
		name string
		in   *timestamppb.Timestamp
		out  *time.Time
	}{{"since", req.GetSince(), &r.since}, {"until", req.GetUntil(), &r.until}} {
		if ts.in == nil {
			continue
		}
		if err := ts.in.CheckValid(); err != nil {
			return nil, fmt.Errorf("invalid %s timestamp: %w", ts.name, err)
		}
		*ts.out = ts.in.AsTime()
	}
	if !r.since.IsZero() && !r.until.IsZero() && r.until.Before(r.since) {
		return nil, fmt.Errorf("until (%s) is before since (%s)", r.until.Format(time.RFC3339Nano), r.since.Format(time.RFC3339Nano))
	}
	set, err := filters.NewSet(req.GetWhitelist(), req.GetBlacklist())
	if err != nil {
		return nil, err
	}
	r.set = set
	if r.mask, err = compileFieldMask(req.GetFieldMask()); err != nil {
		return nil, err
	}
	return r, nil
}

// inWindow reports whether t lies in [since, until].
func (r *request) inWindow(t time.Time) bool {
	return (r.since.IsZero() || !t.Before(r.since)) && (r.until.IsZero() || !t.After(r.until))
}

// match decides an entry: flows by time and filters; lost-event notices
// by time only (a client must learn about losses whatever it filters).
// The time is checked first, on the stored entry: only an entry in the
// window is built into a message.
func (r *request) match(e *container.Entry) (*observerpb.GetFlowsResponse, bool) {
	if !r.inWindow(e.Time()) {
		return nil, false
	}
	resp := e.Response()
	if f := resp.GetFlow(); f != nil && !r.set.Match(f) {
		return nil, false
	}
	return resp, true
}

// matchResponse is match for an entry that is a message already.
func (r *request) matchResponse(e *observerpb.GetFlowsResponse) bool {
	if !r.inWindow(e.GetTime().AsTime()) {
		return false
	}
	if f := e.GetFlow(); f != nil {
		return r.set.Match(f)
	}
	return true
}

// out is the entry as sent: with the field mask applied to the flow.
func (r *request) out(e *observerpb.GetFlowsResponse) *observerpb.GetFlowsResponse {
	f := e.GetFlow()
	if f == nil || r.mask == nil {
		return e
	}
	return &observerpb.GetFlowsResponse{Time: e.Time, NodeName: e.NodeName,
		ResponseTypes: &observerpb.GetFlowsResponse_Flow{Flow: r.mask.apply(f)}}
}

// selectHistory picks what a request gets from the stored entries.
func (r *request) selectHistory(snap []container.Entry) []*observerpb.GetFlowsResponse {
	if r.follow && r.number == 0 && r.since.IsZero() {
		// Following without a starting point: only what comes next.
		return nil
	}
	var out []*observerpb.GetFlowsResponse
	if r.first {
		for i := range snap {
			if r.number > 0 && uint64(len(out)) == r.number {
				break
			}
			if resp, ok := r.match(&snap[i]); ok {
				out = append(out, resp)
			}
		}
		return out
	}
	// The last number matches, in time order.
	for i := len(snap) - 1; i >= 0; i-- {
		if r.number > 0 && uint64(len(out)) == r.number {
			break
		}
		if resp, ok := r.match(&snap[i]); ok {
			out = append(out, resp)
		}
	}
	slices.Reverse(out)
	return out
}

// GetFlows streams flows as the request asks.
func (s *Server) GetFlows(req *observerpb.GetFlowsRequest, stream grpc.ServerStreamingServer[observerpb.GetFlowsResponse]) error {
	r, err := parseRequest(req)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	var snap []container.Entry
	var sub *container.Sub
	if r.follow {
		snap, sub = s.o.Ring.SnapshotSubscribe(FollowBuffer)
		defer s.o.Ring.Unsubscribe(sub)
	} else {
		snap = s.o.Ring.Snapshot()
	}
	for _, e := range r.selectHistory(snap) {
		if err := stream.Send(r.out(e)); err != nil {
			return err
		}
	}
	if !r.follow {
		return nil
	}
	return s.follow(stream.Context(), r, sub, stream.Send)
}

func (s *Server) follow(ctx context.Context, r *request, sub *container.Sub, send func(*observerpb.GetFlowsResponse) error) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var reported uint64
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-sub.C:
			if !r.until.IsZero() && e.GetTime().AsTime().After(r.until) {
				return nil
			}
			if r.matchResponse(e) {
				if err := send(r.out(e)); err != nil {
					return err
				}
			}
		case <-tick.C:
			if !r.until.IsZero() && s.o.Now().After(r.until) {
				return nil
			}
			// Entries this client missed because it read too slowly.
			if lost := sub.Lost(); lost > reported {
				now := timestamppb.New(s.o.Now())
				err := send(&observerpb.GetFlowsResponse{Time: now, NodeName: s.o.NodeName,
					ResponseTypes: &observerpb.GetFlowsResponse_LostEvents{LostEvents: &flowpb.LostEvent{
						Source: flowpb.LostEventSource_HUBBLE_RING_BUFFER, NumEventsLost: lost - reported, Last: now,
					}}})
				if err != nil {
					return err
				}
				if s.o.OnClientLost != nil {
					s.o.OnClientLost(lost - reported)
				}
				reported = lost
			}
		}
	}
}

// ServerStatus reports the ring's state.
func (s *Server) ServerStatus(context.Context, *observerpb.ServerStatusRequest) (*observerpb.ServerStatusResponse, error) {
	return &observerpb.ServerStatusResponse{
		NumFlows: uint64(s.o.Ring.Len()), MaxFlows: uint64(s.o.Ring.Cap()), SeenFlows: s.o.Ring.Seen(),
		UptimeNs: uint64(s.o.Now().Sub(s.o.Started)), Version: s.o.Version, FlowsRate: s.flowsRate(),
	}, nil
}

// flowsRate is flows per second over the last minute, from the ring.
func (s *Server) flowsRate() float64 {
	since := s.o.Now().Add(-time.Minute)
	n := 0
	snap := s.o.Ring.Snapshot()
	for i := len(snap) - 1; i >= 0; i-- {
		if snap[i].Time().Before(since) {
			break
		}
		if snap[i].IsFlow() {
			n++
		}
	}
	return float64(n) / 60
}

// GetNodes reports this one node.
func (s *Server) GetNodes(context.Context, *observerpb.GetNodesRequest) (*observerpb.GetNodesResponse, error) {
	return &observerpb.GetNodesResponse{Nodes: []*observerpb.Node{{
		Name: s.o.NodeName, Version: s.o.Version, Address: s.o.Address, State: relaypb.NodeState_NODE_CONNECTED,
		UptimeNs: uint64(s.o.Now().Sub(s.o.Started)), NumFlows: uint64(s.o.Ring.Len()),
		MaxFlows: uint64(s.o.Ring.Cap()), SeenFlows: s.o.Ring.Seen(),
	}}}, nil
}

// GetNamespaces lists the namespaces of flows seen in the last hour,
// sorted.
func (s *Server) GetNamespaces(context.Context, *observerpb.GetNamespacesRequest) (*observerpb.GetNamespacesResponse, error) {
	since := s.o.Now().Add(-time.Hour)
	seen := map[string]bool{}
	snap := s.o.Ring.Snapshot()
	for i := range snap {
		e := &snap[i]
		if !e.IsFlow() || e.Time().Before(since) {
			continue
		}
		src, dst := e.Namespaces()
		for _, ns := range []string{src, dst} {
			if ns != "" {
				seen[ns] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for ns := range seen {
		names = append(names, ns)
	}
	slices.Sort(names)
	out := &observerpb.GetNamespacesResponse{}
	for _, ns := range names {
		out.Namespaces = append(out.Namespaces, &observerpb.Namespace{Namespace: ns})
	}
	return out, nil
}
