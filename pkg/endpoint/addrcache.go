package endpoint

import (
	"net/netip"
	"sync"
)

// AddrCache answers "which local endpoint holds this address" from a map
// rebuilt only when the manager's endpoints changed (Generation). Readers
// that ask for every packet event or every backend on every sync (the flow
// decoder, the service table) use it instead of AddrOwner, which scans.
type AddrCache struct {
	m EndpointLister

	mu     sync.Mutex
	gen    uint64
	byAddr map[netip.Addr]*Endpoint
}

// EndpointLister is what the cache reads: Manager implements it.
type EndpointLister interface {
	Generation() uint64
	List() []*Endpoint
}

// NewAddrCache returns a cache over the endpoints of m (a Manager).
func NewAddrCache(m EndpointLister) *AddrCache { return &AddrCache{m: m} }

// Lookup returns the endpoint holding a. The returned endpoint is a copy
// shared between callers: do not modify it.
func (c *AddrCache) Lookup(a netip.Addr) (*Endpoint, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The generation is read before the list: an endpoint added in
	// between changes it again, and the next call rebuilds.
	if g := c.m.Generation(); c.byAddr == nil || g != c.gen {
		c.byAddr = map[netip.Addr]*Endpoint{}
		for _, ep := range c.m.List() {
			for _, addr := range ep.Addrs() {
				c.byAddr[addr] = ep
			}
		}
		c.gen = g
	}
	ep, ok := c.byAddr[a]
	return ep, ok
}
