package datapath

import (
	"errors"
	"net/netip"
	"sync"

	"github.com/seta-net/seta/pkg/datapath/linux"
	"github.com/seta-net/seta/pkg/datapath/maps"
	"github.com/seta-net/seta/pkg/endpoint"
)

// openMask are the endpoint flags SetPolicyOpen owns.
const openMask = maps.EndpointFlagIngressOpen | maps.EndpointFlagEgressOpen

// epIndex remembers, per endpoint ID, the addresses its endpoints-map
// entries are under and the policy flags they should carry, so the
// enforcer can flip the flags by ID and every rewrite of an entry keeps
// them. mu also serialises every write of those entries, so a rewrite
// never undoes a concurrent flag change.
type epIndex struct {
	mu    sync.Mutex
	addrs map[uint16][]netip.Addr
	open  map[uint16]uint16
}

// indexEndpoints seeds the index from the pinned endpoints map, so that
// after a restart the enforcer can clear a flag on an entry the previous
// agent wrote before the endpoint is restored.
func (d *Datapath) indexEndpoints() error {
	entries, err := d.objs.Endpoints.Dump()
	if err != nil {
		return err
	}
	d.eps.addrs, d.eps.open = map[uint16][]netip.Addr{}, map[uint16]uint16{}
	for a, v := range entries {
		d.eps.addrs[v.Id] = append(d.eps.addrs[v.Id], a)
	}
	return nil
}

// writeEndpoint writes ep's entries (one per address), with the policy
// flags last set for its ID, and moves the policy revision on: the
// endpoint's identity or audit flag may have changed, or its addresses may
// have had another identity before.
func (d *Datapath) writeEndpoint(ep *endpoint.Endpoint, ifindex int, lk linux.Link) error {
	d.eps.mu.Lock()
	defer d.eps.mu.Unlock()
	info := maps.NewEndpointInfo(ep.ID, ifindex, lk.PodMAC, lk.HostMAC, ep.Identity, ep.PolicyAudit || d.cfg.AuditMode)
	info.Flags |= d.eps.open[ep.ID]
	d.eps.addrs[ep.ID] = ep.Addrs()
	var err error
	for _, a := range ep.Addrs() {
		if err = d.objs.Endpoints.Upsert(a, info); err != nil {
			break
		}
	}
	return errors.Join(err, d.bumpPolicyRev())
}

// removeEndpointEntries deletes ep's entries that still point at it (an
// address may already belong to a newer endpoint) and forgets its ID; the
// policy revision moves on if an entry went (its address is now known by
// the ipcache alone).
func (d *Datapath) removeEndpointEntries(ep *endpoint.Endpoint) error {
	d.eps.mu.Lock()
	defer d.eps.mu.Unlock()
	var errs []error
	removed := false
	for _, a := range ep.Addrs() {
		if v, ok, err := d.objs.Endpoints.Lookup(a); err == nil && ok && v.Id == ep.ID {
			errs = append(errs, d.objs.Endpoints.Delete(a))
			removed = true
		}
	}
	if removed {
		errs = append(errs, d.bumpPolicyRev())
	}
	delete(d.eps.addrs, ep.ID)
	delete(d.eps.open, ep.ID)
	return errors.Join(errs...)
}

// SetPolicyOpen implements enforcer.Datapath: it marks which directions of
// endpoint id no policy enforces, so the datapath skips their policy
// lookups (ENDPOINT_F_INGRESS_OPEN/EGRESS_OPEN in bpf/lib/maps.h). The
// caller sets a flag only while the direction's only policy entry is the
// allow-all one, and clears it before writing entries that enforce. The
// entries are rewritten now if they exist (and the policy revision moves
// on), and later writes keep the flags.
func (d *Datapath) SetPolicyOpen(id uint16, ingress, egress bool) error {
	flags := maps.OpenFlags(ingress, egress)
	d.eps.mu.Lock()
	defer d.eps.mu.Unlock()
	d.eps.open[id] = flags
	var errs []error
	changed := false
	for _, a := range d.eps.addrs[id] {
		v, ok, err := d.objs.Endpoints.Lookup(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok || v.Id != id || v.Flags&openMask == flags {
			continue
		}
		v.Flags = v.Flags&^openMask | flags
		errs = append(errs, d.objs.Endpoints.Upsert(a, v))
		changed = true
	}
	if changed {
		errs = append(errs, d.bumpPolicyRev())
	}
	return errors.Join(errs...)
}
