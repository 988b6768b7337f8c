package lb

import (
	"fmt"
	"strconv"

	"github.com/seta-net/seta/pkg/loadbalancer"
)

// Row is one printable line of `seta bpf lb list`: a frontend's service
// entry (slot 0) or one of its backend slots, in the style of
// `cilium bpf lb list`.
type Row struct {
	// Frontend is address:port/protocol, with " (internal)" for the
	// internal-scope entry.
	Frontend string `json:"frontend"`
	// Slot is 0 for the service entry, 1..n for backend slots.
	Slot uint16 `json:"slot"`
	// Backend is, for a slot, the backend's address:port/protocol, its ID
	// and state ("10.244.1.5:8080/TCP (id 3, active, local)"); for the
	// service entry, how many backends it has.
	Backend string `json:"backend"`
	// Flags are the service's flags (service entry only), with the
	// affinity timeout.
	Flags string `json:"flags,omitempty"`
	// RevNat is the rev-NAT ID and where replies appear to come from
	// ("5 (10.96.0.10:80)"); "5 (missing)" when the entry is absent.
	RevNat string `json:"revNat"`
}

// Rows renders what Dump returned as rows: frontends in order, each with
// its service entry and then its slots.
func Rows(services []loadbalancer.LBService, backends []loadbalancer.Backend, revnats []loadbalancer.RevNat) []Row {
	be := map[loadbalancer.BackendID]loadbalancer.Backend{}
	for _, b := range backends {
		be[b.ID] = b
	}
	rn := map[loadbalancer.ServiceID]loadbalancer.RevNat{}
	for _, r := range revnats {
		rn[r.ID] = r
	}
	var out []Row
	for _, s := range services {
		revnat := strconv.Itoa(int(s.ID)) + " (missing)"
		if r, ok := rn[s.ID]; ok {
			revnat = fmt.Sprintf("%d (%s)", s.ID, r.Addr)
		}
		flags := s.Flags.String()
		if s.Flags&loadbalancer.FlagAffinity != 0 {
			flags += fmt.Sprintf(" timeout=%ds", s.AffinityTimeout)
		}
		count := fmt.Sprintf("%d backends", len(s.Backends))
		if len(s.Backends) == 0 {
			count = "no backends (connections refused)"
		}
		fe := s.Frontend.String()
		out = append(out, Row{Frontend: fe, Slot: 0, Backend: count, Flags: flags, RevNat: revnat})
		for i, id := range s.Backends {
			desc := fmt.Sprintf("(id %d, missing)", id)
			if b, ok := be[id]; ok {
				desc = fmt.Sprintf("%s/%s (id %d, %s", b.Addr, b.Proto, id, b.State)
				if b.Local {
					desc += ", local"
				}
				desc += ")"
			}
			out = append(out, Row{Frontend: fe, Slot: uint16(i + 1), Backend: desc, RevNat: revnat})
		}
	}
	return out
}

// List reads the maps and returns them as rows (for the CLI).
func (m *Map) List() ([]Row, error) {
	s, b, r, err := m.Dump()
	if err != nil {
		return nil, err
	}
	return Rows(s, b, r), nil
}
