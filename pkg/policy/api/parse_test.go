package api

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func cidr(s string) CIDR { return CIDR{Prefix: netip.MustParsePrefix(s)} }

func cidrs(ss ...string) []CIDR {
	var out []CIDR
	for _, s := range ss {
		out = append(out, cidr(s))
	}
	return out
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func sel(kv ...string) *EndpointSelector { return &EndpointSelector{MatchLabels: labels(kv...)} }

func cnp(name string, rules ...*Rule) *Policy {
	return &Policy{Kind: KindCNP, Name: name, Namespace: "default", Rules: rules, Source: "test.yaml#1"}
}

func at(p *Policy, src string) *Policy { p.Source = src; return p }

// validCases are well-formed inputs, mostly the examples of the Cilium and
// Kubernetes documentation, with the exact structures they parse to. They
// also seed FuzzParse.
var validCases = []struct {
	name string
	in   string
	want []*Policy
}{
	{
		name: "L3 fromEndpoints matchLabels",
		in: `apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: "l3-rule"
spec:
  endpointSelector:
    matchLabels:
      role: backend
  ingress:
  - fromEndpoints:
    - matchLabels:
        role: frontend
`,
		want: []*Policy{cnp("l3-rule", &Rule{
			EndpointSelector: sel("role", "backend"),
			Ingress:          []IngressRule{{FromEndpoints: []EndpointSelector{*sel("role", "frontend")}}},
			HasIngress:       true,
		})},
	},
	{
		name: "matchExpressions and non-string label values",
		in: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: expr
  namespace: prod
  labels: {team: a}
  annotations: {x: y}
  uid: 6f1c
  resourceVersion: "12"
  generation: 3
spec:
  endpointSelector:
    matchLabels:
      version: 1
      enabled: true
      empty: ""
    matchExpressions:
    - {key: env, operator: In, values: [prod, staging]}
    - {key: debug, operator: DoesNotExist}
  egress:
  - toEndpoints:
    - matchExpressions:
      - key: k8s:io.kubernetes.pod.namespace
        operator: NotIn
        values: [kube-system]
      - key: app
        operator: Exists
        values: []
`,
		want: []*Policy{{Kind: KindCNP, Name: "expr", Namespace: "prod", Source: "test.yaml#1", Rules: []*Rule{{
			EndpointSelector: &EndpointSelector{
				MatchLabels: labels("version", "1", "enabled", "true", "empty", ""),
				MatchExpressions: []Requirement{
					{Key: "env", Operator: OpIn, Values: []string{"prod", "staging"}},
					{Key: "debug", Operator: OpDoesNotExist},
				},
			},
			Egress: []EgressRule{{ToEndpoints: []EndpointSelector{{MatchExpressions: []Requirement{
				{Key: "k8s:io.kubernetes.pod.namespace", Operator: OpNotIn, Values: []string{"kube-system"}},
				{Key: "app", Operator: OpExists},
			}}}}},
			HasEgress: true,
		}}}},
	},
	{
		name: "entities",
		in: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: from-world
spec:
  endpointSelector: {}
  ingress:
  - fromEntities:
    - world
    - cluster
  egress:
  - toEntities: [kube-apiserver, remote-node, host]
`,
		want: []*Policy{cnp("from-world", &Rule{
			EndpointSelector: &EndpointSelector{},
			Ingress:          []IngressRule{{FromEntities: []Entity{EntityWorld, EntityCluster}}},
			Egress:           []EgressRule{{ToEntities: []Entity{EntityKubeAPIServer, EntityRemoteNode, EntityHost}}},
			HasIngress:       true,
			HasEgress:        true,
		})},
	},
	{
		name: "toCIDR and fromCIDR",
		in: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: cidr-rule
spec:
  endpointSelector:
    matchLabels:
      app: myService
  egress:
  - toCIDR:
    - 20.1.1.1/32
    - 10.0.0.1
    - 192.168.7.9/24
    - 2001:db8::1/32
    - fd00::1
  ingress:
  - fromCIDR: [0.0.0.0/0]
`,
		want: []*Policy{cnp("cidr-rule", &Rule{
			EndpointSelector: sel("app", "myService"),
			Egress:           []EgressRule{{ToCIDR: cidrs("20.1.1.1/32", "10.0.0.1/32", "192.168.7.0/24", "2001:db8::/32", "fd00::1/128")}},
			Ingress:          []IngressRule{{FromCIDR: cidrs("0.0.0.0/0")}},
			HasIngress:       true,
			HasEgress:        true,
		})},
	},
	{
		name: "toCIDRSet with except",
		in: `apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: "cidr-rule"
spec:
  endpointSelector:
    matchLabels:
      app: myService
  egress:
  - toCIDRSet:
    - cidr: 10.0.0.0/8
      except:
      - 10.96.0.0/12
      - 10.0.0.1
    - cidr: fd00::/8
      except: [fd00:1::/32]
    - cidr: 1.1.1.1/32
`,
		want: []*Policy{cnp("cidr-rule", &Rule{
			EndpointSelector: sel("app", "myService"),
			Egress: []EgressRule{{ToCIDRSet: []CIDRRule{
				{CIDR: cidr("10.0.0.0/8"), Except: cidrs("10.96.0.0/12", "10.0.0.1/32")},
				{CIDR: cidr("fd00::/8"), Except: cidrs("fd00:1::/32")},
				{CIDR: cidr("1.1.1.1/32")},
			}}},
			HasEgress: true,
		})},
	},
	{
		name: "toPorts with string port and protocol",
		in: `apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: "l4-rule"
spec:
  endpointSelector:
    matchLabels:
      app: myService
  egress:
    - toPorts:
      - ports:
        - port: "80"
          protocol: TCP
        - port: 53
          protocol: udp
        - port: "443"
        - protocol: sctp
        - port: 0
          protocol: Any
`,
		want: []*Policy{cnp("l4-rule", &Rule{
			EndpointSelector: sel("app", "myService"),
			Egress: []EgressRule{{ToPorts: []PortRule{{Ports: []PortProtocol{
				{Port: 80, Protocol: ProtoTCP},
				{Port: 53, Protocol: ProtoUDP},
				{Port: 443, Protocol: ProtoAny},
				{Protocol: ProtoSCTP},
				{Protocol: ProtoAny},
			}}}}},
			HasEgress: true,
		})},
	},
	{
		name: "port range",
		in: `apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: "l4-port-range-rule"
spec:
  endpointSelector:
    matchLabels:
      app: myService
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: client
    toPorts:
    - ports:
      - port: "80"
        endPort: 444
        protocol: TCP
      - port: 8080
        endPort: "8080"
`,
		want: []*Policy{cnp("l4-port-range-rule", &Rule{
			EndpointSelector: sel("app", "myService"),
			Ingress: []IngressRule{{
				FromEndpoints: []EndpointSelector{*sel("app", "client")},
				ToPorts: []PortRule{{Ports: []PortProtocol{
					{Port: 80, EndPort: 444, Protocol: ProtoTCP},
					{Port: 8080, EndPort: 8080, Protocol: ProtoAny},
				}}},
			}},
			HasIngress: true,
		})},
	},
	{
		name: "icmps",
		in: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: icmp-rule
spec:
  endpointSelector:
    matchLabels:
      app: myService
  egress:
  - icmps:
    - fields:
      - type: 8
        family: IPv4
      - type: EchoRequest
        family: IPv6
      - type: "0"
      - type: timeexceeded
      - type: PacketTooBig
        family: ipv6
`,
		want: []*Policy{cnp("icmp-rule", &Rule{
			EndpointSelector: sel("app", "myService"),
			Egress: []EgressRule{{ICMPs: []ICMPRule{{Fields: []ICMPField{
				{Family: "IPv4", Type: 8},
				{Family: "IPv6", Type: 128},
				{Family: "IPv4", Type: 0},
				{Family: "IPv4", Type: 11},
				{Family: "IPv6", Type: 2},
			}}}}},
			HasEgress: true,
		})},
	},
	{
		name: "ingressDeny",
		in: `apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: "external-lockdown"
spec:
  endpointSelector: {}
  ingressDeny:
  - fromEntities:
    - "world"
  ingress:
  - fromEntities:
    - "all"
`,
		want: []*Policy{cnp("external-lockdown", &Rule{
			EndpointSelector: &EndpointSelector{},
			Ingress:          []IngressRule{{FromEntities: []Entity{EntityAll}}},
			IngressDeny:      []IngressRule{{FromEntities: []Entity{EntityWorld}}},
			HasIngress:       true,
		})},
	},
	{
		name: "egressDeny",
		in: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: deny-metadata
spec:
  endpointSelector: {}
  egressDeny:
  - toCIDR: [169.254.169.254/32]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
`,
		want: []*Policy{cnp("deny-metadata", &Rule{
			EndpointSelector: &EndpointSelector{},
			EgressDeny: []EgressRule{{
				ToCIDR:  cidrs("169.254.169.254/32"),
				ToPorts: []PortRule{{Ports: []PortProtocol{{Port: 80, Protocol: ProtoTCP}}}},
			}},
			HasEgress: true,
		})},
	},
	{
		name: "default deny with an empty rule",
		in: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: deny-all
spec:
  endpointSelector: {}
  ingress:
  - {}
  egress: []
`,
		want: []*Policy{cnp("deny-all", &Rule{
			EndpointSelector: &EndpointSelector{},
			Ingress:          []IngressRule{{}},
			HasIngress:       true,
			HasEgress:        true,
		})},
	},
	{
		name: "specs with two rules, description and labels",
		in: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: multi
  namespace: team-a
spec:
  description: "first"
  endpointSelector:
    matchLabels: {app: a}
  ingress:
  - fromEndpoints: [{matchLabels: {app: b}}]
specs:
  - endpointSelector:
      matchLabels: {app: b}
    egress:
    - toEndpoints: [{}]
    labels:
    - key: rule
      value: two
      source: k8s
    - {key: bare}
    - "unspec:x=y"
  - description: third
    endpointSelector: {}
`,
		want: []*Policy{{Kind: KindCNP, Name: "multi", Namespace: "team-a", Source: "test.yaml#1", Rules: []*Rule{
			{
				Description:      "first",
				EndpointSelector: sel("app", "a"),
				Ingress:          []IngressRule{{FromEndpoints: []EndpointSelector{*sel("app", "b")}}},
				HasIngress:       true,
			},
			{
				EndpointSelector: sel("app", "b"),
				Egress:           []EgressRule{{ToEndpoints: []EndpointSelector{{}}}},
				Labels:           []string{"k8s:rule=two", "bare", "unspec:x=y"},
				HasEgress:        true,
			},
			{Description: "third", EndpointSelector: &EndpointSelector{}},
		}}},
	},
	{
		name: "CCNP host policy with nodeSelector",
		in: `apiVersion: "cilium.io/v2"
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: "demo-host-policy"
spec:
  description: ""
  nodeSelector:
    matchLabels:
      node-access: ssh
  ingress:
  - fromEntities:
    - cluster
  - toPorts:
    - ports:
      - port: "22"
        protocol: TCP
`,
		want: []*Policy{{Kind: KindCCNP, Name: "demo-host-policy", Source: "test.yaml#1", Rules: []*Rule{{
			NodeSelector: sel("node-access", "ssh"),
			Ingress: []IngressRule{
				{FromEntities: []Entity{EntityCluster}},
				{ToPorts: []PortRule{{Ports: []PortProtocol{{Port: 22, Protocol: ProtoTCP}}}}},
			},
			HasIngress: true,
		}}}},
	},
	{
		name: "CCNP with endpointSelector and empty namespace",
		in: `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: cluster.wide
  namespace: ""
specs:
- endpointSelector:
    matchLabels:
      "k8s:io.kubernetes.pod.namespace": kube-system
  egress:
  - toEntities: [world]
    toPorts: [{ports: [{port: 443}]}]
`,
		want: []*Policy{{Kind: KindCCNP, Name: "cluster.wide", Source: "test.yaml#1", Rules: []*Rule{{
			EndpointSelector: sel("k8s:io.kubernetes.pod.namespace", "kube-system"),
			Egress: []EgressRule{{
				ToEntities: []Entity{EntityWorld},
				ToPorts:    []PortRule{{Ports: []PortProtocol{{Port: 443, Protocol: ProtoAny}}}},
			}},
			HasEgress: true,
		}}}},
	},
	{
		name: "KNP ingress and egress (Kubernetes docs example)",
		in: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
`,
		want: []*Policy{{Kind: KindKNP, Name: "test-network-policy", Namespace: "default", Source: "test.yaml#1", NetworkPolicy: &NetworkPolicySpec{
			PodSelector: *sel("role", "db"),
			Ingress: []NPIngressRule{{
				From: []NPPeer{
					{IPBlock: &CIDRRule{CIDR: cidr("172.17.0.0/16"), Except: cidrs("172.17.1.0/24")}},
					{NamespaceSelector: sel("project", "myproject")},
					{PodSelector: sel("role", "frontend")},
				},
				Ports: []NPPort{{Protocol: ProtoTCP, Port: 6379}},
			}},
			Egress: []NPEgressRule{{
				To:    []NPPeer{{IPBlock: &CIDRRule{CIDR: cidr("10.0.0.0/24")}}},
				Ports: []NPPort{{Protocol: ProtoTCP, Port: 5978}},
			}},
			PolicyTypes: []string{"Ingress", "Egress"},
		}}},
	},
	{
		name: "KNP namespaceSelector and podSelector together, endPort, policyTypes omitted",
		in: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: multi-port-egress
  namespace: prod
spec:
  podSelector:
    matchLabels:
      role: db
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          user: alice
      podSelector:
        matchLabels:
          role: client
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 32000
      endPort: 32768
    - port: "53"
      protocol: UDP
    - {}
`,
		want: []*Policy{{Kind: KindKNP, Name: "multi-port-egress", Namespace: "prod", Source: "test.yaml#1", NetworkPolicy: &NetworkPolicySpec{
			PodSelector: *sel("role", "db"),
			Ingress: []NPIngressRule{{From: []NPPeer{{
				NamespaceSelector: sel("user", "alice"),
				PodSelector:       sel("role", "client"),
			}}}},
			Egress: []NPEgressRule{{
				To: []NPPeer{{IPBlock: &CIDRRule{CIDR: cidr("10.0.0.0/24")}}},
				Ports: []NPPort{
					{Protocol: ProtoTCP, Port: 32000, EndPort: 32768},
					{Protocol: ProtoUDP, Port: 53},
					{Protocol: ProtoTCP},
				},
			}},
			PolicyTypes: []string{"Ingress", "Egress"},
		}}},
	},
	{
		name: "KNP policyTypes defaulting and given",
		in: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-ingress
spec:
  podSelector: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: empty-egress
spec:
  podSelector: {}
  egress: []
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-egress
spec:
  podSelector: {}
  policyTypes: [Egress, Egress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-all-ingress
spec:
  podSelector: {}
  ingress:
  - {}
  policyTypes:
  - Ingress
`,
		want: []*Policy{
			{Kind: KindKNP, Name: "default-deny-ingress", Namespace: "default", Source: "test.yaml#1",
				NetworkPolicy: &NetworkPolicySpec{PolicyTypes: []string{"Ingress"}}},
			{Kind: KindKNP, Name: "empty-egress", Namespace: "default", Source: "test.yaml#2",
				NetworkPolicy: &NetworkPolicySpec{PolicyTypes: []string{"Ingress"}}},
			{Kind: KindKNP, Name: "default-deny-egress", Namespace: "default", Source: "test.yaml#3",
				NetworkPolicy: &NetworkPolicySpec{PolicyTypes: []string{"Egress"}}},
			{Kind: KindKNP, Name: "allow-all-ingress", Namespace: "default", Source: "test.yaml#4",
				NetworkPolicy: &NetworkPolicySpec{Ingress: []NPIngressRule{{}}, PolicyTypes: []string{"Ingress"}}},
		},
	},
	{
		name: "multi-document YAML with empty documents and comments",
		in: `# policies for the web tier
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web
spec:
  endpointSelector: {matchLabels: {app: web}}
---
---
# nothing here
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web
  namespace: other
spec:
  endpointSelector: {matchLabels: {app: web}}
...
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: web
spec:
  endpointSelector: {}
`,
		want: []*Policy{
			cnp("web", &Rule{EndpointSelector: sel("app", "web")}),
			{Kind: KindCNP, Name: "web", Namespace: "other", Source: "test.yaml#2",
				Rules: []*Rule{{EndpointSelector: sel("app", "web")}}},
			{Kind: KindCCNP, Name: "web", Source: "test.yaml#3", Rules: []*Rule{{EndpointSelector: &EndpointSelector{}}}},
		},
	},
	{
		name: "JSON object",
		in: `{
	"apiVersion": "cilium.io/v2",
	"kind": "CiliumNetworkPolicy",
	"metadata": {"name": "json-policy", "namespace": "ns1"},
	"spec": {
		"endpointSelector": {"matchLabels": {"app": "x"}},
		"ingress": [{"toPorts": [{"ports": [{"port": "8080", "endPort": 8090, "protocol": "TCP"}]}]}]
	}
}`,
		want: []*Policy{{Kind: KindCNP, Name: "json-policy", Namespace: "ns1", Source: "test.yaml#1", Rules: []*Rule{{
			EndpointSelector: sel("app", "x"),
			Ingress:          []IngressRule{{ToPorts: []PortRule{{Ports: []PortProtocol{{Port: 8080, EndPort: 8090, Protocol: ProtoTCP}}}}}},
			HasIngress:       true,
		}}}},
	},
	{
		name: "JSON array with escaped slashes",
		in: `[
  {"apiVersion": "cilium.io\/v2", "kind": "CiliumNetworkPolicy",
   "metadata": {"name": "a"}, "spec": {"endpointSelector": {}, "egress": [{"toCIDR": ["10.0.0.0\/8"]}]}},
  {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
   "metadata": {"name": "b"}, "spec": {"podSelector": {}, "egress": [{}]}}
]`,
		want: []*Policy{
			cnp("a", &Rule{EndpointSelector: &EndpointSelector{}, Egress: []EgressRule{{ToCIDR: cidrs("10.0.0.0/8")}}, HasEgress: true}),
			{Kind: KindKNP, Name: "b", Namespace: "default", Source: "test.yaml#2", NetworkPolicy: &NetworkPolicySpec{
				Egress: []NPEgressRule{{}}, PolicyTypes: []string{"Ingress", "Egress"},
			}},
		},
	},
	{
		name: "kubectl get -o yaml List",
		in: `apiVersion: v1
items:
- apiVersion: cilium.io/v2
  kind: CiliumNetworkPolicy
  metadata:
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: |
        {"apiVersion":"cilium.io/v2","kind":"CiliumNetworkPolicy"}
    creationTimestamp: "2024-05-01T10:00:00Z"
    generation: 1
    managedFields:
    - apiVersion: cilium.io/v2
      fieldsType: FieldsV1
      fieldsV1:
        f:spec: {}
      manager: kubectl-client-side-apply
      operation: Update
    name: l3
    namespace: default
    resourceVersion: "1234"
    uid: 0b1e8b1e-1111-2222-3333-444455556666
  spec:
    endpointSelector:
      matchLabels:
        role: backend
  status:
    conditions:
    - status: "True"
      type: Valid
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata:
    name: np
    namespace: default
  spec:
    podSelector: {}
    policyTypes:
    - Ingress
kind: List
metadata:
  resourceVersion: ""
`,
		want: []*Policy{
			cnp("l3", &Rule{EndpointSelector: sel("role", "backend")}),
			{Kind: KindKNP, Name: "np", Namespace: "default", Source: "test.yaml#2",
				NetworkPolicy: &NetworkPolicySpec{PolicyTypes: []string{"Ingress"}}},
		},
	},
	{
		name: "typed list items inherit kind",
		in: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicyList
items:
- metadata: {name: one}
  spec: {endpointSelector: {}}
- metadata: {name: two}
  spec: {endpointSelector: {}}
`,
		want: []*Policy{
			cnp("one", &Rule{EndpointSelector: &EndpointSelector{}}),
			at(cnp("two", &Rule{EndpointSelector: &EndpointSelector{}}), "test.yaml#2"),
		},
	},
	{
		name: "anchors, aliases and merge keys",
		in: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: anchors
spec:
  endpointSelector: &web
    matchLabels:
      app: web
  ingress:
  - fromEndpoints: [*web]
    toPorts:
    - ports:
      - &http {port: 80, protocol: TCP}
      - <<: *http
        port: 8080
`,
		want: []*Policy{cnp("anchors", &Rule{
			EndpointSelector: sel("app", "web"),
			Ingress: []IngressRule{{
				FromEndpoints: []EndpointSelector{*sel("app", "web")},
				ToPorts: []PortRule{{Ports: []PortProtocol{
					{Port: 80, Protocol: ProtoTCP},
					{Port: 8080, Protocol: ProtoTCP},
				}}},
			}},
			HasIngress: true,
		})},
	},
}

func TestParseValid(t *testing.T) {
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in), "test.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d policies, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], tc.want[i]) {
					t.Errorf("policy %d:\n got %s\nwant %s", i, dump(got[i]), dump(tc.want[i]))
				}
			}
		})
	}
}

