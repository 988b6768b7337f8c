// Package container keeps the node's recent flows in a fixed-size ring and
// fans new ones out to followers. Writing never blocks: a follower that does
// not keep up loses flows (counted), never the writer or other followers.
package container

import (
	"sync"
	"sync/atomic"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// DefaultCapacity is Hubble's default ring size.
const DefaultCapacity = 4095

// Ring holds the last Cap() flows.
type Ring struct {
	mu   sync.Mutex
	buf  []*flowpb.Flow
	next int
	full bool
	seen uint64
	subs map[*Sub]struct{}
}

// Sub is a follower of new flows.
type Sub struct {
	C    chan *flowpb.Flow
	lost atomic.Uint64
}

// Lost is how many flows the follower missed because it was too slow.
func (s *Sub) Lost() uint64 { return s.lost.Load() }

// NewRing returns a ring of the given capacity (at least 1).
func NewRing(capacity int) *Ring {
	return &Ring{buf: make([]*flowpb.Flow, max(capacity, 1)), subs: map[*Sub]struct{}{}}
}

// Write stores f and hands it to every follower that has room.
func (r *Ring) Write(f *flowpb.Flow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = f
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
	r.seen++
	for s := range r.subs {
		select {
		case s.C <- f:
		default:
			s.lost.Add(1)
		}
	}
}

// Snapshot returns the stored flows, oldest first.
func (r *Ring) Snapshot() []*flowpb.Flow {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]*flowpb.Flow(nil), r.buf[:r.next]...)
	}
	out := make([]*flowpb.Flow, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

// Subscribe starts following new flows, with room for buffer of them.
func (r *Ring) Subscribe(buffer int) *Sub {
	s := &Sub{C: make(chan *flowpb.Flow, max(buffer, 1))}
	r.mu.Lock()
	r.subs[s] = struct{}{}
	r.mu.Unlock()
	return s
}

// Unsubscribe stops a follower.
func (r *Ring) Unsubscribe(s *Sub) {
	r.mu.Lock()
	delete(r.subs, s)
	r.mu.Unlock()
}

// Len is the number of stored flows.
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
