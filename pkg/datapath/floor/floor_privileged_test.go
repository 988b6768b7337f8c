package floor

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/seta-net/seta/pkg/nsutil"
	"github.com/seta-net/seta/pkg/testutils"
)

// TestPrivilegedFloorRedirect builds client <-> host <-> server from two
// veth pairs whose host sides have no addresses, so nothing but the
// program can carry a packet across: a TCP connection fails before Attach
// and works after it, and fails again after Close.
func TestPrivilegedFloorRedirect(t *testing.T) {
	testutils.Privileged(t)
	name := testutils.RandName("fl")
	hostNS, cliNS, srvNS := name+"-h", name+"-c", name+"-s"
	for _, ns := range []string{hostNS, cliNS, srvNS} {
		if err := nsutil.Create(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nsutil.Delete(ns) })
	}
	hostIdx := map[string]int{}
	macs := map[string]net.HardwareAddr{}
	addrs := map[string]string{cliNS: "10.252.0.1", srvNS: "10.252.0.2"}
	for i, ns := range []string{cliNS, srvNS} {
		hostName := fmt.Sprintf("fl%d", i)
		err := nsutil.Do(nsutil.Path(hostNS), func() error {
			peerNS, err := netns.GetFromPath(nsutil.Path(ns))
			if err != nil {
				return err
			}
			defer peerNS.Close()
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName}, PeerName: "eth0", PeerNamespace: netlink.NsFd(peerNS)}
			if err := netlink.LinkAdd(v); err != nil {
				return err
			}
			l, err := netlink.LinkByName(hostName)
			if err != nil {
				return err
			}
			hostIdx[ns] = l.Attrs().Index
			return netlink.LinkSetUp(l)
		})
		if err != nil {
			t.Fatal(err)
		}
		err = nsutil.Do(nsutil.Path(ns), func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			macs[ns] = l.Attrs().HardwareAddr
			a, _ := netlink.ParseAddr(addrs[ns] + "/24")
			if err := netlink.AddrAdd(l, a); err != nil {
				return err
			}
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(lo); err != nil {
				return err
			}
			return netlink.LinkSetUp(l)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// No ARP crosses without the program either way; the neighbours are
	// static, so the only thing under test is the redirect.
	for ns, peer := range map[string]string{cliNS: srvNS, srvNS: cliNS} {
		err := nsutil.Do(nsutil.Path(ns), func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			return netlink.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT,
				IP: net.ParseIP(addrs[peer]), HardwareAddr: macs[peer]})
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	var ln net.Listener
	err := nsutil.Do(nsutil.Path(srvNS), func() error {
		var err error
		ln, err = net.Listen("tcp", addrs[srvNS]+":7100")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dial := func() error {
		return nsutil.Do(nsutil.Path(cliNS), func() error {
			c, err := net.DialTimeout("tcp", addrs[srvNS]+":7100", 300*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
	}

	if err := dial(); err == nil {
		t.Fatal("connected without the program: the topology leaks")
	}
	var rs []*Redirect
	for from, to := range map[string]string{cliNS: srvNS, srvNS: cliNS} {
		r, err := Attach(nsutil.Path(hostNS), hostIdx[from], hostIdx[to])
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if err := dial(); err != nil {
		t.Fatalf("with the program: %v", err)
	}
	for _, r := range rs {
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := dial(); err == nil {
		t.Fatal("connected after Close: the program is still attached")
	}
}
