// Package api holds the user-facing policy types: CiliumNetworkPolicy and
// CiliumClusterwideNetworkPolicy (cilium.io/v2) and Kubernetes NetworkPolicy
// (networking.k8s.io/v1), with the same schema and field names as upstream so
// existing policies load unchanged, and the parser that reads them from YAML
// or JSON with errors that name the document, field and line.
//
// This package is plain Go: no kernel, no agent state.
package api

import (
	"net/netip"
)

// Kinds accepted by the parser.
const (
	KindCNP  = "CiliumNetworkPolicy"
	KindCCNP = "CiliumClusterwideNetworkPolicy"
	KindKNP  = "NetworkPolicy"

	APIVersionCilium = "cilium.io/v2"
	APIVersionK8s    = "networking.k8s.io/v1"
)

// Policy is one parsed document: a named set of rules.
type Policy struct {
	// Kind is KindCNP, KindCCNP or KindKNP.
	Kind string
	// Name and Namespace from metadata; Namespace is empty for CCNP.
	Name      string
	Namespace string
	// Rules of a CNP/CCNP (spec and specs). Empty for a KNP.
	Rules []*Rule
	// NetworkPolicy is set for a KNP.
	NetworkPolicy *NetworkPolicySpec
	// Source names where the document came from, e.g. "web.yaml#2".
	Source string
}

// Key is the policy's identity in the repository: kind/namespace/name.
func (p *Policy) Key() string {
	return p.Kind + "/" + p.Namespace + "/" + p.Name
}

// Rule is one CNP rule (an element of spec/specs).
type Rule struct {
	EndpointSelector *EndpointSelector `json:"endpointSelector,omitempty"`
	NodeSelector     *EndpointSelector `json:"nodeSelector,omitempty"`
	Ingress          []IngressRule     `json:"ingress,omitempty"`
	IngressDeny      []IngressRule     `json:"ingressDeny,omitempty"`
	Egress           []EgressRule      `json:"egress,omitempty"`
	EgressDeny       []EgressRule      `json:"egressDeny,omitempty"`
	Description      string            `json:"description,omitempty"`
	Labels           []string          `json:"labels,omitempty"`

	// HasIngress and HasEgress record whether the ingress/ingressDeny
	// (egress/egressDeny) keys were present at all, for tools that show
	// the document. Default deny follows Cilium instead: it is on for a
	// direction when the rule has at least one element there (an empty
	// element {} counts; an empty list does not), see pkg/policy.
	HasIngress bool `json:"-"`
	HasEgress  bool `json:"-"`
}

// IngressRule selects peers that may (or, in ingressDeny, may not) send to
// the selected endpoints.
type IngressRule struct {
	FromEndpoints []EndpointSelector `json:"fromEndpoints,omitempty"`
	FromEntities  []Entity           `json:"fromEntities,omitempty"`
	FromCIDR      []CIDR             `json:"fromCIDR,omitempty"`
	FromCIDRSet   []CIDRRule         `json:"fromCIDRSet,omitempty"`
	ToPorts       []PortRule         `json:"toPorts,omitempty"`
	ICMPs         []ICMPRule         `json:"icmps,omitempty"`
}

// EgressRule selects peers the selected endpoints may (not) send to.
type EgressRule struct {
	ToEndpoints []EndpointSelector `json:"toEndpoints,omitempty"`
	ToEntities  []Entity           `json:"toEntities,omitempty"`
	ToCIDR      []CIDR             `json:"toCIDR,omitempty"`
	ToCIDRSet   []CIDRRule         `json:"toCIDRSet,omitempty"`
	ToPorts     []PortRule         `json:"toPorts,omitempty"`
	ICMPs       []ICMPRule         `json:"icmps,omitempty"`
}

// EndpointSelector is a Kubernetes label selector over endpoint labels. A
// key may carry a source prefix ("k8s:app"); without one it matches a label
// of any source. An empty selector ({}) selects every endpoint.
type EndpointSelector struct {
	MatchLabels      map[string]string `json:"matchLabels,omitempty"`
	MatchExpressions []Requirement     `json:"matchExpressions,omitempty"`
}

