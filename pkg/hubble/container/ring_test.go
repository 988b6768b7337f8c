package container

import (
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
)

func flow(n string) *flowpb.Flow { return &flowpb.Flow{NodeName: n} }

func names(es []Entry) string {
	s := ""
	for i := range es {
		if f := es[i].Response().GetFlow(); f != nil {
			s += f.NodeName
		} else {
			s += "!"
		}
	}
	return s
}

func TestRingWrapsAndCounts(t *testing.T) {
	r := NewRing(3)
	for _, n := range []string{"a", "b"} {
		r.WriteFlow(flow(n))
	}
	if got := names(r.Snapshot()); got != "ab" || r.Len() != 2 {
		t.Fatalf("snapshot %q len %d", got, r.Len())
	}
	for _, n := range []string{"c", "d", "e"} {
		r.WriteFlow(flow(n))
	}
	if got := names(r.Snapshot()); got != "cde" || r.Len() != 3 || r.Seen() != 5 || r.Cap() != 3 {
		t.Fatalf("snapshot %q len %d seen %d", got, r.Len(), r.Seen())
	}
	// A lost-event notice takes a slot but is not a flow.
	r.Write(&observerpb.GetFlowsResponse{ResponseTypes: &observerpb.GetFlowsResponse_LostEvents{LostEvents: &flowpb.LostEvent{NumEventsLost: 3}}})
	if got := names(r.Snapshot()); got != "de!" || r.Seen() != 5 {
		t.Fatalf("after a lost notice: snapshot %q seen %d", got, r.Seen())
	}
}

func TestSnapshotSubscribeHasNoGap(t *testing.T) {
	r := NewRing(10)
	r.WriteFlow(flow("a"))
	snap, sub := r.SnapshotSubscribe(10)
	r.WriteFlow(flow("b"))
	if names(snap) != "a" || len(sub.C) != 1 || (<-sub.C).GetFlow().NodeName != "b" {
		t.Fatalf("snapshot %q, followed %d", names(snap), len(sub.C))
	}
}

func TestSlowFollowerNeverBlocks(t *testing.T) {
	r := NewRing(10)
	slow := r.Subscribe(1)
	fast := r.Subscribe(100)
	for i := 0; i < 50; i++ {
		r.WriteFlow(flow("x")) // must not block on slow
	}
	if slow.Lost() != 49 || len(slow.C) != 1 {
		t.Errorf("slow follower: lost %d, buffered %d", slow.Lost(), len(slow.C))
	}
	if fast.Lost() != 0 || len(fast.C) != 50 {
		t.Errorf("fast follower: lost %d, buffered %d", fast.Lost(), len(fast.C))
	}
	r.Unsubscribe(slow)
	r.WriteFlow(flow("y"))
	if slow.Lost() != 49 {
		t.Error("an unsubscribed follower still counted")
	}
}

func record(n string) *Record {
	return &Record{Seconds: 1000, Nanos: 7, NodeName: n, Source: Endpoint{Namespace: "a"}, Destination: Endpoint{Namespace: "b"}}
}

// A record is stored by value: the writer reuses its record for the next
// event without changing what was stored.
func TestWriteRecordCopies(t *testing.T) {
	r := NewRing(3)
	rec := record("a")
	r.WriteRecord(rec)
	rec.NodeName = "b"
	r.WriteRecord(rec)
	r.WriteFlow(flow("c"))
	snap := r.Snapshot()
	if got := names(snap); got != "abc" || r.Seen() != 3 {
		t.Fatalf("snapshot %q, seen %d", got, r.Seen())
	}
	if !snap[0].IsFlow() || !snap[0].Time().Equal(time.Unix(1000, 7)) {
		t.Errorf("entry: flow %v, time %v", snap[0].IsFlow(), snap[0].Time())
	}
	if src, dst := snap[0].Namespaces(); src != "a" || dst != "b" {
		t.Errorf("namespaces %q %q", src, dst)
	}
	// Every read builds a flow of its own.
	if snap[0].Response() == snap[0].Response() {
		t.Error("two reads of a record share one message")
	}
}

// Without followers, storing a record allocates nothing; followers get one
// message per record, built once and shared.
func TestWriteRecordAllocations(t *testing.T) {
	r := NewRing(16)
	rec := record("a")
	if n := testing.AllocsPerRun(1000, func() { r.WriteRecord(rec) }); n != 0 {
		t.Errorf("storing a record costs %.1f allocations, want 0", n)
	}
	s1, s2 := r.Subscribe(4), r.Subscribe(4)
	r.WriteRecord(rec)
	a, b := <-s1.C, <-s2.C
	if a != b || a.GetFlow().GetNodeName() != "a" || a.GetFlow().GetTime().GetNanos() != 7 {
		t.Errorf("followers got %v and %v", a, b)
	}
	r.Unsubscribe(s1)
	r.Unsubscribe(s2)
	if n := testing.AllocsPerRun(1000, func() { r.WriteRecord(rec) }); n != 0 {
		t.Errorf("after the followers left, storing a record costs %.1f allocations", n)
	}
}