func dump(p *Policy) string {
	s := fmt.Sprintf("%+v", *p)
	for _, r := range p.Rules {
		s += fmt.Sprintf("\n  rule %+v", *r)
		if r.EndpointSelector != nil {
			s += fmt.Sprintf(" endpointSelector=%+v", *r.EndpointSelector)
		}
		if r.NodeSelector != nil {
			s += fmt.Sprintf(" nodeSelector=%+v", *r.NodeSelector)
		}
	}
	if p.NetworkPolicy != nil {
		s += fmt.Sprintf("\n  np %+v", *p.NetworkPolicy)
	}
	return s
}

// TestParseKeyPresence checks HasIngress/HasEgress follow the presence of
// the keys, not their contents.
func TestParseKeyPresence(t *testing.T) {
	for _, tc := range []struct {
		body                  string
		wantIngress, wantEgrs bool
	}{
		{"", false, false},
		{"ingress: []", true, false},
		{"ingressDeny: []", true, false},
		{"ingress:", true, false},
		{"egress: []", false, true},
		{"egressDeny: [{}]", false, true},
		{"ingress: [{}]\negressDeny: []", true, true},
	} {
		in := "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: {}\n"
		if tc.body != "" {
			in += "  " + strings.ReplaceAll(tc.body, "\n", "\n  ") + "\n"
		}
		got, err := Parse([]byte(in), "t")
		if err != nil {
			t.Fatalf("%q: %v", tc.body, err)
		}
		r := got[0].Rules[0]
		if r.HasIngress != tc.wantIngress || r.HasEgress != tc.wantEgrs {
			t.Errorf("%q: HasIngress=%v HasEgress=%v, want %v %v", tc.body, r.HasIngress, r.HasEgress, tc.wantIngress, tc.wantEgrs)
		}
	}
}

