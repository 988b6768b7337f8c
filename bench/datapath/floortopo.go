package main

import (
	"encoding/json"
	"fmt"

	"github.com/seta-net/seta/pkg/datapath/floor"
	"github.com/seta-net/seta/pkg/nsutil"
)

// ---- (f) the veth floor ----
//
// (f) has the shape of every veth datapath (each pod's veth pair ends in a
// node namespace, and a program on the host-side veth's ingress hands the
// packet to the other pod with bpf_redirect_peer), but the program does
// nothing else: no lookups, no rewrite, no policy, no counting. The pods
// are on one /24 with each other's MAC as a permanent neighbour, so no ARP
// has to cross. What (f) costs over (a) is the receive on the host-side
// veth that a bare pair does not have; Seta's own work is (c) over (f).

func floorNS() (node, client, server string) {
	return base + "-f-node", base + "-f-client", base + "-f-server"
}

// floorLinks are the attached floor programs; they live as long as the
// harness holds them.
var floorLinks []*floor.Redirect

func setupFloor() (*topology, error) {
	t := newTopology("f")
	node, cli, srv := floorNS()
	t.ClientNS, t.ServerNS = cli, srv
	t.ServerIP = "10.250.1.2"
	addrs := map[string]string{cli: "10.250.1.1", srv: t.ServerIP}
	hostDev := map[string]string{cli: "flc", srv: "fls"}
	for _, ns := range []string{node, cli, srv} {
		if err := createNS(ns); err != nil {
			return nil, err
		}
		if _, err := inNS(ns, "ip", "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	for _, ns := range []string{cli, srv} {
		for _, args := range [][]string{
			{"link", "add", hostDev[ns], "type", "veth", "peer", "name", "eth0", "netns", nsutil.Path(ns)},
			{"link", "set", hostDev[ns], "up"},
		} {
			if _, err := inNS(node, "ip", args...); err != nil {
				return nil, err
			}
		}
		for _, args := range [][]string{{"addr", "add", addrs[ns] + "/24", "dev", "eth0"}, {"link", "set", "eth0", "up"}} {
			if _, err := inNS(ns, "ip", args...); err != nil {
				return nil, err
			}
		}
	}
	for ns, peer := range map[string]string{cli: srv, srv: cli} {
		mac, err := linkField(peer, "eth0", "address")
		if err != nil {
			return nil, err
		}
		if _, err := inNS(ns, "ip", "neigh", "add", addrs[peer], "lladdr", mac, "dev", "eth0", "nud", "permanent"); err != nil {
			return nil, err
		}
	}
	idx := map[string]int{}
	for _, ns := range []string{cli, srv} {
		i, err := linkField(node, hostDev[ns], "ifindex")
		if err != nil {
			return nil, err
		}
		var n int
		if _, err := fmt.Sscan(i, &n); err != nil {
			return nil, fmt.Errorf("ifindex of %s: %q", hostDev[ns], i)
		}
		idx[ns] = n
	}
	for from, to := range map[string]string{cli: srv, srv: cli} {
		r, err := floor.Attach(nsutil.Path(node), idx[from], idx[to])
		if err != nil {
			return nil, err
		}
		floorLinks = append(floorLinks, r)
	}
	t.Checks = append(t.Checks, "node namespace: the floor program on the ingress of both host-side veths, no addresses there, so nothing else can carry a packet")
	return t, nil
}

// linkField reads one field of a link's `ip -j link show` in namespace ns.
func linkField(ns, dev, field string) (string, error) {
	out, err := inNS(ns, "ip", "-j", "link", "show", "dev", dev)
	if err != nil {
		return "", err
	}
	var links []map[string]any
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 || links[0][field] == nil {
		return "", fmt.Errorf("ip -j link show dev %s in %s: no %s in %q", dev, ns, field, out)
	}
	return fmt.Sprint(links[0][field]), nil
}

func teardownFloor() {
	for _, r := range floorLinks {
		r.Close()
	}
	floorLinks = nil
	node, c, s := floorNS()
	nsutil.Delete(c)
	nsutil.Delete(s)
	nsutil.Delete(node)
}
