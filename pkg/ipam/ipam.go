// Package ipam allocates pod addresses from the node's pod CIDRs (host-scope
// IPAM, one pool per address family). It is plain Go: it keeps allocations
// in memory and the endpoint store persists them, so a restarted agent
// rebuilds its pools by re-registering every restored endpoint's addresses.
package ipam

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
)

var (
	// ErrExhausted means the pool has no free address left.
	ErrExhausted = errors.New("pod CIDR exhausted")
	// ErrConflict means the requested address is taken or reserved.
	ErrConflict = errors.New("address not available")
	// ErrOutOfRange means the requested address is outside the pod CIDR.
	ErrOutOfRange = errors.New("address outside the pod CIDR")
)

// Smallest pools accepted: at least a gateway and two pods.
const (
	maxPrefixV4 = 29
	maxPrefixV6 = 125
)

// ParsePodCIDR parses and validates a pod CIDR of the given family (4 or 6).
func ParsePodCIDR(s string, family int) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid pod CIDR %q: %w", s, err)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid pod CIDR %q: zones are not allowed", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("invalid pod CIDR %q: host bits are set (did you mean %s?)", s, p.Masked())
	}
	switch family {
	case 4:
		if !p.Addr().Is4() {
			return netip.Prefix{}, fmt.Errorf("invalid IPv4 pod CIDR %q: not an IPv4 prefix", s)
		}
		if p.Bits() > maxPrefixV4 {
			return netip.Prefix{}, fmt.Errorf("invalid IPv4 pod CIDR %q: too small, need /%d or larger", s, maxPrefixV4)
		}
	case 6:
		if !p.Addr().Is6() || p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("invalid IPv6 pod CIDR %q: not an IPv6 prefix", s)
		}
		if p.Bits() > maxPrefixV6 {
			return netip.Prefix{}, fmt.Errorf("invalid IPv6 pod CIDR %q: too small, need /%d or larger", s, maxPrefixV6)
		}
	default:
		return netip.Prefix{}, fmt.Errorf("unknown address family %d", family)
	}
	for _, r := range reservedRanges {
		if p.Overlaps(r) {
			return netip.Prefix{}, fmt.Errorf("invalid pod CIDR %q: overlaps %s, which cannot hold pods (unspecified, loopback, link-local or multicast)", s, r)
		}
	}
	return p, nil
}

// reservedRanges can never hold pod addresses.
var reservedRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/127"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

// Overlaps reports whether two prefixes share any address.
func Overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// Pool hands out the addresses of one prefix. The first usable address is
// the gateway; the network address (and for IPv4 the broadcast address) is
// never handed out.
type Pool struct {
	mu        sync.Mutex
	prefix    netip.Prefix
	gateway   netip.Addr
	last      netip.Addr // last assignable address
	cursor    netip.Addr // next address to try
	allocated map[netip.Addr]string
}

// NewPool returns a pool for a prefix validated by ParsePodCIDR.
func NewPool(prefix netip.Prefix) *Pool {
	gw := prefix.Addr().Next()
	return &Pool{
		prefix:    prefix,
		gateway:   gw,
		last:      lastAddr(prefix),
		cursor:    gw.Next(),
		allocated: map[netip.Addr]string{},
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	if a.Is4() {
		a = a.Prev() // broadcast
	}
	return a
}

// Prefix returns the pool's prefix.
func (p *Pool) Prefix() netip.Prefix { return p.prefix }

// Gateway returns the address reserved for the node's gateway.
func (p *Pool) Gateway() netip.Addr { return p.gateway }

// Capacity is the number of assignable addresses (saturating).
func (p *Pool) Capacity() uint64 {
	hostBits := p.prefix.Addr().BitLen() - p.prefix.Bits()
	if hostBits >= 64 {
		return math.MaxUint64
	}
	n := uint64(1) << hostBits
	n -= 2 // network address and gateway
	if p.prefix.Addr().Is4() {
		n-- // broadcast
	}
	return n
}

// Used is the number of allocated addresses.
func (p *Pool) Used() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.allocated)
}

