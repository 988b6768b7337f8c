package endpoint

import (
	"errors"
	"net/netip"
	"time"
)

// State of an endpoint.
type State string

const (
	// StateCreating: addresses are reserved and the datapath is being set up.
	StateCreating State = "creating"
	// StateReady: the datapath delivers traffic to and from the endpoint.
	StateReady State = "ready"
	// StateDeleting: the datapath is being torn down.
	StateDeleting State = "deleting"
)

// Endpoint is one network attachment of a pod: a veth pair with the pod's
// addresses. It is both the persisted record and the API model (see
// docs/api.md), so its JSON field names are part of the v1 API.
type Endpoint struct {
	ID          uint16 `json:"id"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	NetNS       string `json:"netns"`
	// Network is the CNI network name that created the endpoint; GC only
	// touches endpoints of its own network.
	Network   string   `json:"network,omitempty"`
	PodName   string   `json:"podName,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
	Labels    []string `json:"labels,omitempty"`

	IPv4      netip.Addr `json:"ipv4,omitzero"`
	IPv6      netip.Addr `json:"ipv6,omitzero"`
	GatewayV4 netip.Addr `json:"gatewayV4,omitzero"`
	GatewayV6 netip.Addr `json:"gatewayV6,omitzero"`

	// Identity is the security identity of the endpoint's labels.
	Identity uint32 `json:"identity,omitempty"`
	// SecurityLabels are the labels the identity stands for: the
	// endpoint's labels with sources, filtered, plus its namespace.
	SecurityLabels []string `json:"securityLabels,omitempty"`
	// PolicyAudit makes the datapath report policy drops but drop nothing.
	PolicyAudit bool `json:"policyAudit,omitempty"`
	// Policy is the policy the datapath enforces for the endpoint.
	Policy *PolicyStatus `json:"policy,omitempty"`

	HostIfName  string `json:"hostIfName"`
	HostIfIndex int    `json:"hostIfIndex"`
	HostMAC     string `json:"hostMAC"`
	PodMAC      string `json:"podMAC"`
	MTU         int    `json:"mtu"`

	State     State     `json:"state"`
	CreatedAt time.Time `json:"createdAt"`
}

// PolicyStatus says how policy applies to an endpoint.
type PolicyStatus struct {
	// Ingress and Egress enforcement: "enabled", "disabled" or "audit".
	Ingress string `json:"ingress"`
	Egress  string `json:"egress"`
	// Revision of the policy repository the datapath runs for it.
	Revision uint64 `json:"revision"`
	// Policies that select the endpoint.
	Policies []string `json:"policies,omitempty"`
}

// Key is the runtime's name for an attachment: container ID and interface.
func (e *Endpoint) Key() string { return AttachmentKey(e.ContainerID, e.IfName) }

// AttachmentKey joins a container ID and interface name.
func AttachmentKey(containerID, ifName string) string { return containerID + "/" + ifName }

// Addrs returns the endpoint's valid addresses.
func (e *Endpoint) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// CreateRequest asks for a new endpoint.
type CreateRequest struct {
	ContainerID string   `json:"containerID"`
	IfName      string   `json:"ifName"`
	NetNS       string   `json:"netns"`
	Network     string   `json:"network,omitempty"`
	PodName     string   `json:"podName,omitempty"`
	Namespace   string   `json:"namespace,omitempty"`
	Labels      []string `json:"labels,omitempty"`
}

// Attachment names one endpoint by container ID and interface, as CNI GC's
// cni.dev/valid-attachments does.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

// Errors the API maps to status codes and CNI error codes.
var (
	ErrInvalid          = errors.New("invalid request")
	ErrNotFound         = errors.New("endpoint not found")
	ErrExists           = errors.New("endpoint already exists")
	ErrNetNSNotFound    = errors.New("network namespace not found")
	ErrTooManyEndpoints = errors.New("no free endpoint ID")
)
