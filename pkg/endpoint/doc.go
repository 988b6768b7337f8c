// Package endpoint owns the node's endpoints: the desired state of every
// pod attachment (addresses, interfaces, labels), its persistence in the
// agent's state directory, and the lifecycle that drives the datapath
// through the small Datapath interface. It is plain Go; the kernel side is
// behind Datapath, so this package is tested without root.
package endpoint
