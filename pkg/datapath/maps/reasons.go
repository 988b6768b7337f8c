package maps

import (
	"fmt"

	"github.com/seta-net/seta/pkg/datapath/bpf"
)

// Reason is a forward/drop reason code from bpf/lib/drop.h.
type Reason uint8

// Reason names; the values come from the generated mirror of enum drop_reason.
var reasonNames = map[Reason]string{
	Reason(bpf.LxcDropReasonREASON_FORWARDED):       "Forwarded",
	Reason(bpf.LxcDropReasonDROP_INVALID_SOURCE_IP): "Invalid source ip",
	Reason(bpf.LxcDropReasonDROP_INVALID_PACKET):    "Invalid packet",
	Reason(bpf.LxcDropReasonDROP_REDIRECT_FAILED):   "Redirect to endpoint failed",
	Reason(bpf.LxcDropReasonDROP_UNKNOWN_ENDPOINT):  "No endpoint for destination",
}

func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("Unknown reason %d", uint8(r))
}

// MarshalText renders the reason by name in JSON and YAML.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
