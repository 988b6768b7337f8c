package lb

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/seta-net/seta/pkg/datapath/bpf"
	"github.com/seta-net/seta/pkg/loadbalancer"
)

// The Go model is the source of the flags, scopes, states and the Maglev
// table size; the C enums must say the same.
func TestConstantsMatchC(t *testing.T) {
	for _, c := range []struct {
		name   string
		go_, c uint32
	}{
		{"FlagNodePort", uint32(loadbalancer.FlagNodePort), uint32(bpf.SockLbFlagsLB_F_NODEPORT)},
		{"FlagExternal", uint32(loadbalancer.FlagExternal), uint32(bpf.SockLbFlagsLB_F_EXTERNAL)},
		{"FlagAffinity", uint32(loadbalancer.FlagAffinity), uint32(bpf.SockLbFlagsLB_F_AFFINITY)},
		{"FlagLocal", uint32(loadbalancer.FlagLocal), uint32(bpf.SockLbFlagsLB_F_LOCAL)},
		{"FlagMaglev", uint32(loadbalancer.FlagMaglev), uint32(bpf.SockLbFlagsLB_F_MAGLEV)},
		{"FlagTwoScopes", uint32(loadbalancer.FlagTwoScopes), uint32(bpf.SockLbFlagsLB_F_TWO_SCOPES)},
		{"ScopeExternal", uint32(loadbalancer.ScopeExternal), uint32(bpf.SockLbScopeLB_SCOPE_EXTERNAL)},
		{"ScopeInternal", uint32(loadbalancer.ScopeInternal), uint32(bpf.SockLbScopeLB_SCOPE_INTERNAL)},
		{"Active", uint32(loadbalancer.Active), uint32(bpf.SockLbBackendStateLB_BACKEND_ACTIVE)},
		{"Terminating", uint32(loadbalancer.Terminating), uint32(bpf.SockLbBackendStateLB_BACKEND_TERMINATING)},
		{"Quarantined", uint32(loadbalancer.Quarantined), uint32(bpf.SockLbBackendStateLB_BACKEND_QUARANTINED)},
		{"MaglevTableSize", loadbalancer.MaglevTableSize, uint32(bpf.SockLbLimitsLB_MAGLEV_TABLE_SIZE)},
	} {
		if c.go_ != c.c {
			t.Errorf("%s: Go %d, C %d", c.name, c.go_, c.c)
		}
	}
	// The slot number is 16 bits.
	if loadbalancer.MaxBackendsPerService > 1<<16-1 {
		t.Errorf("MaxBackendsPerService %d does not fit a slot", loadbalancer.MaxBackendsPerService)
	}
}

// The key and value layouts are part of the pinned maps: a change must be
// deliberate (and needs the pins removed on upgrade).
func TestLayouts(t *testing.T) {
	for _, c := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"lb_service_key", unsafe.Sizeof(ServiceKey{}), 24},
		{"lb_service_value", unsafe.Sizeof(ServiceValue{}), 16},
		{"lb_backend", unsafe.Sizeof(BackendValue{}), 24},
		{"lb_revnat", unsafe.Sizeof(RevNatValue{}), 20},
		{"lb_affinity_key", unsafe.Sizeof(AffinityKey{}), 20},
		{"lb_affinity_value", unsafe.Sizeof(AffinityValue{}), 8},
		{"lb_sock_key", unsafe.Sizeof(SockKey{}), 32},
		{"lb_sock_value", unsafe.Sizeof(SockValue{}), 24},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.name, c.got, c.want)
		}
	}
	cs, err := bpf.LoadSock()
	if err != nil {
		t.Fatal(err)
	}
	if got := cs.Maps[MaglevMapName].InnerMap.ValueSize; got != maglevInnerSpec().ValueSize {
		t.Errorf("Maglev inner map value size: C %d, Go %d", got, maglevInnerSpec().ValueSize)
	}
}

