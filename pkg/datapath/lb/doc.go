// Package lb gives typed access to the service load-balancing maps of
// bpf/lib/lb.h and implements loadbalancer.LBMap over them, so the service
// control plane (pkg/service) writes the datapath through the kernel-free
// model of pkg/loadbalancer.
//
// The maps, all pinned by name under the agent's --bpf-root:
//
//	seta_lb_services     frontend + slot -> service entry (slot 0) or backend ID (slots 1..count)
//	seta_lb_backends     backend ID -> address, port, protocol, state, local
//	seta_lb_revnat       rev-NAT ID (ServiceID) -> the address replies come from
//	seta_lb_affinity     client (netns cookie or address) + rev-NAT ID -> backend, last use
//	seta_lb_maglev       rev-NAT ID -> Maglev table (inner array map), FlagMaglev services only
//	seta_lb_sock_revnat  socket + backend -> VIP (recvmsg, getpeername); socket + VIP -> backend (UDP stickiness)
//	seta_lb_sock_mark    socket storage: the socket was translated (only those are looked up in seta_lb_sock_revnat)
//	seta_lb_sock_unmarked the largest cookie an agent without marks may have translated (pkg/datapath/loader)
//
// The datapath writes the last two itself; the agent only reads them and
// purges affinity entries that must not outlive a service or a backend.
//
// Three ways to get a Map: New over maps the loader loaded and pinned (the
// agent), OpenPinned (the CLI), NewUnpinned (tests).
//
// It imports cilium/ebpf and must only be imported from pkg/datapath/...
// and the CLI's bpf commands.
package lb
