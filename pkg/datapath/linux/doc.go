// Package linux does the netlink plumbing of the node and its endpoints:
// the seta_host device that holds the pods' gateway addresses, the veth pair
// of each endpoint, and the addresses, routes and permanent neighbour entries
// on both sides. It knows nothing about BPF, IPAM or the agent's state.
package linux
