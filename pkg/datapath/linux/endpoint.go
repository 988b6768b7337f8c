package linux

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// HostIfName is the host-side veth name of an endpoint: "lxc" and eleven hex
// digits of a hash of the container ID and interface, so it is stable across
// agent restarts and fits IFNAMSIZ.
func HostIfName(containerID, ifName string) string {
	h := sha256.Sum256([]byte(containerID + "/" + ifName))
	return "lxc" + hex.EncodeToString(h[:])[:11]
}

// PodNet is what the container side of an endpoint should look like.
type PodNet struct {
	NetNS     string // path of the container's network namespace
	IfName    string // interface name inside it, usually eth0
	IPv4      netip.Addr
	IPv6      netip.Addr
	GatewayV4 netip.Addr
	GatewayV6 netip.Addr
	MTU       int
}

// Link is the veth pair as created.
type Link struct {
	HostIfName  string
	HostIfIndex int
	HostMAC     net.HardwareAddr
	PodMAC      net.HardwareAddr
}

// ErrNetNSNotFound means the container's network namespace does not exist.
var ErrNetNSNotFound = errors.New("network namespace not found")

// ErrIfaceExists means the container already has an interface of that name.
var ErrIfaceExists = errors.New("interface already exists in the container")

func openNetNS(path string) (netns.NsHandle, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("%w: %s", ErrNetNSNotFound, path)
		}
		return 0, fmt.Errorf("open netns %s: %w", path, err)
	}
	// A path that is not a netns (a plain file) opens fine but is useless.
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(h), &st); err != nil || (st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC) {
		h.Close()
		return 0, fmt.Errorf("%w: %s is not a network namespace", ErrNetNSNotFound, path)
	}
	return h, nil
}

func randomMAC() net.HardwareAddr {
	m := make(net.HardwareAddr, 6)
	rand.Read(m)
	m[0] = (m[0] | 0x02) &^ 0x01 // locally administered, unicast
	return m
}

// CreateEndpoint creates the veth pair with its peer inside the container's
// netns and configures both sides, except the node's routes to the pod
// (EnsureHostRoutes). On error nothing is left behind.
func CreateEndpoint(hostIfName string, pod PodNet) (_ Link, err error) {
	nsh, err := openNetNS(pod.NetNS)
	if err != nil {
		return Link{}, err
	}
	defer nsh.Close()
	podNL, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return Link{}, fmt.Errorf("netlink handle in %s: %w", pod.NetNS, err)
	}
	defer podNL.Close()
	if _, err := podNL.LinkByName(pod.IfName); err == nil {
		return Link{}, fmt.Errorf("%w: %s in %s", ErrIfaceExists, pod.IfName, pod.NetNS)
	}
	if pod.MTU == 0 {
		pod.MTU = 1500
	}

	// A leftover from a crashed earlier attempt would make LinkAdd fail.
	if old, err := netlink.LinkByName(hostIfName); err == nil {
		netlink.LinkDel(old)
	}
	lk := Link{HostIfName: hostIfName, HostMAC: randomMAC(), PodMAC: randomMAC()}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: hostIfName, MTU: pod.MTU, HardwareAddr: lk.HostMAC},
		PeerName:         pod.IfName,
		PeerHardwareAddr: lk.PodMAC,
		PeerNamespace:    netlink.NsFd(int(nsh)),
		PeerMTU:          uint32(pod.MTU),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return Link{}, fmt.Errorf("create veth %s: %w", hostIfName, err)
	}
	defer func() {
		if err != nil {
			DeleteEndpoint(hostIfName) // deleting one side removes the peer
		}
	}()
	host, err := netlink.LinkByName(hostIfName)
	if err != nil {
		return Link{}, fmt.Errorf("look up %s: %w", hostIfName, err)
	}
	lk.HostIfIndex = host.Attrs().Index

	if err := configurePod(podNL, pod, lk); err != nil {
		return Link{}, err
	}
	if err := configureHost(host, pod, lk); err != nil {
		return Link{}, err
	}
	return lk, nil
}

