package maps

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/seta-net/seta/pkg/datapath/bpf"
)

// PolicyKey is the LPM key of the policy map (bpf/lib/policy.h).
type PolicyKey = bpf.LxcPolicyKey

// PolicyEntry is its value.
type PolicyEntry = bpf.LxcPolicyEntry

// policyFixedBits is the always-specified part: endpoint, direction,
// padding and identity.
const policyFixedBits = 64

// NewPolicyKey builds the key for one map-state entry of endpoint epID: proto
// 0 means any protocol (and then any port); portBits 0 means any port.
func NewPolicyKey(epID uint16, dir uint8, identity uint32, proto uint8, port uint16, portBits uint8) PolicyKey {
	k := PolicyKey{EpId: epID, Dir: dir, Identity: identity, Prefixlen: policyFixedBits}
	if proto != 0 {
		k.Proto = proto
		k.Prefixlen += 16 + uint32(portBits) // protocol and its pad byte, then port bits
		if portBits > 0 {
			// The port is in network byte order in the key; the prefix
			// covers its high bits first.
			k.Dport = htons(port)
		}
	}
	return k
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// PolicyKeyPort returns the key's port range start in host order and its
// prefix bits.
func PolicyKeyPort(k PolicyKey) (port uint16, bits uint8) {
	if k.Prefixlen <= policyFixedBits+16 {
		return 0, 0
	}
	return htons(k.Dport), uint8(k.Prefixlen - policyFixedBits - 16)
}

// KeyMatchType is the match type (enum policy_match_type, Cilium's
// numbering) of a policy entry with key k, as drop and verdict events
// report it: whether the key names a peer identity, a protocol, a port.
// It never returns POLICY_MATCH_NONE, which the writer uses for entries
// that are no policy decision.
func KeyMatchType(k PolicyKey) uint8 {
	l3 := k.Identity != 0
	var t bpf.LxcPolicyMatchType
	switch {
	case k.Prefixlen <= policyFixedBits: // any protocol, any port
		t = bpf.LxcPolicyMatchTypePOLICY_MATCH_ALL
		if l3 {
			t = bpf.LxcPolicyMatchTypePOLICY_MATCH_L3ONLY
		}
	case k.Prefixlen <= policyFixedBits+16: // a protocol, any port
		t = bpf.LxcPolicyMatchTypePOLICY_MATCH_PROTO_ONLY
		if l3 {
			t = bpf.LxcPolicyMatchTypePOLICY_MATCH_L3PROTO
		}
	default: // a protocol and a port or a block of ports
		t = bpf.LxcPolicyMatchTypePOLICY_MATCH_L4ONLY
		if l3 {
			t = bpf.LxcPolicyMatchTypePOLICY_MATCH_L3L4
		}
	}
	return uint8(t)
}

// PolicyMap is the LPM trie of every endpoint's policy.
type PolicyMap struct{ m *ebpf.Map }

// NewPolicyMap wraps a loaded map.
func NewPolicyMap(m *ebpf.Map) *PolicyMap { return &PolicyMap{m: m} }

// OpenPinnedPolicyMap opens the agent's pinned map (for the CLI).
func OpenPinnedPolicyMap(bpfRoot string) (*PolicyMap, error) {
	m, err := openPinned(bpfRoot, PolicyMapName)
	if err != nil {
		return nil, err
	}
	return &PolicyMap{m: m}, nil
}

// Close releases the map's file descriptor.
func (p *PolicyMap) Close() error { return p.m.Close() }

// MaxEntries is the map's capacity.
func (p *PolicyMap) MaxEntries() uint32 { return p.m.MaxEntries() }

// Upsert writes one entry; matchType (enum policy_match_type) is what
// events report when it matches, POLICY_MATCH_NONE for an entry that is no
// policy decision (the datapath reports no allowed verdicts for it).
func (p *PolicyMap) Upsert(k PolicyKey, deny bool, cookie uint32, matchType uint8) error {
	v := PolicyEntry{Cookie: cookie, MatchType: matchType}
	if deny {
		v.Deny = 1
	}
	if err := p.m.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update %s: %w", PolicyMapName, mapFullHint(p.m, err))
	}
	return nil
}

// Delete removes one entry; a missing one is not an error.
func (p *PolicyMap) Delete(k PolicyKey) error {
	if err := p.m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete %s: %w", PolicyMapName, err)
	}
	return nil
}

// Dump returns every entry.
func (p *PolicyMap) Dump() (map[PolicyKey]PolicyEntry, error) {
	out := map[PolicyKey]PolicyEntry{}
	var k PolicyKey
	var v PolicyEntry
	it := p.m.Iterate()
	for it.Next(&k, &v) {
		out[k] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("dump %s: %w", PolicyMapName, err)
	}
	return out, nil
}

