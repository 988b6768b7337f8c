package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/seta-net/seta/pkg/identity"
)

// Direction of traffic, from the endpoint's point of view. The values are
// the datapath's (enum traffic_dir in bpf/lib/common.h).
type Direction uint8

const (
	Egress  Direction = 0
	Ingress Direction = 1
)

func (d Direction) String() string {
	if d == Ingress {
		return "ingress"
	}
	return "egress"
}

// Protocol numbers used in keys.
const (
	ProtoAny    uint8 = 0
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132
)

// ProtoName names a protocol number.
func ProtoName(p uint8) string {
	switch p {
	case ProtoAny:
		return "ANY"
	case ProtoICMP:
		return "ICMP"
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoICMPv6:
		return "ICMPv6"
	case ProtoSCTP:
		return "SCTP"
	}
	return fmt.Sprintf("proto-%d", p)
}

// Key is one entry of the flat policy state of an endpoint: a direction, a
// peer identity (0 = any), a protocol (0 = any) and a prefix-aligned port
// range (PortBits 0 = any port; for ICMP the "port" is the ICMP type). It
// maps one to one onto the datapath's LPM policy key.
type Key struct {
	Dir      Direction
	Identity identity.ID
	Proto    uint8
	Port     uint16
	PortBits uint8
}

func (k Key) String() string {
	id := "any"
	if k.Identity != 0 {
		id = fmt.Sprint(uint32(k.Identity))
	}
	port := "any"
	if k.PortBits > 0 {
		lo, hi := k.PortRange()
		port = fmt.Sprint(lo)
		if hi != lo {
			port = fmt.Sprintf("%d-%d", lo, hi)
		}
	}
	return fmt.Sprintf("%s identity=%s %s/%s", k.Dir, id, port, ProtoName(k.Proto))
}

// PortRange returns the first and last port the key covers.
func (k Key) PortRange() (uint16, uint16) {
	if k.PortBits == 0 {
		return 0, 65535
	}
	span := uint32(1) << (16 - uint32(k.PortBits))
	return k.Port, uint16(uint32(k.Port) + span - 1)
}

// covers reports whether every packet k matches, d matches too.
func (d Key) covers(k Key) bool {
	if d.Dir != k.Dir {
		return false
	}
	if d.Identity != 0 && d.Identity != k.Identity {
		return false
	}
	if d.Proto != ProtoAny && d.Proto != k.Proto {
		return false
	}
	if d.PortBits == 0 {
		return true
	}
	if k.PortBits < d.PortBits {
		return false
	}
	mask := uint16(0xffff) << (16 - d.PortBits)
	return k.Port&mask == d.Port
}

// intersect returns the key matching exactly the packets both match.
func intersect(a, b Key) (Key, bool) {
	if a.covers(b) {
		return b, true
	}
	if b.covers(a) {
		return a, true
	}
	if a.Dir != b.Dir {
		return Key{}, false
	}
	out := Key{Dir: a.Dir}
	switch {
	case a.Identity == 0:
		out.Identity = b.Identity
	case b.Identity == 0 || a.Identity == b.Identity:
		out.Identity = a.Identity
	default:
		return Key{}, false
	}
	switch {
	case a.Proto == ProtoAny:
		out.Proto, out.Port, out.PortBits = b.Proto, b.Port, b.PortBits
		return out, true
	case b.Proto == ProtoAny:
		out.Proto, out.Port, out.PortBits = a.Proto, a.Port, a.PortBits
		return out, true
	case a.Proto != b.Proto:
		return Key{}, false
	}
	out.Proto = a.Proto
	// Prefix-aligned ranges are nested or disjoint.
	pa := Key{Dir: a.Dir, Identity: out.Identity, Proto: a.Proto, Port: a.Port, PortBits: a.PortBits}
	pb := Key{Dir: a.Dir, Identity: out.Identity, Proto: a.Proto, Port: b.Port, PortBits: b.PortBits}
	switch {
	case pa.covers(pb):
		out.Port, out.PortBits = b.Port, b.PortBits
	case pb.covers(pa):
		out.Port, out.PortBits = a.Port, a.PortBits
	default:
		return Key{}, false
	}
	return out, true
}

// Entry is what the datapath does with packets matching a key.
type Entry struct {
	Deny bool
	// Rules names the policies that produced the entry, for policy trace
	// and drop events.
	Rules []string
}