func configurePod(h *netlink.Handle, pod PodNet, lk Link) error {
	if lo, err := h.LinkByName("lo"); err == nil {
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set lo up in %s: %w", pod.NetNS, err)
		}
	}
	eth, err := h.LinkByName(pod.IfName)
	if err != nil {
		return fmt.Errorf("look up %s in %s: %w", pod.IfName, pod.NetNS, err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("set %s up: %w", pod.IfName, err)
	}
	idx := eth.Attrs().Index
	for _, p := range []struct{ ip, gw netip.Addr }{{pod.IPv4, pod.GatewayV4}, {pod.IPv6, pod.GatewayV6}} {
		if !p.ip.IsValid() {
			continue
		}
		if err := h.AddrReplace(eth, &netlink.Addr{IPNet: hostPrefix(p.ip), Flags: unix.IFA_F_NODAD}); err != nil {
			return fmt.Errorf("add address %s to %s: %w", p.ip, pod.IfName, err)
		}
		// The gateway is on-link; everything else goes through it. Its
		// neighbour entry is permanent, so the pod never asks for it.
		routes := []netlink.Route{
			{LinkIndex: idx, Dst: hostPrefix(p.gw), Scope: netlink.SCOPE_LINK},
			{LinkIndex: idx, Dst: defaultRoute(p.gw), Gw: p.gw.AsSlice()},
		}
		for i := range routes {
			if err := h.RouteReplace(&routes[i]); err != nil {
				return fmt.Errorf("add route %s in %s: %w", routes[i].Dst, pod.NetNS, err)
			}
		}
		if err := h.NeighSet(permanentNeigh(idx, p.gw, lk.HostMAC)); err != nil {
			return fmt.Errorf("add gateway neighbour %s: %w", p.gw, err)
		}
	}
	return nil
}

func configureHost(host netlink.Link, pod PodNet, lk Link) error {
	// Replies from the pod arrive here with a source the host routes here,
	// but loose mode keeps a node with odd policy routing from dropping them.
	writeSysctl("net/ipv4/conf/"+lk.HostIfName+"/rp_filter", "0")
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("set %s up: %w", lk.HostIfName, err)
	}
	// The node's routes to the pod come later (EnsureHostRoutes), once the
	// datapath knows the endpoint: a packet routed to seta_host before then
	// would find no endpoint and be dropped.
	return nil
}

// EnsureHostRoutes (re)creates the node's route and permanent neighbour entry
// for each pod address. Routes go via seta_host, so the node's traffic to
// pods (its own and what it forwards) reaches the from-host program on
// seta_net, which hands it to the pod. It is idempotent; a restarted agent
// calls it for every restored endpoint.
func EnsureHostRoutes(lk Link, pod PodNet) error {
	host, err := netlink.LinkByName(HostDevice)
	if err != nil {
		return fmt.Errorf("look up %s: %w", HostDevice, err)
	}
	idx := host.Attrs().Index
	for _, p := range []struct{ ip, gw netip.Addr }{{pod.IPv4, pod.GatewayV4}, {pod.IPv6, pod.GatewayV6}} {
		if !p.ip.IsValid() {
			continue
		}
		r := &netlink.Route{LinkIndex: idx, Dst: hostPrefix(p.ip), Scope: netlink.SCOPE_LINK}
		if p.gw.IsValid() {
			r.Src = p.gw.AsSlice()
		}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("add route to %s via %s: %w", p.ip, HostDevice, err)
		}
		// Permanent, so the node never asks for a pod's MAC: seta_net does
		// not answer neighbour requests. The program rewrites MACs anyway.
		if err := netlink.NeighSet(permanentNeigh(idx, p.ip, lk.PodMAC)); err != nil {
			return fmt.Errorf("add neighbour %s on %s: %w", p.ip, HostDevice, err)
		}
	}
	return nil
}

// DeleteHostRoutes removes what EnsureHostRoutes made for the addresses;
// missing entries are not errors.
func DeleteHostRoutes(addrs ...netip.Addr) error {
	host, err := netlink.LinkByName(HostDevice)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("look up %s: %w", HostDevice, err)
	}
	idx := host.Attrs().Index
	var errs []error
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		r := &netlink.Route{LinkIndex: idx, Dst: hostPrefix(a), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete route to %s: %w", a, err))
		}
		n := permanentNeigh(idx, a, nil)
		if err := netlink.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete neighbour %s: %w", a, err))
		}
	}
	return errors.Join(errs...)
}

