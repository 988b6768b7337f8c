package datapath

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/seta-net/seta/pkg/datapath/bpf"
	"github.com/seta-net/seta/pkg/datapath/lb"
	"github.com/seta-net/seta/pkg/datapath/linux"
	"github.com/seta-net/seta/pkg/datapath/maps"
	"github.com/seta-net/seta/pkg/datapath/monitor"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/policy"
)

func policyKey(epID uint16, k policy.Key) maps.PolicyKey {
	return maps.NewPolicyKey(epID, uint8(k.Dir), uint32(k.Identity), k.Proto, k.Port, k.PortBits)
}

// PolicyCapacity is the size of the policy map.
func (d *Datapath) PolicyCapacity() int { return int(d.objs.Policy.MaxEntries()) }

// matchType is what the datapath reports when the entry matches: the
// key's match type, or none for the allow-all entry of a direction that is
// not enforced, which the datapath takes as "no policy decision" (no allowed
// verdict events). PolicyState inverts it.
func matchType(k maps.PolicyKey, v policy.Value) uint8 {
	if v.Unenforced {
		return uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_NONE)
	}
	return maps.KeyMatchType(k)
}

// WritePolicy applies a change to an endpoint's entries: new and changed
// entries first, then removals, so a flow allowed before and after never
// meets a missing entry; then the policy revision moves on, so
// established connections are checked against the result (policyrev.go).
func (d *Datapath) WritePolicy(epID uint16, u policy.Update) error {
	if len(u.Upsert)+len(u.Remove) == 0 {
		return nil
	}
	return errors.Join(d.writePolicy(epID, u), d.bumpPolicyRev())
}

func (d *Datapath) writePolicy(epID uint16, u policy.Update) error {
	for k, v := range u.Upsert {
		mk := policyKey(epID, k)
		if err := d.objs.Policy.Upsert(mk, v.Deny, v.Cookie, matchType(mk, v)); err != nil {
			return fmt.Errorf("endpoint %d: %w", epID, err)
		}
	}
	var errs []error
	for _, k := range u.Remove {
		errs = append(errs, d.objs.Policy.Delete(policyKey(epID, k)))
	}
	return errors.Join(errs...)
}

// PolicyState reads every endpoint's entries back from the kernel, so a
// restarted agent writes only what differs.
func (d *Datapath) PolicyState() (map[uint16]map[policy.Key]policy.Value, error) {
	all, err := d.objs.Policy.Dump()
	if err != nil {
		return nil, err
	}
	out := map[uint16]map[policy.Key]policy.Value{}
	for k, v := range all {
		port, bits := maps.PolicyKeyPort(k)
		pk := policy.Key{Dir: policy.Direction(k.Dir), Identity: identityOf(k.Identity), Proto: k.Proto, Port: port, PortBits: bits}
		if out[k.EpId] == nil {
			out[k.EpId] = map[policy.Key]policy.Value{}
		}
		// An entry written before match types existed reads as
		// unenforced; unless it is, the enforcer sees a difference and
		// rewrites it with its match type.
		out[k.EpId][pk] = policy.Value{Deny: v.Deny != 0, Cookie: v.Cookie,
			Unenforced: v.MatchType == uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_NONE)}
	}
	return out, nil
}

// SyncIPCache makes the ipcache map hold exactly want, and moves the
// policy revision on if that changed anything.
func (d *Datapath) SyncIPCache(want map[netip.Prefix]uint32) error {
	have, err := d.objs.IPCache.Dump()
	if err != nil {
		return err
	}
	var errs []error
	changed := false
	for p, id := range want {
		if cur, ok := have[p]; !ok || cur != id {
			errs = append(errs, d.objs.IPCache.Upsert(p, id))
			changed = true
		}
	}
	for p := range have {
		if _, ok := want[p]; !ok {
			errs = append(errs, d.objs.IPCache.Delete(p))
			changed = true
		}
	}
	if changed {
		errs = append(errs, d.bumpPolicyRev())
	}
	return errors.Join(errs...)
}

// UpdateEndpoint rewrites an endpoint's map entries after its identity or
// audit flag changed.
func (d *Datapath) UpdateEndpoint(ep *endpoint.Endpoint) error {
	lk, err := linkOf(ep)
	if err != nil {
		return err
	}
	return d.writeEndpoint(ep, ep.HostIfIndex, lk)
}

// NodeAddrs are the node's own addresses, which the ipcache maps to the
// host identity.
func (d *Datapath) NodeAddrs() ([]netip.Addr, error) { return linux.HostAddrs() }

// MapUsage counts the entries of the maps that fill up with the node's
// state. Counting iterates the maps, which for the conntrack table costs
// about a millisecond per ten thousand entries.
func (d *Datapath) MapUsage() ([]MapCount, error) {
	var out []MapCount
	for _, m := range []struct {
		name string
		m    interface {
			Count() (int, error)
			MaxEntries() uint32
		}
	}{
		{maps.EndpointsMapName, d.objs.Endpoints}, {maps.PolicyMapName, d.objs.Policy},
		{maps.IPCacheMapName, d.objs.IPCache}, {maps.CTMapName, d.objs.CT}, {lb.NATMapName, d.objs.NAT},
	} {
		n, err := m.m.Count()
		if err != nil {
			return out, err
		}
		out = append(out, MapCount{Name: m.name, Entries: n, Max: int(m.m.MaxEntries())})
	}
	lbu, err := d.objs.LB.Usage()
	if err != nil {
		return out, err
	}
	for _, u := range lbu {
		out = append(out, MapCount{Name: u.Name, Entries: u.Entries, Max: int(u.MaxEntries)})
	}
	return out, nil
}

// MapCount is a map's fill level.
type MapCount struct {
	Name    string
	Entries int
	Max     int
}

// NewEventReader opens the datapath's event ring; the caller closes it.
func (d *Datapath) NewEventReader() (*monitor.Reader, error) {
	return monitor.NewReader(d.objs.Events, d.objs.EventsLost)
}

// EventsLost is the number of events the datapath could not put in the
// event ring (the ring was full).
func (d *Datapath) EventsLost() (uint64, error) {
	var per []uint64
	if err := d.objs.EventsLost.Lookup(uint32(0), &per); err != nil {
		return 0, fmt.Errorf("read %s: %w", maps.EventsMapName+"_lost", err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}