func (e Entry) merge(o Entry) Entry {
	out := Entry{Deny: e.Deny || o.Deny}
	switch {
	case e.Deny == o.Deny:
		out.Rules = mergeNames(e.Rules, o.Rules)
	case e.Deny:
		out.Rules = slices.Clone(e.Rules)
	default:
		out.Rules = slices.Clone(o.Rules)
	}
	return out
}

func mergeNames(a, b []string) []string {
	out := slices.Clone(a)
	for _, n := range b {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// MapState is an endpoint's flat policy: what the reconciler writes to the
// datapath. Deny always wins: after Add, every packet that any deny entry
// matches is matched most specifically by a deny entry.
type MapState map[Key]Entry

// add merges one entry without deny resolution.
func (m MapState) add(k Key, e Entry) {
	if cur, ok := m[k]; ok {
		m[k] = cur.merge(e)
		return
	}
	m[k] = e
}

// resolveDenies makes deny win over allow under most-specific-match lookup:
// an allow entry covered by a deny entry becomes a deny; where a deny only
// overlaps an allow, the overlap gets its own deny entry.
func (m MapState) resolveDenies() {
	var denies, allows []Key
	for k, e := range m {
		if e.Deny {
			denies = append(denies, k)
		} else {
			allows = append(allows, k)
		}
	}
	for _, d := range denies {
		de := m[d]
		for _, a := range allows {
			i, ok := intersect(d, a)
			if !ok {
				continue
			}
			cur, exists := m[i]
			if !exists || !cur.Deny {
				m[i] = Entry{Deny: true, Rules: slices.Clone(de.Rules)}
			} else {
				m[i] = cur.merge(de)
			}
		}
	}
}

// Lookup finds the entry the datapath would apply to a packet: the most
// specific matching key, where a specific identity beats "any identity",
// then a specific protocol beats any, then the longer port prefix wins.
func (m MapState) Lookup(dir Direction, peer identity.ID, proto uint8, port uint16) (Key, Entry, bool) {
	pkt := Key{Dir: dir, Identity: peer, Proto: proto, Port: port, PortBits: 16}
	var best Key
	var found bool
	for k := range m {
		if !k.covers(pkt) {
			continue
		}
		if !found || moreSpecific(k, best) {
			best, found = k, true
		}
	}
	if !found {
		return Key{}, Entry{}, false
	}
	return best, m[best], true
}

func moreSpecific(a, b Key) bool {
	if (a.Identity != 0) != (b.Identity != 0) {
		return a.Identity != 0
	}
	if (a.Proto != 0) != (b.Proto != 0) {
		return a.Proto != 0
	}
	return a.PortBits > b.PortBits
}

// Diff returns the keys to write (new or changed) and to delete to turn old
// into new.
func Diff(old, new MapState) (upsert []Key, remove []Key) {
	for k, e := range new {
		if o, ok := old[k]; !ok || o.Deny != e.Deny {
			upsert = append(upsert, k)
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			remove = append(remove, k)
		}
	}
	return upsert, remove
}

// Strings renders the state sorted, one entry a line (for dumps and tests).
func (m MapState) Strings() []string {
	out := make([]string, 0, len(m))
	for k, e := range m {
		v := "allow"
		if e.Deny {
			v = "deny"
		}
		out = append(out, k.String()+" "+v+" ["+strings.Join(e.Rules, ",")+"]")
	}
	slices.Sort(out)
	return out
}

// PortPrefixes splits the inclusive range [lo, hi] into the fewest
// prefix-aligned blocks, as (first port, prefix bits) pairs.
func PortPrefixes(lo, hi uint16) [][2]uint32 {
	var out [][2]uint32
	start, end := uint32(lo), uint32(hi)
	for start <= end {
		bits := uint32(16)
		// Grow the block while it stays aligned and inside the range.
		for bits > 0 {
			size := uint32(1) << (16 - (bits - 1))
			if start%size != 0 || start+size-1 > end {
				break
			}
			bits--
		}
		out = append(out, [2]uint32{start, bits})
		start += uint32(1) << (16 - bits)
	}
	return out
}

// Value is a map-state entry as the datapath stores it: the verdict and a
// cookie that names the entry's rules for user space.
type Value struct {
	Deny   bool
	Cookie uint32
	// Unenforced marks the allow-all entry of a direction no policy
	// enforces (Resolved.IngressEnforced/EgressEnforced false): it lets
	// traffic pass without a policy decision, so the datapath reports no
	// policy verdicts for what it allows.
	Unenforced bool
}

// Update is a change to one endpoint's entries in the datapath: Upsert is
// written before Remove is deleted.
type Update struct {
	Upsert map[Key]Value
	Remove []Key
}