func TestServiceKey(t *testing.T) {
	for _, c := range []struct {
		name   string
		f      loadbalancer.Frontend
		slot   uint16
		addr   [16]byte
		family uint8
		port   [2]byte // as the bytes lie in memory: network order
	}{
		{"v4", loadbalancer.Frontend{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Proto: loadbalancer.TCP}, 0,
			[16]byte{10, 96, 0, 10}, 4, [2]byte{0, 80}},
		{"v4 mapped", loadbalancer.Frontend{Addr: netip.MustParseAddr("::ffff:10.96.0.10"), Port: 80, Proto: loadbalancer.TCP}, 0,
			[16]byte{10, 96, 0, 10}, 4, [2]byte{0, 80}},
		{"v6 slot", loadbalancer.Frontend{Addr: netip.MustParseAddr("fd00::a"), Port: 8443, Proto: loadbalancer.UDP, Scope: loadbalancer.ScopeInternal}, 7,
			[16]byte{0xfd, 15: 0xa}, 6, [2]byte{0x20, 0xfb}},
		{"nodeport wildcard", loadbalancer.Frontend{Addr: netip.IPv4Unspecified(), Port: 30080, Proto: loadbalancer.TCP}, 0,
			[16]byte{}, 4, [2]byte{0x75, 0x80}},
		{"nodeport wildcard v6", loadbalancer.Frontend{Addr: netip.IPv6Unspecified(), Port: 30080, Proto: loadbalancer.TCP}, 0,
			[16]byte{}, 6, [2]byte{0x75, 0x80}},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, err := NewServiceKey(c.f, c.slot)
			if err != nil {
				t.Fatal(err)
			}
			if k.Addr != c.addr || k.Family != c.family || k.Slot != c.slot || k.Proto != uint8(c.f.Proto) || k.Scope != uint8(c.f.Scope) {
				t.Errorf("key %+v", k)
			}
			if got := *(*[2]byte)(unsafe.Pointer(&k.Port)); got != c.port {
				t.Errorf("port bytes %v, want %v (network order)", got, c.port)
			}
			back := c.f
			back.Addr = back.Addr.Unmap()
			if got := FrontendOf(k); got != back {
				t.Errorf("FrontendOf = %v, want %v", got, back)
			}
		})
	}
	for _, bad := range []loadbalancer.Frontend{
		{Port: 80, Proto: loadbalancer.TCP},
		{Addr: netip.MustParseAddr("10.0.0.1"), Port: 80},
		{Addr: netip.MustParseAddr("10.0.0.1"), Port: 80, Proto: loadbalancer.TCP, Scope: 9},
		{Addr: netip.MustParseAddr("fe80::1%eth0"), Port: 80, Proto: loadbalancer.TCP},
	} {
		if _, err := NewServiceKey(bad, 0); err == nil {
			t.Errorf("NewServiceKey(%+v) accepted", bad)
		}
	}
}

func TestBackendAndRevNatValues(t *testing.T) {
	b := loadbalancer.Backend{ID: 42, Addr: netip.MustParseAddrPort("[fd00::5]:8080"), Proto: loadbalancer.UDP,
		State: loadbalancer.Terminating, Local: true}
	v, err := NewBackendValue(b)
	if err != nil {
		t.Fatal(err)
	}
	if v.Family != 6 || v.State != 1 || v.Flags != 1 || v.Proto != 17 || ntohs(v.Port) != 8080 {
		t.Errorf("value %+v", v)
	}
	if got := BackendOf(42, v); got != b {
		t.Errorf("BackendOf = %+v, want %+v", got, b)
	}
	for _, bad := range []loadbalancer.Backend{
		{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Proto: loadbalancer.TCP},
		{ID: 1, Addr: netip.MustParseAddrPort("0.0.0.0:80"), Proto: loadbalancer.TCP},
		{ID: 1, Proto: loadbalancer.TCP},
		{ID: 1, Addr: netip.MustParseAddrPort("10.0.0.1:80")},
	} {
		if _, err := NewBackendValue(bad); err == nil {
			t.Errorf("NewBackendValue(%+v) accepted", bad)
		}
	}

	r := loadbalancer.RevNat{ID: 7, Addr: netip.MustParseAddrPort("0.0.0.0:30080")}
	rv, err := NewRevNatValue(r)
	if err != nil {
		t.Fatal(err)
	}
	if rv.Family != 4 || ntohs(rv.Port) != 30080 {
		t.Errorf("revnat %+v", rv)
	}
	if got := RevNatOf(7, rv); got != r {
		t.Errorf("RevNatOf = %v, want %v", got, r)
	}
	if _, err := NewRevNatValue(loadbalancer.RevNat{Addr: r.Addr}); err == nil {
		t.Error("rev nat ID 0 accepted")
	}
}

func TestAffinityKey(t *testing.T) {
	k, err := NewAffinityKey(AffinityClient{NetNS: true, NetNSCookie: 0x1122334455667788}, 5, 4)
	if err != nil {
		t.Fatal(err)
	}
	if k.Netns != 1 || k.RevNatId != 5 || k.Family != 4 || k.Client[8] != 0 {
		t.Errorf("netns key %+v", k)
	}
	if c := AffinityClientOf(k); !c.NetNS || c.NetNSCookie != 0x1122334455667788 {
		t.Errorf("client %+v", c)
	}
	k2, err := NewAffinityKey(AffinityClient{Addr: netip.MustParseAddr("10.0.0.9")}, 5, 4)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Netns != 0 || k2.Client != [16]byte{10, 0, 0, 9} {
		t.Errorf("address key %+v", k2)
	}
	if c := AffinityClientOf(k2); c.NetNS || c.Addr != netip.MustParseAddr("10.0.0.9") {
		t.Errorf("client %+v", c)
	}
}