// Allocate hands out the next free address after the last one handed out,
// so a released address is not reused at once.
func (p *Pool) Allocate(owner string) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if uint64(len(p.allocated)) >= p.Capacity() {
		return netip.Addr{}, fmt.Errorf("%w: all %d addresses of %s are in use", ErrExhausted, p.Capacity(), p.prefix)
	}
	start := p.cursor
	for a := start; ; {
		if _, taken := p.allocated[a]; !taken {
			p.allocated[a] = owner
			p.cursor = p.advance(a)
			return a, nil
		}
		a = p.advance(a)
		if a == start {
			break
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: all %d addresses of %s are in use", ErrExhausted, p.Capacity(), p.prefix)
}

func (p *Pool) advance(a netip.Addr) netip.Addr {
	if a == p.last {
		return p.gateway.Next()
	}
	return a.Next()
}

// AllocateIP claims a specific address. Claiming an address the same owner
// already holds succeeds, which makes restoring state idempotent.
func (p *Pool) AllocateIP(a netip.Addr, owner string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	a = a.Unmap()
	if !p.prefix.Contains(a) {
		return fmt.Errorf("%w: %s is not in %s", ErrOutOfRange, a, p.prefix)
	}
	if a == p.prefix.Addr() || a == p.gateway || a.Compare(p.last) > 0 {
		return fmt.Errorf("%w: %s is reserved (network, gateway or broadcast address of %s)", ErrConflict, a, p.prefix)
	}
	if cur, taken := p.allocated[a]; taken {
		if cur == owner {
			return nil
		}
		return fmt.Errorf("%w: %s is already assigned to %s", ErrConflict, a, cur)
	}
	p.allocated[a] = owner
	return nil
}

// Release returns an address to the pool; releasing a free address is a no-op.
func (p *Pool) Release(a netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.allocated, a.Unmap())
}

// Owner returns who holds a, if anyone.
func (p *Pool) Owner(a netip.Addr) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, ok := p.allocated[a.Unmap()]
	return o, ok
}

// IPAM is the node's pools: IPv4, IPv6 or both.
type IPAM struct {
	V4 *Pool // nil without an IPv4 pod CIDR
	V6 *Pool // nil without an IPv6 pod CIDR
}

// Allocate hands out one address per configured family, all or nothing.
func (m *IPAM) Allocate(owner string) (v4, v6 netip.Addr, err error) {
	if m.V4 != nil {
		if v4, err = m.V4.Allocate(owner); err != nil {
			return netip.Addr{}, netip.Addr{}, err
		}
	}
	if m.V6 != nil {
		if v6, err = m.V6.Allocate(owner); err != nil {
			if v4.IsValid() {
				m.V4.Release(v4)
			}
			return netip.Addr{}, netip.Addr{}, err
		}
	}
	return v4, v6, nil
}

// Claim registers existing addresses for owner (restore after restart), all
// or nothing: a failure leaves every pool as it was, including addresses the
// owner already held before the call.
func (m *IPAM) Claim(owner string, v4, v6 netip.Addr) error {
	heldV4 := false
	if v4.IsValid() && m.V4 != nil {
		cur, ok := m.V4.Owner(v4)
		heldV4 = ok && cur == owner
	}
	rollback := func() {
		if v4.IsValid() && !heldV4 {
			m.V4.Release(v4)
		}
	}
	if v4.IsValid() {
		if m.V4 == nil {
			return fmt.Errorf("%w: %s, but the node has no IPv4 pod CIDR", ErrOutOfRange, v4)
		}
		if err := m.V4.AllocateIP(v4, owner); err != nil {
			return err
		}
	}
	if v6.IsValid() {
		if m.V6 == nil {
			rollback()
			return fmt.Errorf("%w: %s, but the node has no IPv6 pod CIDR", ErrOutOfRange, v6)
		}
		if err := m.V6.AllocateIP(v6, owner); err != nil {
			rollback()
			return err
		}
	}
	return nil
}

// Release returns both addresses; invalid ones are skipped.
func (m *IPAM) Release(v4, v6 netip.Addr) {
	if v4.IsValid() && m.V4 != nil {
		m.V4.Release(v4)
	}
	if v6.IsValid() && m.V6 != nil {
		m.V6.Release(v6)
	}
}

// PoolStatus summarises one pool.
type PoolStatus struct {
	CIDR     string `json:"cidr"`
	Gateway  string `json:"gateway"`
	Used     int    `json:"used"`
	Capacity uint64 `json:"capacity"`
}

// Status summarises the pools.
func (m *IPAM) Status() []PoolStatus {
	var out []PoolStatus
	for _, p := range []*Pool{m.V4, m.V6} {
		if p != nil {
			out = append(out, PoolStatus{CIDR: p.prefix.String(), Gateway: p.gateway.String(), Used: p.Used(), Capacity: p.Capacity()})
		}
	}
	return out
}
