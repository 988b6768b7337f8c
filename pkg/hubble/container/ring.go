// Package container keeps the node's recent flows (and lost-event notices)
// in a fixed-size ring and fans new entries out to followers. Writing never
// blocks: a follower that does not keep up loses entries (counted), never
// the writer or other followers.
//
// The agent's flows are stored as Records, compact values in slots
// allocated once, and built into the observer API's response type when a
// client reads them; a lost-event notice sits in the ring at the time of
// the loss, where a reader of history expects it.
package container

import (
	"sync"
	"sync/atomic"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
)

// DefaultCapacity is Hubble's default ring size.
const DefaultCapacity = 4095

// MaxCapacity bounds --hubble-buffer-capacity: each slot is a Record of
// about 300 bytes (allocated with the ring), plus what a flow written as a
// message holds, so the bound keeps the ring under a few hundred MiB.
const MaxCapacity = 1 << 18

// Ring holds the last Cap() entries.
type Ring struct {
	mu   sync.Mutex
	buf  []Entry
	next int
	full bool
	seen uint64 // flows ever written (lost-event notices are not flows)
	subs map[*Sub]struct{}
	// nsubs is len(subs), read without the lock: a writer builds the
	// message followers need only when there are any.
	nsubs atomic.Int32
}

// Entry is a stored entry: a flow as a Record, or a message (a lost-event
// notice, or a flow written as a message by WriteFlow).
type Entry struct {
	rec  Record
	resp *observerpb.GetFlowsResponse // nil: rec holds a flow
}

// Response is the entry as the observer API sends it; a record's flow is
// built anew (one allocation) on every call.
func (e *Entry) Response() *observerpb.GetFlowsResponse {
	if e.resp != nil {
		return e.resp
	}
	return e.rec.response()
}

// IsFlow tells flows from lost-event notices.
func (e *Entry) IsFlow() bool { return e.resp == nil || e.resp.GetFlow() != nil }

// Time is the entry's time, without building its flow.
func (e *Entry) Time() time.Time {
	if e.resp != nil {
		return e.resp.GetTime().AsTime()
	}
	return time.Unix(e.rec.Seconds, int64(e.rec.Nanos)).UTC()
}

// Namespaces are the namespaces of a flow's source and destination ("" if
// none, and for notices), without building the flow.
func (e *Entry) Namespaces() (src, dst string) {
	if e.resp != nil {
		f := e.resp.GetFlow()
		return f.GetSource().GetNamespace(), f.GetDestination().GetNamespace()
	}
	return e.rec.Source.Namespace, e.rec.Destination.Namespace
}

// Sub is a follower of new entries.
type Sub struct {
	C    chan *observerpb.GetFlowsResponse
	lost atomic.Uint64
}

// Lost is how many entries the follower missed because it was too slow.
func (s *Sub) Lost() uint64 { return s.lost.Load() }

// NewRing returns a ring of the given capacity (at least 1). Its slots
// are allocated here, once: writing costs no allocation.
func NewRing(capacity int) *Ring {
	return &Ring{buf: make([]Entry, max(capacity, 1)), subs: map[*Sub]struct{}{}}
}

// flowEntry allocates a flow's response and its oneof wrapper together
// (one allocation per flow instead of two); entries are never modified.
type flowEntry struct {
	resp observerpb.GetFlowsResponse
	flow observerpb.GetFlowsResponse_Flow
}

func responseOf(f *flowpb.Flow) *observerpb.GetFlowsResponse {
	e := &flowEntry{flow: observerpb.GetFlowsResponse_Flow{Flow: f}}
	e.resp.Time, e.resp.NodeName, e.resp.ResponseTypes = f.GetTime(), f.GetNodeName(), &e.flow
	return &e.resp
}

func (r *Record) response() *observerpb.GetFlowsResponse { return responseOf(r.Flow()) }

// WriteRecord stores a flow given as a record (copied: the caller may
// reuse rec). Followers, if any, get its flow built once and shared.
func (r *Ring) WriteRecord(rec *Record) {
	var resp *observerpb.GetFlowsResponse
	if r.nsubs.Load() > 0 {
		resp = rec.response()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = Entry{rec: *rec}
	r.seen++
	r.advanceLocked()
	if len(r.subs) > 0 && resp == nil {
		// A follower subscribed since the check above.
		resp = rec.response()
	}
	r.sendLocked(resp)
}

// WriteFlow stores a flow given as a message. Stored flows are never
// modified.
func (r *Ring) WriteFlow(f *flowpb.Flow) { r.Write(responseOf(f)) }

// Write stores e and hands it to every follower that has room.
func (r *Ring) Write(e *observerpb.GetFlowsResponse) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = Entry{resp: e}
	if e.GetFlow() != nil {
		r.seen++
	}
	r.advanceLocked()
	r.sendLocked(e)
}

func (r *Ring) advanceLocked() {
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *Ring) sendLocked(e *observerpb.GetFlowsResponse) {
	for s := range r.subs {
		select {
		case s.C <- e:
		default:
			s.lost.Add(1)
		}
	}
}

// snapshotLocked copies the entries (records by value: the slots are
// overwritten as the ring turns).
func (r *Ring) snapshotLocked() []Entry {
	if !r.full {
		return append([]Entry(nil), r.buf[:r.next]...)
	}
	out := make([]Entry, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

// Snapshot returns the stored entries, oldest first.
func (r *Ring) Snapshot() []Entry {
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
func (r *Ring) SnapshotSubscribe(buffer int) ([]Entry, *Sub) {
	s := &Sub{C: make(chan *observerpb.GetFlowsResponse, max(buffer, 1))}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs[s] = struct{}{}
	r.nsubs.Store(int32(len(r.subs)))
	return r.snapshotLocked(), s
}

// Unsubscribe stops a follower.
func (r *Ring) Unsubscribe(s *Sub) {
	r.mu.Lock()
	delete(r.subs, s)
	r.nsubs.Store(int32(len(r.subs)))
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