func defaultRoute(gw netip.Addr) *net.IPNet {
	if gw.Is4() {
		return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
}

func permanentNeigh(idx int, ip netip.Addr, mac net.HardwareAddr) *netlink.Neigh {
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	return &netlink.Neigh{LinkIndex: idx, Family: fam, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac}
}

// DeleteEndpoint removes the host-side veth (and with it the peer, routes and
// neighbours). A missing device is not an error.
func DeleteEndpoint(hostIfName string) error {
	l, err := netlink.LinkByName(hostIfName)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("look up %s: %w", hostIfName, err)
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", hostIfName, err)
	}
	return nil
}

// HostLink looks up the host-side veth; ok is false when it does not exist.
func HostLink(hostIfName string) (ifindex int, mac net.HardwareAddr, ok bool, err error) {
	l, err := netlink.LinkByName(hostIfName)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return 0, nil, false, nil
		}
		return 0, nil, false, fmt.Errorf("look up %s: %w", hostIfName, err)
	}
	return l.Attrs().Index, l.Attrs().HardwareAddr, true, nil
}

// CheckEndpoint verifies both sides of an endpoint and returns every
// problem found.
func CheckEndpoint(lk Link, pod PodNet) []string {
	var probs []string
	host, err := netlink.LinkByName(lk.HostIfName)
	if err != nil {
		return []string{fmt.Sprintf("host device %s: %v", lk.HostIfName, err)}
	}
	if host.Attrs().Index != lk.HostIfIndex {
		probs = append(probs, fmt.Sprintf("host device %s has ifindex %d, expected %d", lk.HostIfName, host.Attrs().Index, lk.HostIfIndex))
	}
	if host.Attrs().OperState != netlink.OperUp && host.Attrs().Flags&net.FlagUp == 0 {
		probs = append(probs, fmt.Sprintf("host device %s is down", lk.HostIfName))
	}
	nsh, err := openNetNS(pod.NetNS)
	if err != nil {
		return append(probs, err.Error())
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return append(probs, fmt.Sprintf("netlink handle in %s: %v", pod.NetNS, err))
	}
	defer h.Close()
	eth, err := h.LinkByName(pod.IfName)
	if err != nil {
		return append(probs, fmt.Sprintf("%s in %s: %v", pod.IfName, pod.NetNS, err))
	}
	if eth.Attrs().HardwareAddr.String() != lk.PodMAC.String() {
		probs = append(probs, fmt.Sprintf("%s has MAC %s, expected %s", pod.IfName, eth.Attrs().HardwareAddr, lk.PodMAC))
	}
	if eth.Attrs().Flags&net.FlagUp == 0 {
		probs = append(probs, fmt.Sprintf("%s is down", pod.IfName))
	}
	addrs, err := h.AddrList(eth, netlink.FAMILY_ALL)
	if err != nil {
		return append(probs, fmt.Sprintf("list addresses of %s: %v", pod.IfName, err))
	}
	has := map[netip.Addr]bool{}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			has[ip.Unmap()] = true
		}
	}
	for _, ip := range []netip.Addr{pod.IPv4, pod.IPv6} {
		if ip.IsValid() && !has[ip] {
			probs = append(probs, fmt.Sprintf("%s lacks address %s", pod.IfName, ip))
		}
	}
	for _, gw := range []netip.Addr{pod.GatewayV4, pod.GatewayV6} {
		if !gw.IsValid() {
			continue
		}
		fam := netlink.FAMILY_V4
		if gw.Is6() {
			fam = netlink.FAMILY_V6
		}
		routes, err := h.RouteList(eth, fam)
		if err != nil {
			probs = append(probs, fmt.Sprintf("list routes: %v", err))
			continue
		}
		found := false
		for _, r := range routes {
			if (r.Dst == nil || isDefault(r.Dst)) && r.Gw != nil && r.Gw.Equal(gw.AsSlice()) {
				found = true
			}
		}
		if !found {
			probs = append(probs, fmt.Sprintf("no default route via %s in %s", gw, pod.NetNS))
		}
	}
	return probs
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}