func TestValidateService(t *testing.T) {
	fe := loadbalancer.Frontend{Addr: netip.MustParseAddr("10.96.0.1"), Port: 443, Proto: loadbalancer.TCP}
	table := make([]loadbalancer.BackendID, loadbalancer.MaglevTableSize)
	for i := range table {
		table[i] = 1
	}
	for _, c := range []struct {
		name string
		s    loadbalancer.LBService
		ok   bool
	}{
		{"plain", loadbalancer.LBService{Frontend: fe, ID: 1, Backends: []loadbalancer.BackendID{1, 2}}, true},
		{"no backends", loadbalancer.LBService{Frontend: fe, ID: 1}, true},
		{"maglev", loadbalancer.LBService{Frontend: fe, ID: 1, Flags: loadbalancer.FlagMaglev, Backends: []loadbalancer.BackendID{1}, Maglev: table}, true},
		{"id 0", loadbalancer.LBService{Frontend: fe, Backends: []loadbalancer.BackendID{1}}, false},
		{"backend 0", loadbalancer.LBService{Frontend: fe, ID: 1, Backends: []loadbalancer.BackendID{0}}, false},
		{"too many", loadbalancer.LBService{Frontend: fe, ID: 1, Backends: make([]loadbalancer.BackendID, loadbalancer.MaxBackendsPerService+1)}, false},
		{"maglev short", loadbalancer.LBService{Frontend: fe, ID: 1, Flags: loadbalancer.FlagMaglev, Maglev: table[:5]}, false},
		{"table without flag", loadbalancer.LBService{Frontend: fe, ID: 1, Maglev: table}, false},
	} {
		if err := validateService(c.s); (err == nil) != c.ok {
			t.Errorf("%s: err = %v", c.name, err)
		}
	}
}

func TestRows(t *testing.T) {
	fe := loadbalancer.Frontend{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Proto: loadbalancer.TCP}
	rows := Rows(
		[]loadbalancer.LBService{
			{Frontend: fe, ID: 3, Flags: loadbalancer.FlagAffinity, AffinityTimeout: 10800, Backends: []loadbalancer.BackendID{1, 9}},
			{Frontend: loadbalancer.Frontend{Addr: netip.IPv4Unspecified(), Port: 30080, Proto: loadbalancer.UDP, Scope: loadbalancer.ScopeInternal}, ID: 4, Flags: loadbalancer.FlagNodePort | loadbalancer.FlagTwoScopes},
		},
		[]loadbalancer.Backend{{ID: 1, Addr: netip.MustParseAddrPort("10.244.1.5:8080"), Proto: loadbalancer.TCP, Local: true}},
		[]loadbalancer.RevNat{{ID: 3, Addr: netip.MustParseAddrPort("10.96.0.10:80")}},
	)
	want := []Row{
		{Frontend: "10.96.0.10:80/TCP", Slot: 0, Backend: "2 backends", Flags: "affinity timeout=10800s", RevNat: "3 (10.96.0.10:80)"},
		{Frontend: "10.96.0.10:80/TCP", Slot: 1, Backend: "10.244.1.5:8080/TCP (id 1, active, local)", RevNat: "3 (10.96.0.10:80)"},
		{Frontend: "10.96.0.10:80/TCP", Slot: 2, Backend: "(id 9, missing)", RevNat: "3 (10.96.0.10:80)"},
		{Frontend: "0.0.0.0:30080/UDP (internal)", Slot: 0, Backend: "no backends (connections refused)", Flags: "nodeport,two-scopes", RevNat: "4 (missing)"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows:\n%s\nwant:\n%s", dumpRows(rows), dumpRows(want))
	}
}

func dumpRows(rs []Row) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s | %d | %s | %s | %s\n", r.Frontend, r.Slot, r.Backend, r.Flags, r.RevNat)
	}
	return b.String()
}

func TestSizesApply(t *testing.T) {
	cs, err := bpf.LoadSock()
	if err != nil {
		t.Fatal(err)
	}
	Sizes{Map: 1 << 17, Affinity: 100, SockRevNat: 200}.Apply(cs)
	for name, want := range map[string]uint32{
		ServicesMapName: 1 << 17, BackendsMapName: 1 << 17, RevNatMapName: 1 << 16, MaglevMapName: 1 << 16,
		AffinityMapName: 100, SockRevNatMapName: 200,
	} {
		if got := cs.Maps[name].MaxEntries; got != want {
			t.Errorf("%s: %d entries, want %d", name, got, want)
		}
	}
	cs2, _ := bpf.LoadSock()
	Sizes{}.Apply(cs2)
	if cs2.Maps[ServicesMapName].MaxEntries != DefaultMapSize || cs2.Maps[AffinityMapName].MaxEntries != DefaultAffinityMapSize ||
		cs2.Maps[SockRevNatMapName].MaxEntries != DefaultSockRevNatMapSize {
		t.Error("zero sizes must keep the defaults of bpf/lib/lb.h, which must equal the Default* constants")
	}
}

func TestFlagsString(t *testing.T) {
	if s := (loadbalancer.FlagNodePort | loadbalancer.FlagMaglev | 0x800).String(); s != "nodeport,maglev,0x800" {
		t.Errorf("flags = %q", s)
	}
}
