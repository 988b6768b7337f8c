package maps

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// count iterates m and counts its entries without decoding them.
func count(m *ebpf.Map) (int, error) {
	n := 0
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		return n, fmt.Errorf("count %s: %w", m.String(), err)
	}
	return n, nil
}

// Count returns the number of entries.
func (e *EndpointMap) Count() (int, error) { return count(e.m) }

// MaxEntries is the capacity.
func (e *EndpointMap) MaxEntries() uint32 { return e.m.MaxEntries() }

// Count returns the number of entries.
func (p *PolicyMap) Count() (int, error) { return count(p.m) }

// Count returns the number of entries.
func (c *IPCacheMap) Count() (int, error) { return count(c.m) }

// MaxEntries is the capacity.
func (c *IPCacheMap) MaxEntries() uint32 { return c.m.MaxEntries() }