// wantErr is one expected *ParseError. line -1 means: the line of the input
// that contains the marker "#!".
type wantErr struct {
	doc   int
	line  int
	field string
	msg   string // substring of Msg
}

const hdr = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: web\n"

var errorCases = []struct {
	name string
	in   string
	want []wantErr
}{
	{
		name: "unknown top-level field",
		in:   hdr + "spec:\n  endpointSelector: {}\nspek: {} #!\n",
		want: []wantErr{{1, -1, "spek", `unknown field "spek" (did you mean "spec"?)`}},
	},
	{
		name: "unknown field in rule",
		in:   hdr + "spec:\n  endpointSelector: {}\n  ingres: [] #!\n",
		want: []wantErr{{1, -1, "spec.ingres", `unknown field "ingres" (did you mean "ingress"?)`}},
	},
	{
		name: "unknown field in ingress rule",
		in: hdr + `spec:
  endpointSelector: {}
  ingress:
  - fromEndpoint: #!
    - matchLabels: {app: x}
`,
		want: []wantErr{{1, -1, "spec.ingress[0].fromEndpoint", `unknown field "fromEndpoint"`}},
	},
	{
		name: "unknown field deep in ports",
		in: hdr + `spec:
  endpointSelector: {}
  egress:
  - toPorts:
    - ports:
      - port: "80"
        proto: TCP #!
`,
		want: []wantErr{{1, -1, "spec.egress[0].toPorts[0].ports[0].proto", `unknown field "proto"`}},
	},
	{
		name: "unknown field in selector and requirement",
		in: hdr + `spec:
  endpointSelector:
    matchLabel: {app: x} #!
  ingress:
  - fromEndpoints:
    - matchExpressions:
      - {key: a, operator: In, value: [b]}
`,
		want: []wantErr{
			{1, -1, "spec.endpointSelector.matchLabel", `unknown field "matchLabel"`},
			{1, 11, "spec.ingress[0].fromEndpoints[0].matchExpressions[0].value", `unknown field "value"`},
		},
	},
	{
		name: "unknown field in specs",
		in:   hdr + "specs:\n- endpointSelector: {}\n- endpointSelector: {}\n  foo: 1 #!\n",
		want: []wantErr{{1, -1, "specs[1].foo", `unknown field "foo"`}},
	},
	{
		name: "upstream field not supported",
		in:   hdr + "spec:\n  endpointSelector: {}\n  egress:\n  - toFQDNs: [{matchName: x.com}] #!\n",
		want: []wantErr{{1, -1, "spec.egress[0].toFQDNs", `field "toFQDNs" is not supported yet`}},
	},
	{
		name: "string where list expected",
		in:   hdr + "spec:\n  endpointSelector: {}\n  ingress:\n  - fromEntities: world #!\n",
		want: []wantErr{{1, -1, "spec.ingress[0].fromEntities", `expected a list, got a string ("world")`}},
	},
	{
		name: "mapping where list expected",
		in:   hdr + "spec:\n  endpointSelector: {}\n  ingress:\n    fromEntities: [world] #!\n",
		want: []wantErr{{1, -1, "spec.ingress", `expected a list, got a mapping`}},
	},
	{
		name: "list where mapping expected",
		in:   hdr + "spec:\n  endpointSelector:\n    matchLabels: [app] #!\n",
		want: []wantErr{{1, -1, "spec.endpointSelector.matchLabels", `expected a mapping of label keys to values, got a list`}},
	},
	{
		name: "spec as a list",
		in:   hdr + "spec: #!\n- endpointSelector: {}\n",
		want: []wantErr{{1, 6, "spec", "use specs for a list of rules"}},
	},
	{
		name: "invalid CIDR",
		in:   hdr + "spec:\n  endpointSelector: {}\n  egress:\n  - toCIDR:\n    - 10.0.0.0/8\n    - 10.0.0.300/8 #!\n",
		want: []wantErr{{1, -1, "spec.egress[0].toCIDR[1]", `invalid CIDR "10.0.0.300/8"`}},
	},
	{
		name: "invalid CIDR in cidrSet",
		in:   hdr + "spec:\n  endpointSelector: {}\n  ingress:\n  - fromCIDRSet:\n    - cidr: 10.0.0.0/33 #!\n",
		want: []wantErr{{1, -1, "spec.ingress[0].fromCIDRSet[0].cidr", `invalid CIDR "10.0.0.0/33"`}},
	},
	{
		name: "except outside cidr",
		in: hdr + `spec:
  endpointSelector: {}
  egress:
  - toCIDRSet:
    - cidr: 10.0.0.0/16
      except:
      - 10.0.1.0/24
      - 10.1.0.0/24 #!
      - 10.0.0.0/8
      - fd00::/64
`,
		want: []wantErr{
			{1, -1, "spec.egress[0].toCIDRSet[0].except[1]", "except 10.1.0.0/24 is not inside cidr 10.0.0.0/16"},
			{1, 13, "spec.egress[0].toCIDRSet[0].except[2]", "except 10.0.0.0/8 is not inside cidr 10.0.0.0/16"},
			{1, 14, "spec.egress[0].toCIDRSet[0].except[3]", "except fd00::/64 is not inside cidr 10.0.0.0/16"},
		},
	},
	{
		name: "endPort less than port",
		in:   hdr + "spec:\n  endpointSelector: {}\n  ingress:\n  - toPorts:\n    - ports:\n      - port: 8080\n        endPort: 80 #!\n",
		want: []wantErr{{1, -1, "spec.ingress[0].toPorts[0].ports[0].endPort", "endPort 80 is less than port 8080"}},
	},
	{
		name: "endPort without port",
		in:   hdr + "spec:\n  endpointSelector: {}\n  ingress:\n  - toPorts:\n    - ports:\n      - endPort: 8080 #!\n",
		want: []wantErr{{1, -1, "spec.ingress[0].toPorts[0].ports[0].endPort", "endPort 8080 requires a non-zero port"}},
	},
	{
		name: "port out of range",
		in: hdr + `spec:
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports:
      - port: 70000 #!
      - port: "65536"
      - port: -1
      - port: 80
        endPort: 99999
`,
		want: []wantErr{
			{1, -1, "spec.ingress[0].toPorts[0].ports[0].port", "port 70000 is out of range (0-65535)"},
			{1, 11, "spec.ingress[0].toPorts[0].ports[1].port", "port 65536 is out of range"},
			{1, 12, "spec.ingress[0].toPorts[0].ports[2].port", "port -1 is out of range"},
			{1, 14, "spec.ingress[0].toPorts[0].ports[3].endPort", "endPort 99999 is out of range"},
		},
	},
	{
		name: "named port",
		in:   hdr + "spec:\n  endpointSelector: {}\n  ingress:\n  - toPorts:\n    - ports:\n      - port: http #!\n",
		want: []wantErr{{1, -1, "spec.ingress[0].toPorts[0].ports[0].port", `named ports are not supported (port "http")`}},
	},
	{
		name: "bad protocol",
		in:   hdr + "spec:\n  endpointSelector: {}\n  ingress:\n  - toPorts:\n    - ports:\n      - port: 80\n        protocol: HTTP #!\n",
		want: []wantErr{{1, -1, "spec.ingress[0].toPorts[0].ports[0].protocol", `invalid protocol "HTTP" (accepted: TCP, UDP, SCTP, ICMP, ANY)`}},
	},
	{
		name: "bad entity",
		in:   hdr + "spec:\n  endpointSelector: {}\n  ingress:\n  - fromEntities: [world, wrld] #!\n",
		want: []wantErr{{1, -1, "spec.ingress[0].fromEntities[1]", `unknown entity "wrld" (accepted: all, world, cluster, host, remote-node, health, init, unmanaged, kube-apiserver)`}},
	},
	{
		name: "bad operator",
		in:   hdr + "spec:\n  endpointSelector:\n    matchExpressions:\n    - key: app\n      operator: Equals #!\n      values: [x]\n",
		want: []wantErr{{1, -1, "spec.endpointSelector.matchExpressions[0].operator", `unknown operator "Equals"`}},
	},
	{
		name: "In without values",
		in:   hdr + "spec:\n  endpointSelector:\n    matchExpressions:\n    - key: app\n      operator: In #!\n",
		want: []wantErr{{1, -1, "spec.endpointSelector.matchExpressions[0].values", "operator In needs at least one value"}},
	},
	{
		name: "Exists with values",
		in:   hdr + "spec:\n  endpointSelector:\n    matchExpressions:\n    - key: app\n      operator: Exists\n      values: [x] #!\n",
		want: []wantErr{{1, -1, "spec.endpointSelector.matchExpressions[0].values", "operator Exists takes no values"}},
	},
	{
		name: "requirement without key or operator",
		in:   hdr + "spec:\n  endpointSelector:\n    matchExpressions:\n    - values: [x] #!\n",
		want: []wantErr{
			{1, -1, "spec.endpointSelector.matchExpressions[0].key", "key is required"},
			{1, -1, "spec.endpointSelector.matchExpressions[0].operator", "operator is required"},
		},
	},
	{
		name: "missing name",
		in:   "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  namespace: x #!\nspec:\n  endpointSelector: {}\n",
		want: []wantErr{{1, -1, "metadata.name", "name is required"}},
	},
	{
		name: "missing metadata",
		in:   "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nspec:\n  endpointSelector: {}\n",
		want: []wantErr{{1, 1, "metadata.name", "name is required"}},
	},
	{
		name: "bad name",
		in:   "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: Web_1 #!\nspec:\n  endpointSelector: {}\n",
		want: []wantErr{{1, -1, "metadata.name", `invalid name "Web_1": must be a DNS-1123 subdomain`}},
	},
	{
		name: "name too long",
		in:   "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: " + strings.Repeat("a", 254) + " #!\nspec:\n  endpointSelector: {}\n",
		want: []wantErr{{1, -1, "metadata.name", "must be a DNS-1123 subdomain"}},
	},
	{
		name: "bad namespace",
		in:   hdr + "  namespace: kube.system #!\nspec:\n  endpointSelector: {}\n",
		want: []wantErr{{1, -1, "metadata.namespace", `invalid namespace "kube.system": must be a DNS-1123 label`}},
	},
	{
		name: "CCNP with namespace",
		in:   "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  name: c\n  namespace: default #!\nspec:\n  endpointSelector: {}\n",
		want: []wantErr{{1, -1, "metadata.namespace", "clusterwide policies have no namespace"}},
	},
	{
		name: "unknown kind",
		in:   "apiVersion: v1\nkind: Pod #!\nmetadata:\n  name: p\nspec: {}\n",
		want: []wantErr{{1, -1, "kind", `unsupported kind "Pod" (accepted: CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy (cilium.io/v2), NetworkPolicy (networking.k8s.io/v1))`}},
	},
	{
		name: "wrong apiVersion",
		in:   "apiVersion: cilium.io/v1 #!\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p\nspec: {}\n",
		want: []wantErr{{1, -1, "apiVersion", `unsupported apiVersion "cilium.io/v1" for kind CiliumNetworkPolicy (want cilium.io/v2)`}},
	},
	{
		name: "missing kind",
		in:   "apiVersion: cilium.io/v2 #!\nmetadata:\n  name: p\nspec: {}\n",
		want: []wantErr{{1, -1, "kind", "kind is required"}},
	},
	{
		name: "missing apiVersion",
		in:   "kind: NetworkPolicy #!\nmetadata:\n  name: p\nspec: {podSelector: {}}\n",
		want: []wantErr{{1, -1, "apiVersion", "apiVersion is required (networking.k8s.io/v1 for NetworkPolicy)"}},
	},
	{
		name: "no selector",
		in:   hdr + "spec: #!\n  ingress: [{}]\n",
		want: []wantErr{{1, 6, "spec", "a rule needs one of endpointSelector or nodeSelector"}},
	},
	{
		name: "both selectors",
		in:   hdr + "spec:\n  endpointSelector: {}\n  nodeSelector: {} #!\n",
		want: []wantErr{{1, -1, "spec.nodeSelector", "cannot have both endpointSelector and nodeSelector"}},
	},
	{
		name: "no rules",
		in:   hdr + "specs: [] #!\n",
		want: []wantErr{{1, 1, "spec", "needs at least one rule in spec or specs"}},
	},
	{
		name: "L7 rules",
		in: hdr + `spec:
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      rules: #!
        http:
        - method: GET
          path: "/public"
`,
		want: []wantErr{{1, -1, "spec.ingress[0].toPorts[0].rules", "L7 rules are not supported yet"}},
	},
	{
		name: "icmps with toPorts",
		in:   hdr + "spec:\n  endpointSelector: {}\n  egress:\n  - toPorts: [{ports: [{port: 80}]}]\n    icmps: [{fields: [{type: 8}]}] #!\n",
		want: []wantErr{{1, -1, "spec.egress[0].icmps", "icmps and toPorts cannot be combined"}},
	},
	{
		name: "bad ICMP fields",
		in: hdr + `spec:
  endpointSelector: {}
  egress:
  - icmps:
    - fields:
      - type: 8
        family: IPv5 #!
      - type: PacketTooBig
      - family: IPv6
      - type: 256
`,
		want: []wantErr{
			{1, -1, "spec.egress[0].icmps[0].fields[0].family", `invalid family "IPv5" (accepted: IPv4, IPv6)`},
			{1, 12, "spec.egress[0].icmps[0].fields[1].type", `unknown IPv4 ICMP type "PacketTooBig"`},
			{1, 13, "spec.egress[0].icmps[0].fields[2].type", "type is required"},
			{1, 14, "spec.egress[0].icmps[0].fields[3].type", "ICMP type 256 is out of range (0-255)"},
		},
	},
	{
		name: "KNP ipBlock with podSelector and empty peer",
		in: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np
spec:
  podSelector: {}
  ingress:
  - from:
    - podSelector: {}
      ipBlock: #!
        cidr: 10.0.0.0/8
    - {}
`,
		want: []wantErr{
			{1, -1, "spec.ingress[0].from[0].ipBlock", "ipBlock cannot be combined with podSelector or namespaceSelector"},
			{1, 12, "spec.ingress[0].from[1]", "a peer needs podSelector, namespaceSelector or ipBlock"},
		},
	},
	{
		name: "KNP ipBlock except",
		in: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np
spec:
  podSelector: {}
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/8
        except: [10.0.0.0/8] #!
    - ipBlock:
        cidr: 10.0.0.0/8
        except: [11.0.0.0/16]
    - ipBlock: {cidr: "10.0.0/8"}
    - ipBlock: {except: [10.0.0.0/8]}
`,
		want: []wantErr{
			{1, -1, "spec.egress[0].to[0].ipBlock.except[0]", "except 10.0.0.0/8 must be a strict subset of cidr 10.0.0.0/8"},
			{1, 14, "spec.egress[0].to[1].ipBlock.except[0]", "except 11.0.0.0/16 is not inside cidr 10.0.0.0/8"},
			{1, 15, "spec.egress[0].to[2].ipBlock.cidr", `invalid CIDR "10.0.0/8"`},
			{1, 16, "spec.egress[0].to[3].ipBlock.cidr", "cidr is required"},
		},
	},
	{
		name: "KNP ports",
		in: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np
spec:
  podSelector: {}
  ingress:
  - ports:
    - port: http #!
    - protocol: ICMP
    - port: 100
      endPort: 99
    - endPort: 99
`,
		want: []wantErr{
			{1, -1, "spec.ingress[0].ports[0].port", "named ports are not supported"},
			{1, 10, "spec.ingress[0].ports[1].protocol", `invalid protocol "ICMP" (accepted: TCP, UDP, SCTP)`},
			{1, 12, "spec.ingress[0].ports[2].endPort", "endPort 99 is less than port 100"},
			{1, 13, "spec.ingress[0].ports[3].endPort", "endPort 99 requires a non-zero port"},
		},
	},
	{
		name: "KNP spec problems",
		in: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np
spec:
  policyTypes: [Ingress, egress] #!
  ingress:
  - from:
    - ipblock: {cidr: 10.0.0.0/8}
specs: []
`,
		want: []wantErr{
			{1, -1, "spec.podSelector", "podSelector is required"},
			{1, -1, "spec.policyTypes[1]", `invalid policy type "egress" (accepted: Ingress, Egress)`},
			{1, 9, "spec.ingress[0].from[0].ipblock", `unknown field "ipblock" (did you mean "ipBlock"?)`},
			{1, 10, "specs", `unknown field "specs"`},
		},
	},
	{
		name: "KNP without spec",
		in:   "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy #!\nmetadata: {name: x}\n",
		want: []wantErr{{1, 1, "spec", "spec is required"}},
	},
	{
		name: "duplicate names",
		in: hdr + "spec: {endpointSelector: {}}\n---\n" +
			"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: other\nspec: {endpointSelector: {}}\n---\n" +
			"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  namespace: default\n  name: web #!\nspec: {endpointSelector: {}}\n",
		want: []wantErr{{3, -1, "metadata.name", "duplicate policy CiliumNetworkPolicy default/web: already defined in document 1 (line 4)"}},
	},
	{
		name: "duplicate key",
		in:   hdr + "spec:\n  endpointSelector: {}\n  endpointSelector: {} #!\n",
		want: []wantErr{{1, -1, "spec.endpointSelector", `duplicate field "endpointSelector" (first at line 6)`}},
	},
	{
		name: "YAML syntax error after a good document",
		in:   hdr + "spec: {endpointSelector: {}}\n---\nkind: [ #!\n",
		want: []wantErr{{2, -1, "", "invalid YAML/JSON"}},
	},
	{
		name: "not a mapping",
		in:   "just a string #!\n",
		want: []wantErr{{1, -1, "", `expected a policy object (a mapping with apiVersion and kind), got a string ("just a string")`}},
	},
	{
		name: "error in List item",
		in: hdr + "spec: {endpointSelector: {}}\n---\n" + `apiVersion: v1
kind: List
items:
- apiVersion: cilium.io/v2
  kind: CiliumNetworkPolicy
  metadata: {name: a}
  spec: {endpointSelector: {}}
- apiVersion: cilium.io/v2
  kind: CiliumNetworkPolicy
  metadata: {name: b}
  spec:
    endpointSelector: {}
    egress: [{toPorts: [{ports: [{port: 70000}]}]}] #!
`,
		want: []wantErr{{3, -1, "spec.egress[0].toPorts[0].ports[0].port", "port 70000 is out of range"}},
	},
	{
		name: "nested List",
		in:   "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List #!\n  items: []\n",
		want: []wantErr{{1, -1, "kind", "a List cannot be nested in another list"}},
	},
	{
		name: "misspelt key is reported without knock-on errors",
		in:   "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetdata: {name: x} #!\nspec:\n  endpointSelector: {}\n",
		want: []wantErr{{1, -1, "metdata", `unknown field "metdata" (did you mean "metadata"?)`}},
	},
	{
		name: "misspelt podSelector",
		in:   "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  podselector: {} #!\n",
		want: []wantErr{{1, -1, "spec.podselector", `unknown field "podselector" (did you mean "podSelector"?)`}},
	},
	{
		name: "typed list with wrong apiVersion",
		in:   "apiVersion: v1 #!\nkind: NetworkPolicyList\nitems: []\n",
		want: []wantErr{{0, -1, "apiVersion", `kind NetworkPolicyList needs apiVersion networking.k8s.io/v1, got "v1"`}},
	},
	{
		name: "JSON error positions",
		in: `{
  "apiVersion": "cilium.io/v2",
  "kind": "CiliumNetworkPolicy",
  "metadata": {"name": "j"},
  "spec": {
    "endpointSelector": {},
    "egress": [{"toCIDR": ["300.0.0.0/8"]}]
  }
}`,
		want: []wantErr{{1, 7, "spec.egress[0].toCIDR[0]", `invalid CIDR "300.0.0.0/8"`}},
	},
}

