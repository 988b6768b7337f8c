// Package service is the service control plane: the desired services of the
// node (a frontend address, its backends and how traffic picks one), their
// validation, their expansion into the datapath's frontend entries per
// scope, the Maglev lookup tables, the allocation of service and backend
// IDs, and the reconciler that writes only the differences to the
// load-balancer maps (loadbalancer.LBMap).
//
// A Service is both the persisted record (<state-dir>/services.json, with
// the changes since in services.journal: see store.go) and
// the API model (docs/api.md, "Services"), so its JSON names are part of the
// v1 API.
//
// It is plain Go: the kernel side is behind loadbalancer.LBMap, so this
// package is tested without root. It must not import cilium/ebpf, netlink
// or pkg/datapath.
package service
