package lb

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/seta-net/seta/pkg/datapath/bpf"
	"github.com/seta-net/seta/pkg/loadbalancer"
)

// selector runs bpf/tests/lb_selftest.c, the selection helpers of
// bpf/lib/lb.h, against the maps of a Map.
type selector struct {
	t    *testing.T
	prog *ebpf.Program
}

func newSelector(t *testing.T, m *Map) *selector {
	t.Helper()
	cs, err := bpf.LoadLbSelftest()
	if err != nil {
		t.Fatal(err)
	}
	Sizes{Map: m.m.Services.MaxEntries(), Affinity: m.m.Affinity.MaxEntries(), SockRevNat: m.m.SockRevNat.MaxEntries()}.Apply(cs)
	var objs bpf.LbSelftestObjects
	err = cs.LoadAndAssign(&objs, &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		ServicesMapName: m.m.Services, BackendsMapName: m.m.Backends, RevNatMapName: m.m.RevNat,
		AffinityMapName: m.m.Affinity, MaglevMapName: m.m.Maglev, SockRevNatMapName: m.m.SockRevNat,
	}})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("load selection test program: %+v", ve)
		}
		t.Fatalf("load selection test program: %v", err)
	}
	t.Cleanup(func() { objs.Close() })
	return &selector{t: t, prog: objs.LbTestSelect}
}

type flow struct {
	fe       loadbalancer.Frontend
	client   netip.Addr
	hash     uint32
	internal bool
	maglev   bool
}