// IPCacheMap maps address prefixes to security identities.
type IPCacheMap struct{ m *ebpf.Map }

// NewIPCacheMap wraps a loaded map.
func NewIPCacheMap(m *ebpf.Map) *IPCacheMap { return &IPCacheMap{m: m} }

// OpenPinnedIPCacheMap opens the agent's pinned map (for the CLI).
func OpenPinnedIPCacheMap(bpfRoot string) (*IPCacheMap, error) {
	m, err := openPinned(bpfRoot, IPCacheMapName)
	if err != nil {
		return nil, err
	}
	return &IPCacheMap{m: m}, nil
}

// Close releases the map's file descriptor.
func (c *IPCacheMap) Close() error { return c.m.Close() }

func ipcacheKey(p netip.Prefix) bpf.LxcIpcacheKey {
	p = p.Masked()
	k := bpf.LxcIpcacheKey{Prefixlen: 32 + uint32(p.Bits())}
	a := p.Addr().Unmap()
	if a.Is4() {
		k.Family = uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV4)
		b := a.As4()
		copy(k.Addr[:], b[:])
		k.Prefixlen = 32 + uint32(p.Bits())
	} else {
		k.Family = uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV6)
		b := a.As16()
		copy(k.Addr[:], b[:])
	}
	return k
}

func ipcachePrefix(k bpf.LxcIpcacheKey) netip.Prefix {
	bits := int(k.Prefixlen) - 32
	if k.Family == uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV4) {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(k.Addr[:4])), bits)
	}
	return netip.PrefixFrom(netip.AddrFrom16(k.Addr), bits)
}

// Upsert maps prefix to identity.
func (c *IPCacheMap) Upsert(p netip.Prefix, identity uint32) error {
	k := ipcacheKey(p)
	v := bpf.LxcIpcacheValue{Identity: identity}
	if err := c.m.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update %s[%s]: %w", IPCacheMapName, p, mapFullHint(c.m, err))
	}
	return nil
}

// Delete removes prefix; a missing one is not an error.
func (c *IPCacheMap) Delete(p netip.Prefix) error {
	k := ipcacheKey(p)
	if err := c.m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete %s[%s]: %w", IPCacheMapName, p, err)
	}
	return nil
}

// Dump returns every prefix and its identity.
func (c *IPCacheMap) Dump() (map[netip.Prefix]uint32, error) {
	out := map[netip.Prefix]uint32{}
	var k bpf.LxcIpcacheKey
	var v bpf.LxcIpcacheValue
	it := c.m.Iterate()
	for it.Next(&k, &v) {
		out[ipcachePrefix(k)] = v.Identity
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("dump %s: %w", IPCacheMapName, err)
	}
	return out, nil
}

// PolicyRevMapName is the pinned name of the policy revision
// (bpf/lib/enforce.h).
const PolicyRevMapName = "seta_policy_rev"

// PolicyRevMap is the policy revision: one u32 that conntrack entries
// record when policy allowed their connection, so the forward packets of
// a connection skip policy until the revision changes.
type PolicyRevMap struct{ m *ebpf.Map }

// NewPolicyRevMap wraps a loaded map.
func NewPolicyRevMap(m *ebpf.Map) *PolicyRevMap { return &PolicyRevMap{m: m} }

// OpenPinnedPolicyRevMap opens the agent's pinned map (for the CLI and
// tests).
func OpenPinnedPolicyRevMap(bpfRoot string) (*PolicyRevMap, error) {
	m, err := openPinned(bpfRoot, PolicyRevMapName)
	if err != nil {
		return nil, err
	}
	return &PolicyRevMap{m: m}, nil
}

// Close releases the map's file descriptor.
func (p *PolicyRevMap) Close() error { return p.m.Close() }

// Get returns the current revision.
func (p *PolicyRevMap) Get() (uint32, error) {
	var v uint32
	if err := p.m.Lookup(uint32(0), &v); err != nil {
		return 0, fmt.Errorf("read %s: %w", PolicyRevMapName, err)
	}
	return v, nil
}

// Bump moves the revision on by one and returns the new one; it skips 0,
// which conntrack entries use for "not allowed under any revision". The
// caller serialises bumps: the agent is the map's only writer.
func (p *PolicyRevMap) Bump() (uint32, error) {
	v, err := p.Get()
	if err != nil {
		return 0, err
	}
	v++
	if v == 0 {
		v = 1
	}
	if err := p.m.Update(uint32(0), v, ebpf.UpdateAny); err != nil {
		return 0, fmt.Errorf("update %s: %w", PolicyRevMapName, err)
	}
	return v, nil
}