func allParseErrors(t *testing.T, err error) []*ParseError {
	t.Helper()
	var out []*ParseError
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var pe *ParseError
		if !errors.As(e, &pe) {
			t.Errorf("error %v (%T) is not a *ParseError", e, e)
			return
		}
		out = append(out, pe)
	}
	walk(err)
	return out
}

func markerLine(t *testing.T, in string) int {
	t.Helper()
	for i, l := range strings.Split(in, "\n") {
		if strings.Contains(l, "#!") {
			return i + 1
		}
	}
	t.Fatalf("input has no #! marker")
	return 0
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in), "web.yaml")
			if err == nil {
				t.Fatalf("no error; parsed %d policies", len(got))
			}
			if got != nil {
				t.Errorf("policies returned along with an error: %v", got)
			}
			pes := allParseErrors(t, err)
			for _, w := range tc.want {
				if w.line == -1 {
					w.line = markerLine(t, tc.in)
				}
				found := false
				for _, pe := range pes {
					if pe.Doc == w.doc && pe.Line == w.line && pe.Field == w.field && strings.Contains(pe.Msg, w.msg) {
						found = true
						s := pe.Error()
						parts := []string{"web.yaml: ", fmt.Sprintf("line %d: ", w.line), w.field, w.msg}
						if w.doc > 0 && !strings.Contains(s, fmt.Sprintf("document %d ", w.doc)) && !strings.Contains(s, fmt.Sprintf("document %d:", w.doc)) {
							t.Errorf("%q does not name document %d", s, w.doc)
						}
						for _, part := range parts {
							if !strings.Contains(s, part) {
								t.Errorf("%q does not contain %q", s, part)
							}
						}
					}
				}
				if !found {
					t.Errorf("missing error: document %d line %d %s: %s\ngot:\n%v", w.doc, w.line, w.field, w.msg, err)
				}
			}
			if len(pes) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(pes), len(tc.want), err)
			}
		})
	}
}

