// Package container keeps the node's recent flows (and lost-event notices)
// in a fixed-size ring and fans new entries out to followers. Writing never
// blocks: a follower that does not keep up loses entries (counted), never
// the writer or other followers.
//
// Entries are the observer API's own response type, so GetFlows sends what
// it reads without another copy; a lost-event notice sits in the ring at the
// time of the loss, where a reader of history expects it.
package container

import (
	"sync"
	"sync/atomic"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
)

// DefaultCapacity is Hubble's default ring size.
const DefaultCapacity = 4095

// MaxCapacity bounds --hubble-buffer-capacity: each entry is a decoded flow
// of roughly 1 KiB, so the bound keeps the ring under a few hundred MiB.
const MaxCapacity = 1 << 18

// Ring holds the last Cap() entries.
type Ring struct {
	mu   sync.Mutex
	buf  []*observerpb.GetFlowsResponse
	next int
	full bool
	seen uint64 // flows ever written (lost-event notices are not flows)
	subs map[*Sub]struct{}
}

// Sub is a follower of new entries.
type Sub struct {
	C    chan *observerpb.GetFlowsResponse
	lost atomic.Uint64
}

// Lost is how many entries the follower missed because it was too slow.
func (s *Sub) Lost() uint64 { return s.lost.Load() }

// NewRing returns a ring of the given capacity (at least 1).
func NewRing(capacity int) *Ring {
	return &Ring{buf: make([]*observerpb.GetFlowsResponse, max(capacity, 1)), subs: map[*Sub]struct{}{}}
}

// flowEntry allocates a flow's response and its oneof wrapper together
// (one allocation per flow instead of two); entries are never modified.
type flowEntry struct {
	resp observerpb.GetFlowsResponse
	flow observerpb.GetFlowsResponse_Flow
}

// WriteFlow stores a flow.
func (r *Ring) WriteFlow(f *flowpb.Flow) {
	e := &flowEntry{flow: observerpb.GetFlowsResponse_Flow{Flow: f}}
	e.resp.Time, e.resp.NodeName, e.resp.ResponseTypes = f.GetTime(), f.GetNodeName(), &e.flow
	r.Write(&e.resp)
}

// Write stores e and hands it to every follower that has room.
func (r *Ring) Write(e *observerpb.GetFlowsResponse) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
	if e.GetFlow() != nil {
		r.seen++
	}
	for s := range r.subs {
		select {
		case s.C <- e:
		default:
			s.lost.Add(1)
		}
	}
}

func (r *Ring) snapshotLocked() []*observerpb.GetFlowsResponse {
	if !r.full {
		return append([]*observerpb.GetFlowsResponse(nil), r.buf[:r.next]...)
	}
	out := make([]*observerpb.GetFlowsResponse, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

// Snapshot returns the stored entries, oldest first.
func (r *Ring) Snapshot() []*observerpb.GetFlowsResponse {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshotLocked()
}

// Subscribe starts following new entries, with room for buffer of them.
func (r *Ring) Subscribe(buffer int) *Sub {
	_, s := r.SnapshotSubscribe(buffer)
	return s
}

// SnapshotSubscribe returns the stored entries and follows new ones from
// exactly that point: nothing is seen twice or missed in between.
func (r *Ring) SnapshotSubscribe(buffer int) ([]*observerpb.GetFlowsResponse, *Sub) {
	s := &Sub{C: make(chan *observerpb.GetFlowsResponse, max(buffer, 1))}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs[s] = struct{}{}
	return r.snapshotLocked(), s
}

// Unsubscribe stops a follower.
func (r *Ring) Unsubscribe(s *Sub) {
	r.mu.Lock()
	delete(r.subs, s)
	r.mu.Unlock()
}

// Len is the number of stored entries.
func (r *Ring) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.full {
		return len(r.buf)
	}
	return r.next
}

// Cap is the capacity.
func (r *Ring) Cap() int { return len(r.buf) }

// Seen is the number of flows ever written.
func (r *Ring) Seen() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}
