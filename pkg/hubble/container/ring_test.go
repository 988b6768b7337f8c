package container

import (
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
)

func flow(n string) *flowpb.Flow { return &flowpb.Flow{NodeName: n} }

func names(es []*observerpb.GetFlowsResponse) string {
	s := ""
	for _, e := range es {
		if e.GetFlow() != nil {
			s += e.GetFlow().NodeName
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