func TestParseErrorString(t *testing.T) {
	for _, tc := range []struct {
		e    ParseError
		want string
	}{
		{ParseError{Source: "web.yaml", Doc: 2, Kind: KindCNP, Namespace: "default", Name: "web", Line: 14, Field: "spec.ingress[0].fromEndpoint", Msg: `unknown field "fromEndpoint"`},
			`web.yaml: document 2 (CiliumNetworkPolicy default/web): line 14: spec.ingress[0].fromEndpoint: unknown field "fromEndpoint"`},
		{ParseError{Source: "c.yaml", Doc: 1, Kind: KindCCNP, Name: "c", Line: 3, Field: "spec", Msg: "m"},
			`c.yaml: document 1 (CiliumClusterwideNetworkPolicy c): line 3: spec: m`},
		{ParseError{Source: "x.yaml", Doc: 3, Kind: KindKNP, Line: 1, Field: "metadata.name", Msg: "name is required"},
			`x.yaml: document 3 (NetworkPolicy): line 1: metadata.name: name is required`},
		{ParseError{Source: "x.yaml", Doc: 3, Msg: "m"}, `x.yaml: document 3: m`},
		{ParseError{Source: "x.yaml", Msg: "no policy documents"}, `x.yaml: no policy documents`},
		{ParseError{Msg: "m", Line: 2}, `line 2: m`},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "\n\n", "# just a comment\n", "---\n---\n", "[]", "apiVersion: v1\nkind: List\nitems: []\n"} {
		got, err := Parse([]byte(in), "empty.yaml")
		if err == nil || got != nil {
			t.Errorf("%q: got %v, %v; want an error", in, got, err)
			continue
		}
		if err.Error() != "empty.yaml: no policy documents" {
			t.Errorf("%q: got %q", in, err)
		}
	}
}

