// Package filters owns Hubble's flow filter semantics: it compiles
// flowpb.FlowFilter messages (the filters a GetFlows request carries) into
// matchers and applies them to flows the way the Hubble server does.
//
// A compiled Filter ANDs every field that is set in its FlowFilter; within a
// repeated field any one value may match (OR). A Set combines a whitelist and
// a blacklist: a flow passes if it matches at least one whitelist filter (or
// the whitelist is empty) and no blacklist filter.
//
// Supported FlowFilter fields and their syntax:
//
//   - source_pod, destination_pod: "namespace/pod-prefix" matches endpoints in
//     exactly that namespace whose pod name starts with pod-prefix (which may be
//     empty, so "ns/" matches every pod in ns); a value without "/" is a pod
//     name prefix in any namespace.
//   - source_ip, destination_ip: an exact address ("10.0.0.1", "fd00::1") or a
//     CIDR prefix ("10.0.0.0/8").
//   - source_label, destination_label: label selectors made of comma-separated
//     requirements that are ANDed: "key=value" (or "=="), "key!=value", "key"
//     (exists), "!key" (does not exist), "key in (a,b)", "key notin (a,b)".
//     A key may carry a source prefix ("k8s:app", "reserved:host"); a key
//     without one, or with "any:", matches labels of every source. Flow labels
//     look like "k8s:app=web" or "reserved:host" (empty value).
//   - verdict, traffic_direction: enum lists.
//   - event_type: the flow's event type must equal Type and, when
//     MatchSubType is set, its sub-type must equal SubType.
//   - protocol: case-insensitive tcp, udp, sctp, icmp (ICMPv4 or ICMPv6),
//     icmpv4, icmpv6.
//   - source_port, destination_port: decimal port numbers, matched against
//     the TCP, UDP or SCTP ports of the flow.
//   - tcp_flags: a TCP flow matches an element if every flag set in that
//     element is also set in the flow.
//   - source_identity, destination_identity: numeric security identities.
//   - node_name: an exact node name, or a prefix followed by a trailing "*".
//   - reply: compared with the flow's is_reply value (unset counts as false).
//
// Setting any other FlowFilter field makes Compile fail instead of silently
// widening the result.
package filters
