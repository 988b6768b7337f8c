// Package maps gives typed Go access to the BPF maps that the endpoint
// programs share with the agent: keys and values with netip types and
// String methods, and three ways to get a map: pinned (agent, via the
// loader), open-pinned (CLI, read-mostly), or unpinned (tests).
//
// It imports cilium/ebpf and must only be imported from pkg/datapath/... and
// the CLI's bpf commands.
package maps