func TestParseAtomic(t *testing.T) {
	good := func(name string) string {
		return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: " + name + "}\nspec: {endpointSelector: {}}\n"
	}
	bad := strings.Replace(good("c"), "{}}", "{}, ingress: [{fromEntities: [nowhere]}]}", 1)
	in := good("a") + "---\n" + good("b") + "---\n" + bad + "---\n" + good("d")
	got, err := Parse([]byte(in), "mix.yaml")
	if got != nil {
		t.Errorf("got %d policies with a bad document among good ones, want nil", len(got))
	}
	pes := allParseErrors(t, err)
	if len(pes) != 1 || pes[0].Doc != 3 || pes[0].Name != "c" || pes[0].Line != 14 {
		t.Errorf("got %v", err)
	}
	// Without the bad document, everything parses.
	in = good("a") + "---\n" + good("b") + "---\n" + good("d")
	if got, err := Parse([]byte(in), "mix.yaml"); err != nil || len(got) != 3 || got[2].Source != "mix.yaml#3" {
		t.Errorf("got %v, %v", got, err)
	}
}

func TestParseErrorLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(hdr + "spec:\n  endpointSelector: {}\n  ingress:\n  - fromEntities:\n")
	for i := 0; i < 200; i++ {
		b.WriteString("    - bogus\n")
	}
	_, err := Parse([]byte(b.String()), "many.yaml")
	pes := allParseErrors(t, err)
	if len(pes) > maxErrors+1 || len(pes) < maxErrors {
		t.Fatalf("got %d errors, want about %d", len(pes), maxErrors)
	}
	if last := pes[len(pes)-1]; !strings.Contains(last.Msg, "too many errors") {
		t.Errorf("last error is %v, want a note that errors were cut", last)
	}
}

