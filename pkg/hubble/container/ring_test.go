package container

import (
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

func flow(n string) *flowpb.Flow { return &flowpb.Flow{NodeName: n} }

func names(fs []*flowpb.Flow) string {
	s := ""
	for _, f := range fs {
		s += f.NodeName
	}
	return s
}

func TestRingWrapsAndCounts(t *testing.T) {
	r := NewRing(3)
	for _, n := range []string{"a", "b"} {
		r.Write(flow(n))
	}
	if got := names(r.Snapshot()); got != "ab" || r.Len() != 2 {
		t.Fatalf("snapshot %q len %d", got, r.Len())
	}
	for _, n := range []string{"c", "d", "e"} {
		r.Write(flow(n))
	}
	if got := names(r.Snapshot()); got != "cde" || r.Len() != 3 || r.Seen() != 5 || r.Cap() != 3 {
		t.Fatalf("snapshot %q len %d seen %d", got, r.Len(), r.Seen())
	}
}

func TestSlowFollowerNeverBlocks(t *testing.T) {
	r := NewRing(10)
	slow := r.Subscribe(1)
	fast := r.Subscribe(100)
	for i := 0; i < 50; i++ {
		r.Write(flow("x")) // must not block on slow
	}
	if slow.Lost() != 49 || len(slow.C) != 1 {
		t.Errorf("slow follower: lost %d, buffered %d", slow.Lost(), len(slow.C))
	}
	if fast.Lost() != 0 || len(fast.C) != 50 {
		t.Errorf("fast follower: lost %d, buffered %d", fast.Lost(), len(fast.C))
	}
	r.Unsubscribe(slow)
	r.Write(flow("y"))
	if slow.Lost() != 49 {
		t.Error("an unsubscribed follower still counted")
	}
}
