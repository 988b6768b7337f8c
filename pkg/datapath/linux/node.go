package linux

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HostDevice owns the pods' gateway addresses, so that pods can reach the
// node at their gateway and the node has a source address for traffic to
// pods. It is one end of a veth pair (the other is NetDevice), as Cilium's
// cilium_host/cilium_net: a dummy device would do, but kernels built without
// CONFIG_DUMMY exist, and the pair gives later datapath stages a hook.
const (
	HostDevice = "seta_host"
	NetDevice  = "seta_net"
)

// Node is the node-wide network setup.
type Node struct {
	GatewayV4 netip.Addr // invalid when the node has no IPv4 pod CIDR
	GatewayV6 netip.Addr // invalid when the node has no IPv6 pod CIDR
}

// SetupNode creates or updates seta_host/seta_net and turns on forwarding.
// It is idempotent and returns the ifindex of seta_net, where the from-host
// program attaches.
func SetupNode(n Node) (netIfindex int, err error) {
	l, err := netlink.LinkByName(HostDevice)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return 0, fmt.Errorf("look up %s: %w", HostDevice, err)
		}
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: HostDevice}, PeerName: NetDevice}
		if err := netlink.LinkAdd(veth); err != nil && !errors.Is(err, unix.EEXIST) {
			return 0, fmt.Errorf("create %s: %w", HostDevice, err)
		}
		if l, err = netlink.LinkByName(HostDevice); err != nil {
			return 0, fmt.Errorf("look up %s: %w", HostDevice, err)
		}
	}
	for _, gw := range []netip.Addr{n.GatewayV4, n.GatewayV6} {
		if !gw.IsValid() {
			continue
		}
		a := &netlink.Addr{IPNet: hostPrefix(gw), Flags: unix.IFA_F_NODAD}
		if err := netlink.AddrReplace(l, a); err != nil {
			return 0, fmt.Errorf("add %s to %s: %w", gw, HostDevice, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return 0, fmt.Errorf("set %s up: %w", HostDevice, err)
	}
	if peer, err := netlink.LinkByName(NetDevice); err == nil {
		if err := netlink.LinkSetUp(peer); err != nil {
			return 0, fmt.Errorf("set %s up: %w", NetDevice, err)
		}
		// Packets from seta_host reach seta_net's program whatever their
		// source; the stack must not drop the rest on reverse-path checks.
		writeSysctl("net/ipv4/conf/"+NetDevice+"/rp_filter", "0")
	}
	// The node routes between pods and the rest of its network.
	for _, s := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
		if err := writeSysctl(s, "1"); err != nil {
			return 0, err
		}
	}
	peer, err := netlink.LinkByName(NetDevice)
	if err != nil {
		return 0, fmt.Errorf("look up %s: %w", NetDevice, err)
	}
	return peer.Attrs().Index, nil
}

// NodeAddrs lists the addresses configured on the node (its netns), for
// overlap checks against pod CIDRs. Loopback and seta_host are left out.
func NodeAddrs() ([]netip.Prefix, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []netip.Prefix
	for _, l := range links {
		if n := l.Attrs().Name; n == "lo" || n == HostDevice || n == NetDevice {
			continue
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
		}
		for _, a := range addrs {
			if p, ok := prefixOf(a.IPNet); ok && p.Addr().IsGlobalUnicast() {
				out = append(out, p.Masked())
			}
		}
	}
	return out, nil
}

// HostFirewallDevices lists the devices the host firewall goes on by
// default: every device with a global address, except loopback and Seta's own.
func HostFirewallDevices() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []string
	for _, l := range links {
		n := l.Attrs().Name
		if n == "lo" || n == HostDevice || n == NetDevice || strings.HasPrefix(n, "lxc") {
			continue
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap().IsGlobalUnicast() {
				out = append(out, n)
				break
			}
		}
	}
	return out, nil
}

// DeviceAddrs returns a device's ifindex and its global unicast addresses
// (the node's addresses on it, for NodePort SNAT).
func DeviceAddrs(name string) (int, []netip.Addr, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, nil, fmt.Errorf("device %s: %w", name, err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return 0, nil, fmt.Errorf("addresses of %s: %w", name, err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap().IsGlobalUnicast() {
			out = append(out, ip.Unmap())
		}
	}
	return l.Attrs().Index, out, nil
}

// HostAddrs lists every global unicast address of the node, seta_host's
// gateway addresses included: traffic from them comes from the host.
func HostAddrs() ([]netip.Addr, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap().IsGlobalUnicast() {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// hostPrefix is addr as a /32 or /128.
func hostPrefix(addr netip.Addr) *net.IPNet {
	bits := 32
	if addr.Is6() {
		bits = 128
	}
	return &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(bits, bits)}
}

func writeSysctl(name, val string) error {
	if err := os.WriteFile("/proc/sys/"+name, []byte(val), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", name, val, err)
	}
	return nil
}
