package maps

import (
	"fmt"

	"github.com/seta-net/seta/pkg/datapath/bpf"
)

// Reason is a forward/drop reason code from bpf/lib/drop.h.
type Reason uint8

// Reason names, as Cilium and Hubble print them; the values come from the
// generated mirror of enum drop_reason.
var reasonNames = map[Reason]string{
	Reason(bpf.LxcDropReasonREASON_FORWARDED):       "Forwarded",
	Reason(bpf.LxcDropReasonDROP_INVALID_SOURCE_IP): "Invalid source ip",
	Reason(bpf.LxcDropReasonDROP_POLICY):            "Policy denied",
	Reason(bpf.LxcDropReasonDROP_INVALID_PACKET):    "Invalid packet",
	Reason(bpf.LxcDropReasonDROP_UNROUTABLE):        "Stale or unroutable IP",
	Reason(bpf.LxcDropReasonDROP_UNKNOWN_ENDPOINT):  "No matching local container found",
	Reason(bpf.LxcDropReasonDROP_CT_CREATE_FAILED):  "CT: Map insertion failed",
	Reason(bpf.LxcDropReasonDROP_POLICY_DENY):       "Policy denied by denylist",
	Reason(bpf.LxcDropReasonDROP_NO_SERVICE):        "Service backend not found",
	Reason(bpf.LxcDropReasonDROP_NAT_NO_MAPPING):    "No mapping for NAT masquerade",
	Reason(bpf.LxcDropReasonDROP_FIB_LOOKUP_FAILED): "FIB lookup failed",
}

func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("Unknown reason %d", uint8(r))
}

// MarshalText renders the reason by name in JSON and YAML.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
