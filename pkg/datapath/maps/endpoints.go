package maps

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/seta-net/seta/pkg/datapath/bpf"
)

// Pinned map names, as declared in bpf/lib/maps.h.
const (
	EndpointsMapName = "seta_endpoints"
	EpStatsMapName   = "seta_ep_stats"
	MetricsMapName   = "seta_metrics"
	PolicyMapName    = "seta_policy"
	IPCacheMapName   = "seta_ipcache"
	EventsMapName    = "seta_events"
)

// EndpointKey is the key of the endpoints map: one endpoint address.
type EndpointKey = bpf.LxcEndpointKey

// EndpointInfo is the value of the endpoints map.
type EndpointInfo = bpf.LxcEndpointInfo

// NewEndpointKey builds the key for addr (IPv4 or IPv6).
func NewEndpointKey(addr netip.Addr) EndpointKey {
	var k EndpointKey
	addr = addr.Unmap()
	if addr.Is4() {
		a := addr.As4()
		copy(k.Addr[:], a[:])
		k.Family = uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV4)
	} else {
		a := addr.As16()
		copy(k.Addr[:], a[:])
		k.Family = uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV6)
	}
	return k
}

// KeyAddr returns the address held by k.
func KeyAddr(k EndpointKey) netip.Addr {
	if k.Family == uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV4) {
		return netip.AddrFrom4([4]byte(k.Addr[:4]))
	}
	return netip.AddrFrom16(k.Addr)
}

// Flags of EndpointInfo, mirroring ENDPOINT_F_* in bpf/lib/maps.h.
const (
	// EndpointFlagAudit: report policy drops, drop nothing.
	EndpointFlagAudit = 0x1
	// EndpointFlagIngressOpen and EndpointFlagEgressOpen: no policy
	// enforces the direction (its only policy entry is the allow-all
	// one), so the datapath skips its policy lookups.
	EndpointFlagIngressOpen = 0x2
	EndpointFlagEgressOpen  = 0x4
)

// OpenFlags are the flags for an endpoint whose ingress and/or egress no
// policy enforces.
func OpenFlags(ingress, egress bool) uint16 {
	var f uint16
	if ingress {
		f |= EndpointFlagIngressOpen
	}
	if egress {
		f |= EndpointFlagEgressOpen
	}
	return f
}

// NewEndpointInfo builds a map value.
func NewEndpointInfo(id uint16, ifindex int, podMAC, hostMAC net.HardwareAddr, identity uint32, audit bool) EndpointInfo {
	v := EndpointInfo{Ifindex: uint32(ifindex), Id: id, Identity: identity}
	if audit {
		v.Flags |= EndpointFlagAudit
	}
	copy(v.Mac[:], podMAC)
	copy(v.NodeMac[:], hostMAC)
	return v
}

// FormatEndpointInfo renders v for people.
func FormatEndpointInfo(v EndpointInfo) string {
	s := fmt.Sprintf("id=%d ifindex=%d identity=%d mac=%s node_mac=%s", v.Id, v.Ifindex, v.Identity,
		net.HardwareAddr(v.Mac[:]), net.HardwareAddr(v.NodeMac[:]))
	for _, f := range []struct {
		bit  uint16
		name string
	}{{EndpointFlagAudit, "audit"}, {EndpointFlagIngressOpen, "ingress-open"}, {EndpointFlagEgressOpen, "egress-open"}} {
		if v.Flags&f.bit != 0 {
			s += " " + f.name
		}
	}
	return s
}

// EndpointMap is the map of local endpoints by address.
type EndpointMap struct{ m *ebpf.Map }

// NewEndpointMap wraps an already loaded map.
func NewEndpointMap(m *ebpf.Map) *EndpointMap { return &EndpointMap{m: m} }

// OpenPinnedEndpointMap opens the agent's pinned map under bpfRoot (for the CLI).
func OpenPinnedEndpointMap(bpfRoot string) (*EndpointMap, error) {
	m, err := openPinned(bpfRoot, EndpointsMapName)
	if err != nil {
		return nil, err
	}
	return &EndpointMap{m: m}, nil
}

// Map returns the underlying map.
func (e *EndpointMap) Map() *ebpf.Map { return e.m }

// Close releases the map's file descriptor.
func (e *EndpointMap) Close() error { return e.m.Close() }

// Upsert writes addr -> v.
func (e *EndpointMap) Upsert(addr netip.Addr, v EndpointInfo) error {
	k := NewEndpointKey(addr)
	if err := e.m.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update %s[%s]: %w", EndpointsMapName, addr, mapFullHint(e.m, err))
	}
	return nil
}

// Delete removes addr; a missing entry is not an error.
func (e *EndpointMap) Delete(addr netip.Addr) error {
	k := NewEndpointKey(addr)
	if err := e.m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete %s[%s]: %w", EndpointsMapName, addr, err)
	}
	return nil
}

// Lookup returns the value for addr.
func (e *EndpointMap) Lookup(addr netip.Addr) (EndpointInfo, bool, error) {
	var v EndpointInfo
	k := NewEndpointKey(addr)
	err := e.m.Lookup(&k, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return v, false, nil
	}
	if err != nil {
		return v, false, fmt.Errorf("lookup %s[%s]: %w", EndpointsMapName, addr, err)
	}
	return v, true, nil
}

// Dump returns every entry.
func (e *EndpointMap) Dump() (map[netip.Addr]EndpointInfo, error) {
	out := map[netip.Addr]EndpointInfo{}
	var k EndpointKey
	var v EndpointInfo
	it := e.m.Iterate()
	for it.Next(&k, &v) {
		out[KeyAddr(k)] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("dump %s: %w", EndpointsMapName, err)
	}
	return out, nil
}

func openPinned(bpfRoot, name string) (*ebpf.Map, error) {
	path := filepath.Join(bpfRoot, name)
	m, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		return nil, fmt.Errorf("open pinned map %s (is the agent running with --bpf-root %s, and are you root?): %w", path, bpfRoot, err)
	}
	return m, nil
}

// mapFullHint turns the kernel's E2BIG on a full hash map into a readable error.
func mapFullHint(m *ebpf.Map, err error) error {
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	if isE2BIG(err) {
		return fmt.Errorf("map is full (%d entries); raise its size in the agent config: %w", m.MaxEntries(), err)
	}
	return err
}