// Requirement is one matchExpressions element.
type Requirement struct {
	Key      string   `json:"key"`
	Operator Operator `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// Operator of a Requirement.
type Operator string

const (
	OpIn           Operator = "In"
	OpNotIn        Operator = "NotIn"
	OpExists       Operator = "Exists"
	OpDoesNotExist Operator = "DoesNotExist"
)

// Entity is a named class of peers.
type Entity string

const (
	EntityAll           Entity = "all"
	EntityWorld         Entity = "world"
	EntityCluster       Entity = "cluster"
	EntityHost          Entity = "host"
	EntityRemoteNode    Entity = "remote-node"
	EntityHealth        Entity = "health"
	EntityInit          Entity = "init"
	EntityUnmanaged     Entity = "unmanaged"
	EntityKubeAPIServer Entity = "kube-apiserver"
)

// Entities lists every valid entity.
var Entities = []Entity{EntityAll, EntityWorld, EntityCluster, EntityHost, EntityRemoteNode,
	EntityHealth, EntityInit, EntityUnmanaged, EntityKubeAPIServer}

// CIDR is a validated prefix (a plain address means /32 or /128).
type CIDR struct {
	Prefix netip.Prefix
}

// CIDRRule is a CIDR with exceptions carved out of it.
type CIDRRule struct {
	CIDR   CIDR   `json:"cidr"`
	Except []CIDR `json:"except,omitempty"`
}

// PortRule lists ports (all of them apply).
type PortRule struct {
	Ports []PortProtocol `json:"ports,omitempty"`
}

// Protocol of a port.
type Protocol string

const (
	ProtoTCP  Protocol = "TCP"
	ProtoUDP  Protocol = "UDP"
	ProtoSCTP Protocol = "SCTP"
	ProtoICMP Protocol = "ICMP"
	ProtoAny  Protocol = "ANY"
)

// PortProtocol is a port or port range and a protocol. Port 0 means any
// port; EndPort, when set, ends an inclusive range starting at Port.
type PortProtocol struct {
	Port     uint16   `json:"port,omitempty"`
	EndPort  uint16   `json:"endPort,omitempty"`
	Protocol Protocol `json:"protocol,omitempty"`
}

// ICMPRule lists ICMP types.
type ICMPRule struct {
	Fields []ICMPField `json:"fields,omitempty"`
}

// ICMPField is one ICMP type of one family.
type ICMPField struct {
	// Family is "IPv4" (default) or "IPv6".
	Family string `json:"family,omitempty"`
	Type   uint8  `json:"type"`
}

// NetworkPolicySpec is networking.k8s.io/v1 NetworkPolicySpec.
type NetworkPolicySpec struct {
	PodSelector EndpointSelector `json:"podSelector"`
	Ingress     []NPIngressRule  `json:"ingress,omitempty"`
	Egress      []NPEgressRule   `json:"egress,omitempty"`
	PolicyTypes []string         `json:"policyTypes,omitempty"`
}

// NPIngressRule is NetworkPolicyIngressRule.
type NPIngressRule struct {
	Ports []NPPort `json:"ports,omitempty"`
	From  []NPPeer `json:"from,omitempty"`
}

// NPEgressRule is NetworkPolicyEgressRule.
type NPEgressRule struct {
	Ports []NPPort `json:"ports,omitempty"`
	To    []NPPeer `json:"to,omitempty"`
}

// NPPeer is NetworkPolicyPeer.
type NPPeer struct {
	PodSelector       *EndpointSelector `json:"podSelector,omitempty"`
	NamespaceSelector *EndpointSelector `json:"namespaceSelector,omitempty"`
	IPBlock           *CIDRRule         `json:"ipBlock,omitempty"`
}

// NPPort is NetworkPolicyPort. Named ports are not supported (the parser
// reports them); Port 0 means every port of Protocol.
type NPPort struct {
	Protocol Protocol `json:"protocol,omitempty"`
	Port     uint16   `json:"port,omitempty"`
	EndPort  uint16   `json:"endPort,omitempty"`
}