func TestParseAliasBomb(t *testing.T) {
	// Each level is a list of 1000 aliases of the level below, all inside
	// the schema, so a naive walk would visit 1000^4 nodes.
	var b strings.Builder
	b.WriteString("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: bomb\n  annotations:\n")
	list := func(anchor, elem string) {
		fmt.Fprintf(&b, "    %s: &%s [%s", anchor, anchor, elem)
		for i := 1; i < 1000; i++ {
			b.WriteString(", " + elem)
		}
		b.WriteString("]\n")
	}
	list("values", "x")
	b.WriteString("    req: &req {key: a, operator: In, values: *values}\n")
	list("exprs", "*req")
	b.WriteString("    sel: &sel {matchExpressions: *exprs}\n")
	list("sels", "*sel")
	b.WriteString("    rule: &rule {toEndpoints: *sels}\n")
	list("rules", "*rule")
	b.WriteString("spec:\n  endpointSelector: {}\n  egress: *rules\n")
	start := time.Now()
	_, err := Parse([]byte(b.String()), "bomb.yaml")
	if err == nil || !strings.Contains(err.Error(), "too complex") {
		t.Fatalf("got %v, want a too complex error", err)
	}
	if n := len(allParseErrors(t, err)); n != 1 {
		t.Errorf("got %d errors, want 1: %v", n, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}