func (s *selector) run(f flow) bpf.LbSelftestLbTestArgs {
	s.t.Helper()
	k, err := NewServiceKey(f.fe, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	a := bpf.LbSelftestLbTestArgs{Key: bpf.LbSelftestLbServiceKey(k), Hash: f.hash}
	if f.client.IsValid() {
		putAddr(&a.Client, f.client)
	}
	if f.internal {
		a.Internal = 1
	}
	if f.maglev {
		a.Maglev = 1
	}
	var out bpf.LbSelftestLbTestArgs
	if _, err := s.prog.Run(&ebpf.RunOptions{Context: a, ContextOut: &out}); err != nil {
		s.t.Fatalf("run: %v", err)
	}
	return out
}

const (
	testOK        = int16(bpf.LbSelftestLbTestResultLB_TEST_OK)
	testNoService = int16(bpf.LbSelftestLbTestResultLB_TEST_NO_SERVICE)
	testNoBackend = int16(bpf.LbSelftestLbTestResultLB_TEST_NO_BACKEND)
)

func TestPrivilegedLBSelect(t *testing.T) {
	m := newTestMap(t)
	sel := newSelector(t, m)
	for id := loadbalancer.BackendID(1); id <= 3; id++ {
		err := m.UpsertBackend(loadbalancer.Backend{ID: id, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(id)}), 80), Proto: loadbalancer.TCP})
		if err != nil {
			t.Fatal(err)
		}
	}
	fe := func(last byte) loadbalancer.Frontend {
		return loadbalancer.Frontend{Addr: netip.AddrFrom4([4]byte{10, 96, 0, last}), Port: 80, Proto: loadbalancer.TCP}
	}
	upsert := func(s loadbalancer.LBService) {
		t.Helper()
		if err := m.UpsertService(s); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("not a service", func(t *testing.T) {
		if r := sel.run(flow{fe: fe(1)}); r.Result != testNoService {
			t.Errorf("result %d", r.Result)
		}
	})

	t.Run("random", func(t *testing.T) {
		upsert(loadbalancer.LBService{Frontend: fe(2), ID: 2, Backends: []loadbalancer.BackendID{1, 2, 3}})
		got := map[uint32]int{}
		for range 300 {
			r := sel.run(flow{fe: fe(2)})
			if r.Result != testOK || r.RevNatId != 2 {
				t.Fatalf("%+v", r)
			}
			got[r.BackendId]++
		}
		for id := uint32(1); id <= 3; id++ {
			if got[id] < 50 {
				t.Errorf("300 picks: %v, want each of 3 backends at least 50 times", got)
			}
		}
	})

	t.Run("no backends", func(t *testing.T) {
		upsert(loadbalancer.LBService{Frontend: fe(3), ID: 3})
		if r := sel.run(flow{fe: fe(3)}); r.Result != testNoBackend {
			t.Errorf("%+v", r)
		}
	})

	t.Run("two scopes", func(t *testing.T) {
		in := fe(4)
		in.Scope = loadbalancer.ScopeInternal
		upsert(loadbalancer.LBService{Frontend: in, ID: 5, Backends: []loadbalancer.BackendID{2}})
		upsert(loadbalancer.LBService{Frontend: fe(4), ID: 4, Flags: loadbalancer.FlagTwoScopes, Backends: []loadbalancer.BackendID{1}})
		if r := sel.run(flow{fe: fe(4), internal: true}); r.BackendId != 2 || r.Scope != 1 || r.RevNatId != 5 {
			t.Errorf("internal: %+v", r)
		}
		if r := sel.run(flow{fe: fe(4)}); r.BackendId != 1 || r.Scope != 0 || r.RevNatId != 4 {
			t.Errorf("external: %+v", r)
		}
		// The flag without the internal entry (mid-update): external.
		if err := m.DeleteService(in); err != nil {
			t.Fatal(err)
		}
		if r := sel.run(flow{fe: fe(4), internal: true}); r.BackendId != 1 || r.Scope != 0 {
			t.Errorf("internal entry missing: %+v", r)
		}
	})

	t.Run("maglev", func(t *testing.T) {
		table := make([]loadbalancer.BackendID, loadbalancer.MaglevTableSize)
		for i := range table {
			table[i] = loadbalancer.BackendID(i%3 + 1)
		}
		upsert(loadbalancer.LBService{Frontend: fe(5), ID: 6, Flags: loadbalancer.FlagMaglev, Backends: []loadbalancer.BackendID{1, 2, 3}, Maglev: table})
		for _, h := range []uint32{0, 1, 2, 16380, 16381, 123456789, 0xffffffff} {
			r := sel.run(flow{fe: fe(5), hash: h, maglev: true})
			if want := uint32(table[h%loadbalancer.MaglevTableSize]); r.Result != testOK || r.BackendId != want {
				t.Errorf("hash %d: %+v, want backend %d", h, r, want)
			}
		}
		// Without maglev asked for (socket LB), the slots.
		got := map[uint32]bool{}
		for range 100 {
			got[sel.run(flow{fe: fe(5), hash: 0}).BackendId] = true
		}
		if len(got) != 3 {
			t.Errorf("random picks of a Maglev service: %v", got)
		}
	})

	t.Run("affinity by client address", func(t *testing.T) {
		upsert(loadbalancer.LBService{Frontend: fe(6), ID: 7, Flags: loadbalancer.FlagAffinity, AffinityTimeout: 600, Backends: []loadbalancer.BackendID{1, 2, 3}})
		client := netip.MustParseAddr("10.244.0.9")
		first := sel.run(flow{fe: fe(6), client: client})
		for range 30 {
			if r := sel.run(flow{fe: fe(6), client: client}); r.BackendId != first.BackendId {
				t.Fatalf("bound to %d, then got %d", first.BackendId, r.BackendId)
			}
		}
		aff, err := m.Affinities()
		if err != nil {
			t.Fatal(err)
		}
		if len(aff) != 1 || aff[0].Client.NetNS || aff[0].Client.Addr != client || uint32(aff[0].Backend) != first.BackendId {
			t.Errorf("affinity entries %+v", aff)
		}
		// The bound backend terminates: the client is bound anew.
		id := loadbalancer.BackendID(first.BackendId)
		if err := m.UpsertBackend(loadbalancer.Backend{ID: id, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(id)}), 80),
			Proto: loadbalancer.TCP, State: loadbalancer.Terminating}); err != nil {
			t.Fatal(err)
		}
		var rest []loadbalancer.BackendID
		for b := loadbalancer.BackendID(1); b <= 3; b++ {
			if b != id {
				rest = append(rest, b)
			}
		}
		upsert(loadbalancer.LBService{Frontend: fe(6), ID: 7, Flags: loadbalancer.FlagAffinity, AffinityTimeout: 600, Backends: rest})
		second := sel.run(flow{fe: fe(6), client: client})
		if second.BackendId == first.BackendId || second.Result != testOK {
			t.Errorf("after the bound backend terminated: %+v", second)
		}
		for range 10 {
			if r := sel.run(flow{fe: fe(6), client: client}); r.BackendId != second.BackendId {
				t.Fatalf("rebound to %d, then got %d", second.BackendId, r.BackendId)
			}
		}
	})
}
