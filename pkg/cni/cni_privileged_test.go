package cni_test

// Privileged behaviour tests of seta-cni against a real seta-agent: the agent
// runs in its own network namespace, pods are named namespaces, and the
// plugin binary is driven through libcni (as runtimes do), the stock cnitool
// and directly. Run with SETA_PRIVILEGED_TESTS=1 as root.

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/seta-net/seta/pkg/cni"
	"github.com/seta-net/seta/pkg/testutils"
)

// result is a CNI result of any supported version, flattened.
type result struct {
	version string
	ifaces  []current.Interface
	ips     []resultIP
	routes  []*types.Route
}

type resultIP struct {
	iface   int // -1 when absent
	version string
	addr    net.IPNet
	gw      net.IP
}

// flatten checks that res has the concrete type of its own version (0.x
// results are types040, 1.x are types100) and flattens it.
func flatten(t *testing.T, res types.Result, wantVersion string) result {
	t.Helper()
	if res == nil {
		t.Fatal("ADD returned no result")
	}
	if res.Version() != wantVersion {
		t.Fatalf("result version %s, want %s", res.Version(), wantVersion)
	}
	var out result
	out.version = res.Version()
	ifIdx := func(p *int) int {
		if p == nil {
			return -1
		}
		return *p
	}
	switch r := res.(type) {
	case *types040.Result:
		if gt, _ := version.GreaterThanOrEqualTo(wantVersion, "1.0.0"); gt {
			t.Fatalf("result for %s is a %T", wantVersion, res)
		}
		for _, i := range r.Interfaces {
			out.ifaces = append(out.ifaces, current.Interface{Name: i.Name, Mac: i.Mac, Sandbox: i.Sandbox})
		}
		for _, ip := range r.IPs {
			out.ips = append(out.ips, resultIP{iface: ifIdx(ip.Interface), version: ip.Version, addr: ip.Address, gw: ip.Gateway})
		}
		out.routes = r.Routes
	case *current.Result:
		if gt, _ := version.GreaterThanOrEqualTo(wantVersion, "1.0.0"); !gt {
			t.Fatalf("result for %s is a %T", wantVersion, res)
		}
		for _, i := range r.Interfaces {
			out.ifaces = append(out.ifaces, *i)
		}
		for _, ip := range r.IPs {
			out.ips = append(out.ips, resultIP{iface: ifIdx(ip.Interface), addr: ip.Address, gw: ip.Gateway})
		}
		out.routes = r.Routes
	default:
		t.Fatalf("unexpected result type %T for version %s", res, wantVersion)
	}
	return out
}

// wantNet is what a pod on an agent should get.
type wantNet struct {
	v4, v6 netip.Prefix // pod CIDRs; invalid if the family is off
	gw4    netip.Addr
	gw6    netip.Addr
}

var defaultNet = wantNet{
	v4: netip.MustParsePrefix(defaultV4CIDR), v6: netip.MustParsePrefix(defaultV6CIDR),
	gw4: netip.MustParseAddr("10.99.0.1"), gw6: netip.MustParseAddr("fd00:99::1"),
}

// podAddrs are the addresses an ADD handed out.
type podAddrs struct {
	v4, v6   netip.Addr
	hostIf   string
	hostMAC  string
	podMAC   string
	ipsCount int
}

// checkResult verifies an ADD result's shape: host veth and eth0 in the
// sandbox, one host address per enabled family from its CIDR with its
// gateway, and default routes.
func checkResult(t *testing.T, r result, pod *testutils.NetNS, w wantNet) podAddrs {
	t.Helper()
	var pa podAddrs
	if len(r.ifaces) != 2 {
		t.Fatalf("result has %d interfaces, want 2: %+v", len(r.ifaces), r.ifaces)
	}
	host, ctr := r.ifaces[0], r.ifaces[1]
	if !strings.HasPrefix(host.Name, "lxc") || host.Sandbox != "" || host.Mac == "" {
		t.Errorf("host interface = %+v, want lxc... with a MAC and no sandbox", host)
	}
	if ctr.Name != "eth0" || ctr.Sandbox != pod.Path || ctr.Mac == "" {
		t.Errorf("container interface = %+v, want eth0 with a MAC in sandbox %s", ctr, pod.Path)
	}
	if gt, _ := version.GreaterThanOrEqualTo(r.version, "1.1.0"); gt && ctr.Mtu != 1500 {
		t.Errorf("container interface MTU = %d, want 1500", ctr.Mtu)
	}
	pa.hostIf, pa.hostMAC, pa.podMAC = host.Name, host.Mac, ctr.Mac

	wantIPs := 0
	for _, fam := range []struct {
		cidr netip.Prefix
		gw   netip.Addr
		ver  string
		dst  *netip.Addr
	}{{w.v4, w.gw4, "4", &pa.v4}, {w.v6, w.gw6, "6", &pa.v6}} {
		if !fam.cidr.IsValid() {
			continue
		}
		wantIPs++
		bits := fam.cidr.Addr().BitLen()
		var found *resultIP
		for i := range r.ips {
			a, _ := netip.AddrFromSlice(r.ips[i].addr.IP)
			if fam.cidr.Contains(a.Unmap()) {
				found = &r.ips[i]
				*fam.dst = a.Unmap()
			}
		}
		if found == nil {
			t.Errorf("result has no IPv%s address from %s: %+v", fam.ver, fam.cidr, r.ips)
			continue
		}
		if ones, b := found.addr.Mask.Size(); ones != bits || b != bits {
			t.Errorf("address %s: mask /%d of %d bits, want /%d", found.addr.String(), ones, b, bits)
		}
		if *fam.dst == fam.gw || *fam.dst == fam.cidr.Addr() {
			t.Errorf("address %s is the gateway or network address", *fam.dst)
		}
		if gw, _ := netip.AddrFromSlice(found.gw); gw.Unmap() != fam.gw {
			t.Errorf("address %s: gateway %v, want %s", *fam.dst, found.gw, fam.gw)
		}
		if found.iface != 1 {
			t.Errorf("address %s: interface index %d, want 1 (eth0)", *fam.dst, found.iface)
		}
		if found.version != "" && found.version != fam.ver {
			t.Errorf("address %s: version %q, want %q", *fam.dst, found.version, fam.ver)
		}
		haveRoute := false
		for _, rt := range r.routes {
			ones, b := rt.Dst.Mask.Size()
			gw, _ := netip.AddrFromSlice(rt.GW)
			if ones == 0 && b == bits && rt.Dst.IP.IsUnspecified() && gw.Unmap() == fam.gw {
				haveRoute = true
			}
		}
		if !haveRoute {
			t.Errorf("result has no IPv%s default route via %s: %v", fam.ver, fam.gw, r.routes)
		}
	}
	if len(r.ips) != wantIPs {
		t.Errorf("result has %d IPs, want %d: %+v", len(r.ips), wantIPs, r.ips)
	}
	if len(r.routes) != wantIPs {
		t.Errorf("result has %d routes, want %d: %v", len(r.routes), wantIPs, r.routes)
	}
	pa.ipsCount = len(r.ips)
	return pa
}

// checkPod verifies that the pod's eth0 really carries the addresses and
// routes of pa and that the host side exists in the agent's namespace.
func checkPod(t *testing.T, a *agent, pod *testutils.NetNS, pa podAddrs, w wantNet) {
	t.Helper()
	eth := ifaceIn(t, pod.Path, "eth0")
	if !eth.ok {
		t.Fatalf("no eth0 in pod netns %s", pod.Name)
	}
	if !eth.up {
		t.Errorf("eth0 in %s is down", pod.Name)
	}
	if eth.mac != pa.podMAC {
		t.Errorf("eth0 MAC %s, result says %s", eth.mac, pa.podMAC)
	}
	for _, f := range []struct {
		ip, gw netip.Addr
	}{{pa.v4, w.gw4}, {pa.v6, w.gw6}} {
		if !f.ip.IsValid() {
			continue
		}
		pfx := netip.PrefixFrom(f.ip, f.ip.BitLen())
		if !eth.hasAddr(pfx) {
			t.Errorf("eth0 in %s lacks %s; has %v", pod.Name, pfx, eth.addrs)
		}
		if !eth.defaultRouteVia(f.gw) {
			t.Errorf("eth0 in %s has no default route via %s", pod.Name, f.gw)
		}
	}
	if want := pa.ipsCount; len(eth.addrs) != want {
		t.Errorf("eth0 in %s has addresses %v, want exactly %d", pod.Name, eth.addrs, want)
	}
	host := ifaceIn(t, a.ns.Path, pa.hostIf)
	if !host.ok {
		t.Errorf("host side %s is missing from the agent netns", pa.hostIf)
	} else if host.mac != pa.hostMAC {
		t.Errorf("%s MAC %s, result says %s", pa.hostIf, host.mac, pa.hostMAC)
	}
}

// checkGone verifies that an endpoint's devices are gone.
func checkGone(t *testing.T, a *agent, pod *testutils.NetNS, hostIf string) {
	t.Helper()
	if ifaceIn(t, pod.Path, "eth0").ok {
		t.Errorf("eth0 still exists in pod netns %s", pod.Name)
	}
	if hostIf != "" && ifaceIn(t, a.ns.Path, hostIf).ok {
		t.Errorf("host side %s still exists in the agent netns", hostIf)
	}
}

func addPod(t *testing.T, c *libcni.CNIConfig, list *libcni.NetworkConfigList, id string, pod *testutils.NetNS, w wantNet) podAddrs {
	t.Helper()
	res, err := c.AddNetworkList(context.Background(), list, rtConf(id, pod))
	if err != nil {
		t.Fatalf("ADD %s: %v", id, err)
	}
	return checkResult(t, flatten(t, res, list.CNIVersion), pod, w)
}

// 1. The full lifecycle for every spec version through libcni.
func TestPrivilegedCNILifecycle(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			ctx := context.Background()
			c := newCNI(t)
			list := conflist(t, "seta", v, a.sock)
			pod := testutils.NewNetNS(t, "seta-cnit-p-")
			id := testutils.RandName("ctr-")
			rt := rtConf(id, pod)

			pa := addPod(t, c, list, id, pod, defaultNet)
			checkPod(t, a, pod, pa, defaultNet)
			eps := a.wantEndpoints(t, 1)
			ep := eps[0]
			if ep.ContainerID != id || ep.IfName != "eth0" || ep.NetNS != pod.Path || ep.Network != "seta" ||
				ep.IPv4 != pa.v4 || ep.IPv6 != pa.v6 || ep.HostIfName != pa.hostIf || ep.State != "ready" {
				t.Errorf("agent endpoint %+v does not match the ADD (container %s, %s, %+v)", ep, id, pod.Path, pa)
			}

			if gte, _ := version.GreaterThanOrEqualTo(v, "0.4.0"); gte {
				if err := c.CheckNetworkList(ctx, list, rt); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			} else if err := c.CheckNetworkList(ctx, list, rt); !errors.Is(err, libcni.ErrorCheckNotSupp) {
				t.Errorf("CHECK on %s: got %v, want ErrorCheckNotSupp", v, err)
			}

			if err := c.DelNetworkList(ctx, list, rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if err := c.DelNetworkList(ctx, list, rt); err != nil {
				t.Errorf("second DEL: %v", err)
			}
			checkGone(t, a, pod, pa.hostIf)
			a.wantEndpoints(t, 0)
			if l := a.lxcLinks(t); len(l) != 0 {
				t.Errorf("lxc devices left in the agent netns: %v", l)
			}
		})
	}
}

// 2. DEL of something never added succeeds, with or without a netns.
func TestPrivilegedCNIDelUnknown(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	ctx := context.Background()
	pod := testutils.NewNetNS(t, "seta-cnit-p-")
	for _, v := range []string{"0.3.1", "1.1.0"} {
		c := newCNI(t)
		list := conflist(t, "seta", v, a.sock)
		if err := c.DelNetworkList(ctx, list, rtConf(testutils.RandName("never-"), pod)); err != nil {
			t.Errorf("%s: DEL of an unknown container: %v", v, err)
		}
		gone := &libcni.RuntimeConf{ContainerID: testutils.RandName("never-"), IfName: "eth0",
			NetNS: "/run/netns/" + testutils.RandName("seta-cnit-missing-")}
		if err := c.DelNetworkList(ctx, list, gone); err != nil {
			t.Errorf("%s: DEL of an unknown container with a missing netns: %v", v, err)
		}
		empty := &libcni.RuntimeConf{ContainerID: testutils.RandName("never-"), IfName: "eth0"}
		if err := c.DelNetworkList(ctx, list, empty); err != nil {
			t.Errorf("%s: DEL of an unknown container without a netns: %v", v, err)
		}
	}
	a.wantEndpoints(t, 0)
}

// 3. A second ADD of the same attachment fails with 102 and leaves the
// first one intact.
func TestPrivilegedCNIAddTwice(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	ctx := context.Background()
	c := newCNI(t)
	list := conflist(t, "seta", "1.1.0", a.sock)
	pod := testutils.NewNetNS(t, "seta-cnit-p-")
	id := testutils.RandName("ctr-")
	pa := addPod(t, c, list, id, pod, defaultNet)

	_, err := c.AddNetworkList(ctx, list, rtConf(id, pod))
	wantCode(t, err, cni.ErrAlreadyAttached)

	a.wantEndpoints(t, 1)
	checkPod(t, a, pod, pa, defaultNet)
	if err := c.CheckNetworkList(ctx, list, rtConf(id, pod)); err != nil {
		t.Errorf("CHECK of the first attachment after the failed second ADD: %v", err)
	}
	if l := a.lxcLinks(t); len(l) != 1 {
		t.Errorf("lxc devices in the agent netns: %v, want just %s", l, pa.hostIf)
	}
}

// 4. ADD into a netns that does not exist fails with 8 and leaves nothing.
func TestPrivilegedCNIAddMissingNetNS(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	c := newCNI(t)
	list := conflist(t, "seta", "1.1.0", a.sock)
	rt := &libcni.RuntimeConf{ContainerID: testutils.RandName("ctr-"), IfName: "eth0",
		NetNS: "/run/netns/" + testutils.RandName("seta-cnit-missing-")}
	_, err := c.AddNetworkList(context.Background(), list, rt)
	wantCode(t, err, types.ErrInvalidNetNS)
	a.wantEndpoints(t, 0)
	if l := a.lxcLinks(t); len(l) != 0 {
		t.Errorf("lxc devices left in the agent netns: %v", l)
	}
	// The agent still works.
	pod := testutils.NewNetNS(t, "seta-cnit-p-")
	addPod(t, c, list, testutils.RandName("ctr-"), pod, defaultNet)
}

// 5. Bad configuration: a relative socket (7) and undecodable JSON (6).
func TestPrivilegedCNIMalformedConfig(t *testing.T) {
	testutils.Privileged(t)
	bin := binDir(t)
	pod := testutils.NewNetNS(t, "seta-cnit-p-")

	t.Run("relative socket", func(t *testing.T) {
		c := newCNI(t)
		list := conflist(t, "seta", "1.1.0", "relative/path")
		_, err := c.AddNetworkList(context.Background(), list, rtConf(testutils.RandName("ctr-"), pod))
		ce := wantCode(t, err, types.ErrInvalidNetworkConfig)
		if !strings.Contains(ce.Msg, "relative/path") {
			t.Errorf("message %q does not name the bad socket", ce.Msg)
		}
	})

	t.Run("timeout out of range", func(t *testing.T) {
		c := newCNI(t)
		list, err := libcni.ConfListFromBytes([]byte(`{"cniVersion": "1.1.0", "name": "seta",
			"plugins": [{"type": "seta-cni", "socket": "/tmp/none.sock", "timeoutSeconds": 601}]}`))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.AddNetworkList(context.Background(), list, rtConf(testutils.RandName("ctr-"), pod))
		wantCode(t, err, types.ErrInvalidNetworkConfig)
	})

	t.Run("bad label", func(t *testing.T) {
		c := newCNI(t)
		list, err := libcni.ConfListFromBytes([]byte(`{"cniVersion": "1.1.0", "name": "seta", "plugins": [{"type": "seta-cni",
			"socket": "/tmp/none.sock", "args": {"cni": {"labels": [{"key": "a=b", "value": "c"}]}}}]}`))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.AddNetworkList(context.Background(), list, rtConf(testutils.RandName("ctr-"), pod))
		wantCode(t, err, types.ErrInvalidNetworkConfig)
	})

	t.Run("unsupported version", func(t *testing.T) {
		c := newCNI(t)
		_, err := c.AddNetworkList(context.Background(), conflist(t, "seta", "0.2.0", "/tmp/none.sock"), rtConf(testutils.RandName("ctr-"), pod))
		wantCode(t, err, types.ErrIncompatibleCNIVersion)
	})

	t.Run("version info", func(t *testing.T) {
		info, err := newCNI(t).GetVersionInfo(context.Background(), "seta-cni")
		if err != nil {
			t.Fatalf("VERSION: %v", err)
		}
		if got, want := info.SupportedVersions(), []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}; !slices.Equal(got, want) {
			t.Errorf("supported versions %v, want %v", got, want)
		}
	})

	t.Run("invalid JSON", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(bin, "seta-cni"))
		cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID="+testutils.RandName("ctr-"),
			"CNI_NETNS="+pod.Path, "CNI_IFNAME=eth0", "CNI_PATH="+bin)
		cmd.Stdin = strings.NewReader(`{"cniVersion": "1.1.0", "name": "seta", "type": `)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("seta-cni with invalid JSON: err %v, want a non-zero exit; stdout %q stderr %q", err, stdout.String(), stderr.String())
		}
		var ce types.Error
		if err := json.Unmarshal(stdout.Bytes(), &ce); err != nil {
			t.Fatalf("stdout is not a JSON CNI error: %v: %q", err, stdout.String())
		}
		if ce.Code != types.ErrDecodingFailure || ce.Msg == "" {
			t.Errorf("error %+v, want code %d with a message", ce, types.ErrDecodingFailure)
		}
	})
}

// 6. With no agent: ADD fails with 11 naming the socket, STATUS with 50;
// with an agent STATUS succeeds.
func TestPrivilegedCNIAgentDown(t *testing.T) {
	testutils.Privileged(t)
	ctx := context.Background()
	sock := filepath.Join(shortTempDir(t), "nobody.sock")
	pod := testutils.NewNetNS(t, "seta-cnit-p-")
	c := newCNI(t)
	list := conflist(t, "seta", "1.1.0", sock)

	_, err := c.AddNetworkList(ctx, list, rtConf(testutils.RandName("ctr-"), pod))
	ce := wantCode(t, err, types.ErrTryAgainLater)
	if !strings.Contains(ce.Error(), sock) {
		t.Errorf("error %q does not name the socket %s", ce.Error(), sock)
	}
	if ifaceIn(t, pod.Path, "eth0").ok {
		t.Error("failed ADD left eth0 in the pod")
	}

	// DEL and GC cannot succeed either: the runtime must retry them.
	err = c.DelNetworkList(ctx, list, rtConf(testutils.RandName("ctr-"), pod))
	wantCode(t, err, types.ErrTryAgainLater)
	err = c.GCNetworkList(ctx, list, &libcni.GCArgs{})
	wantCode(t, err, types.ErrTryAgainLater)

	err = c.GetStatusNetworkList(ctx, list)
	ce = wantCode(t, err, types.ErrPluginNotAvailable)
	if !strings.Contains(ce.Error(), sock) {
		t.Errorf("STATUS error %q does not name the socket %s", ce.Error(), sock)
	}

	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	if err := c.GetStatusNetworkList(ctx, conflist(t, "seta", "1.1.0", a.sock)); err != nil {
		t.Errorf("STATUS with the agent running: %v", err)
	}
	// STATUS ends when the agent does.
	a.stop()
	err = c.GetStatusNetworkList(ctx, conflist(t, "seta", "1.1.0", a.sock))
	wantCode(t, err, types.ErrPluginNotAvailable)
}

// 7. GC removes the endpoints of its network that are not valid.
func TestPrivilegedCNIGC(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	ctx := context.Background()
	c := newCNI(t)
	list := conflist(t, "seta", "1.1.0", a.sock)
	other := conflist(t, "other", "1.1.0", a.sock)

	type podT struct {
		id  string
		ns  *testutils.NetNS
		pa  podAddrs
		net *libcni.NetworkConfigList
	}
	var pods []podT
	for i := range 4 {
		p := podT{id: testutils.RandName("ctr-"), ns: testutils.NewNetNS(t, "seta-cnit-p-"), net: list}
		if i == 3 {
			p.net = other // another network: GC of "seta" must not touch it
		}
		p.pa = addPod(t, c, p.net, p.id, p.ns, defaultNet)
		pods = append(pods, p)
	}
	a.wantEndpoints(t, 4)

	valid := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{
		{ContainerID: pods[0].id, IfName: "eth0"}, {ContainerID: pods[1].id, IfName: "eth0"},
	}}
	// A runner with an empty cache: libcni has no attachments to DEL itself,
	// so only the plugin's GC can remove pod 2.
	if err := newCNI(t).GCNetworkList(ctx, list, valid); err != nil {
		t.Fatalf("GC: %v", err)
	}
	check := func() {
		t.Helper()
		eps := a.wantEndpoints(t, 3)
		var ids []string
		for _, ep := range eps {
			ids = append(ids, ep.ContainerID)
		}
		for _, i := range []int{0, 1, 3} {
			if !slices.Contains(ids, pods[i].id) {
				t.Errorf("pod %d (%s) lost its endpoint; agent has %v", i, pods[i].id, ids)
			}
		}
		if slices.Contains(ids, pods[2].id) {
			t.Errorf("pod 2 (%s) still has an endpoint", pods[2].id)
		}
		checkGone(t, a, pods[2].ns, pods[2].pa.hostIf)
		for _, i := range []int{0, 1, 3} {
			checkPod(t, a, pods[i].ns, pods[i].pa, defaultNet)
			if err := c.CheckNetworkList(ctx, pods[i].net, rtConf(pods[i].id, pods[i].ns)); err != nil {
				t.Errorf("CHECK pod %d after GC: %v", i, err)
			}
		}
	}
	check()

	// GC again through the runner that did the ADDs: libcni now DELs pod 2
	// from its cache (already gone: must succeed), then GCs again.
	if err := c.GCNetworkList(ctx, list, valid); err != nil {
		t.Fatalf("second GC: %v", err)
	}
	check()
}

// 8. IPAM exhaustion gives 100 and leaves nothing behind; a DEL frees room.
func TestPrivilegedCNIIPAMExhaustion(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, "10.98.0.0/29", "")
	w := wantNet{v4: netip.MustParsePrefix("10.98.0.0/29"), gw4: netip.MustParseAddr("10.98.0.1")}
	ctx := context.Background()
	c := newCNI(t)
	list := conflist(t, "seta", "1.1.0", a.sock)

	type podT struct {
		id string
		ns *testutils.NetNS
		pa podAddrs
	}
	var pods []podT
	seen := map[netip.Addr]bool{}
	for i := range 5 {
		p := podT{id: testutils.RandName("ctr-"), ns: testutils.NewNetNS(t, "seta-cnit-p-")}
		p.pa = addPod(t, c, list, p.id, p.ns, w)
		if p.pa.v6.IsValid() {
			t.Errorf("pod %d got IPv6 %s from an IPv4-only agent", i, p.pa.v6)
		}
		if seen[p.pa.v4] {
			t.Errorf("pod %d got %s twice", i, p.pa.v4)
		}
		seen[p.pa.v4] = true
		pods = append(pods, p)
	}
	checkPod(t, a, pods[4].ns, pods[4].pa, w)

	sixth := podT{id: testutils.RandName("ctr-"), ns: testutils.NewNetNS(t, "seta-cnit-p-")}
	_, err := c.AddNetworkList(ctx, list, rtConf(sixth.id, sixth.ns))
	wantCode(t, err, cni.ErrIPAMExhausted)
	a.wantEndpoints(t, 5)
	if l := a.lxcLinks(t); len(l) != 5 {
		t.Errorf("agent netns has lxc devices %v, want 5", l)
	}
	checkGone(t, a, sixth.ns, "")

	if err := c.DelNetworkList(ctx, list, rtConf(pods[0].id, pods[0].ns)); err != nil {
		t.Fatalf("DEL pod 0: %v", err)
	}
	checkGone(t, a, pods[0].ns, pods[0].pa.hostIf)
	pa := addPod(t, c, list, sixth.id, sixth.ns, w)
	if pa.v4 != pods[0].pa.v4 {
		t.Errorf("sixth pod got %s, want the freed %s", pa.v4, pods[0].pa.v4)
	}
	checkPod(t, a, sixth.ns, pa, w)
	a.wantEndpoints(t, 5)
	if err := c.CheckNetworkList(ctx, list, rtConf(sixth.id, sixth.ns)); err != nil {
		t.Errorf("CHECK sixth pod: %v", err)
	}
}

// 9. The stock cnitool drives the plugin from a conflist on disk.
func TestPrivilegedCNItool(t *testing.T) {
	testutils.Privileged(t)
	bin := binDir(t)
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "10-seta.conflist"), conflistBytes("seta", "1.1.0", a.sock), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := testutils.NewNetNS(t, "seta-cnit-p-")
	// cnitool names the container after the netns path and caches results
	// in libcni's default directory; remove the cache entry should the
	// test fail between add and del.
	sum := sha512.Sum512([]byte(pod.Path))
	containerID := fmt.Sprintf("cnitool-%x", sum[:10])
	t.Cleanup(func() { os.Remove(filepath.Join(libcni.CacheDir, "results", "seta-"+containerID+"-eth0")) })

	cnitool := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "cnitool"), args...)
		cmd.Env = append(os.Environ(), "NETCONFPATH="+confDir, "CNI_PATH="+bin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cnitool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	out := cnitool("add", "seta", pod.Path)
	res, err := current.NewResultFromResult(mustResult(t, out))
	if err != nil {
		t.Fatalf("cnitool add printed %q: %v", out, err)
	}
	r := result{version: res.CNIVersion, routes: res.Routes}
	for _, i := range res.Interfaces {
		r.ifaces = append(r.ifaces, *i)
	}
	for _, ip := range res.IPs {
		idx := -1
		if ip.Interface != nil {
			idx = *ip.Interface
		}
		r.ips = append(r.ips, resultIP{iface: idx, addr: ip.Address, gw: ip.Gateway})
	}
	pa := checkResult(t, r, pod, defaultNet)
	checkPod(t, a, pod, pa, defaultNet)
	eps := a.wantEndpoints(t, 1)
	if eps[0].ContainerID != containerID || eps[0].Network != "seta" {
		t.Errorf("endpoint container %q network %q, want %q and seta", eps[0].ContainerID, eps[0].Network, containerID)
	}

	cnitool("check", "seta", pod.Path)
	cnitool("del", "seta", pod.Path)
	a.wantEndpoints(t, 0)
	checkGone(t, a, pod, pa.hostIf)
}

func mustResult(t *testing.T, out string) types.Result {
	t.Helper()
	res, err := current.NewResult([]byte(out))
	if err != nil {
		t.Fatalf("cnitool output is not a 1.x result: %v\n%s", err, out)
	}
	return res
}

// 10. Endpoints survive an agent restart: CHECK passes, DEL works, and the
// restored addresses are not handed out again.
func TestPrivilegedCNIAgentRestart(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	ctx := context.Background()
	c := newCNI(t)
	list := conflist(t, "seta", "1.1.0", a.sock)
	pod := testutils.NewNetNS(t, "seta-cnit-p-")
	id := testutils.RandName("ctr-")
	pa := addPod(t, c, list, id, pod, defaultNet)
	before := a.wantEndpoints(t, 1)[0]
	// A second pod goes away while the agent is down.
	gonePod := testutils.NewNetNS(t, "seta-cnit-p-")
	goneID := testutils.RandName("ctr-")
	gonePA := addPod(t, c, list, goneID, gonePod, defaultNet)

	a.stop()
	if err := netns.DeleteNamed(gonePod.Name); err != nil {
		t.Fatalf("delete pod netns: %v", err)
	}
	// The kernel tears the namespace (and with it the veth) down
	// asynchronously.
	for deadline := time.Now().Add(5 * time.Second); ifaceIn(t, a.ns.Path, gonePA.hostIf).ok; {
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists 5s after its pod netns was deleted", gonePA.hostIf)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.start()

	after := a.wantEndpoints(t, 1)[0]
	if after.ID != before.ID || after.IPv4 != before.IPv4 || after.IPv6 != before.IPv6 ||
		after.HostIfName != before.HostIfName || after.ContainerID != id {
		t.Errorf("endpoint changed across the restart:\nbefore %+v\nafter  %+v", before, after)
	}
	checkPod(t, a, pod, pa, defaultNet)
	if err := c.CheckNetworkList(ctx, list, rtConf(id, pod)); err != nil {
		t.Errorf("CHECK after restart: %v", err)
	}
	// The vanished pod's endpoint was dropped at restore; its DEL succeeds.
	if err := c.DelNetworkList(ctx, list, rtConf(goneID, gonePod)); err != nil {
		t.Errorf("DEL of the pod that vanished while the agent was down: %v", err)
	}

	// A new pod must not get the restored endpoint's addresses.
	pod2 := testutils.NewNetNS(t, "seta-cnit-p-")
	id2 := testutils.RandName("ctr-")
	pa2 := addPod(t, c, list, id2, pod2, defaultNet)
	if pa2.v4 == pa.v4 || pa2.v6 == pa.v6 {
		t.Errorf("new pod got %s/%s, which the restored endpoint holds (%s/%s)", pa2.v4, pa2.v6, pa.v4, pa.v6)
	}

	if err := c.DelNetworkList(ctx, list, rtConf(id, pod)); err != nil {
		t.Fatalf("DEL after restart: %v", err)
	}
	checkGone(t, a, pod, pa.hostIf)
	eps := a.wantEndpoints(t, 1)
	if eps[0].ContainerID != id2 {
		t.Errorf("remaining endpoint is %s, want %s", eps[0].ContainerID, id2)
	}
	if err := c.CheckNetworkList(ctx, list, rtConf(id2, pod2)); err != nil {
		t.Errorf("CHECK of the post-restart pod: %v", err)
	}
}

// ADD into a path that exists but is not a network namespace, or into a
// pod that already has the interface, fails and leaves nothing behind.
func TestPrivilegedCNIAddBadSandbox(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	ctx := context.Background()
	c := newCNI(t)
	list := conflist(t, "seta", "1.1.0", a.sock)
	nothingLeft := func(t *testing.T) {
		t.Helper()
		a.wantEndpoints(t, 0)
		if l := a.lxcLinks(t); len(l) != 0 {
			t.Errorf("lxc devices left in the agent netns: %v", l)
		}
		st, err := a.client.Status(ctx)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		for _, p := range st.IPAM {
			if p.Used != 0 {
				t.Errorf("IPAM pool %s has %d addresses in use, want 0", p.CIDR, p.Used)
			}
		}
	}

	t.Run("not a netns", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "plain-file")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		rt := &libcni.RuntimeConf{ContainerID: testutils.RandName("ctr-"), IfName: "eth0", NetNS: f}
		_, err := c.AddNetworkList(ctx, list, rt)
		wantCode(t, err, types.ErrInvalidNetNS)
		nothingLeft(t)
	})

	t.Run("eth0 exists", func(t *testing.T) {
		pod := testutils.NewNetNS(t, "seta-cnit-p-")
		h := handleAt(t, pod.Path)
		defer h.Close()
		// A veth pair (this kernel may lack the dummy driver) within the pod.
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"}); err != nil {
			t.Fatalf("create an eth0 of the pod's own: %v", err)
		}
		_, err := c.AddNetworkList(ctx, list, rtConf(testutils.RandName("ctr-"), pod))
		wantCode(t, err, cni.ErrAlreadyAttached)
		nothingLeft(t)
		if eth := ifaceIn(t, pod.Path, "eth0"); !eth.ok || len(eth.addrs) != 0 {
			t.Errorf("the pod's own eth0 was touched: %+v", eth)
		}
	})
}

// CHECK notices a wrong netns and a damaged pod interface; DEL still
// cleans up a damaged endpoint.
func TestPrivilegedCNICheckDetectsDamage(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	ctx := context.Background()
	c := newCNI(t)
	list := conflist(t, "seta", "1.1.0", a.sock)
	pod := testutils.NewNetNS(t, "seta-cnit-p-")
	id := testutils.RandName("ctr-")
	pa := addPod(t, c, list, id, pod, defaultNet)

	other := testutils.NewNetNS(t, "seta-cnit-p-")
	err := c.CheckNetworkList(ctx, list, rtConf(id, other))
	wantCode(t, err, types.ErrInvalidNetNS)

	h := handleAt(t, pod.Path)
	defer h.Close()
	eth, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr(netip.PrefixFrom(pa.v4, 32).String())
	if err := h.AddrDel(eth, addr); err != nil {
		t.Fatalf("remove %s from eth0: %v", pa.v4, err)
	}
	err = c.CheckNetworkList(ctx, list, rtConf(id, pod))
	ce := wantCode(t, err, cni.ErrDatapath)
	if !strings.Contains(ce.Error(), pa.v4.String()) {
		t.Errorf("CHECK error %q does not name the missing address %s", ce.Error(), pa.v4)
	}

	if err := c.DelNetworkList(ctx, list, rtConf(id, pod)); err != nil {
		t.Fatalf("DEL of a damaged endpoint: %v", err)
	}
	checkGone(t, a, pod, pa.hostIf)
	a.wantEndpoints(t, 0)
}

// Kubernetes CNI_ARGS and args.cni.labels reach the endpoint.
func TestPrivilegedCNIK8sArgsAndLabels(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	c := newCNI(t)
	list, err := libcni.ConfListFromBytes(fmt.Appendf(nil, `{"cniVersion": "1.1.0", "name": "seta", "plugins": [
		{"type": "seta-cni", "socket": %q,
		 "args": {"cni": {"labels": [{"key": "app", "value": "web"}, {"key": "tier", "value": "front"}]}}}]}`, a.sock))
	if err != nil {
		t.Fatal(err)
	}
	pod := testutils.NewNetNS(t, "seta-cnit-p-")
	rt := rtConf(testutils.RandName("ctr-"), pod)
	rt.Args = [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "shop"}, {"K8S_POD_NAME", "web-0"},
		{"K8S_POD_INFRA_CONTAINER_ID", rt.ContainerID}, {"K8S_POD_UID", "1234"}}
	if _, err := c.AddNetworkList(context.Background(), list, rt); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	ep := a.wantEndpoints(t, 1)[0]
	if ep.PodName != "web-0" || ep.Namespace != "shop" || !slices.Equal(ep.Labels, []string{"app=web", "tier=front"}) {
		t.Errorf("endpoint pod %q namespace %q labels %v, want web-0, shop, [app=web tier=front]", ep.PodName, ep.Namespace, ep.Labels)
	}
}

// Parallel ADDs and DELs, as a runtime starting many pods issues them.
func TestPrivilegedCNIConcurrent(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	ctx := context.Background()
	c := newCNI(t)
	list := conflist(t, "seta", "1.1.0", a.sock)
	const n = 8
	pods := make([]*testutils.NetNS, n)
	ids := make([]string, n)
	for i := range n {
		pods[i], ids[i] = testutils.NewNetNS(t, "seta-cnit-p-"), testutils.RandName("ctr-")
	}
	run := func(op string, f func(i int) error) {
		t.Helper()
		errs := make(chan error, n)
		for i := range n {
			go func() {
				if err := f(i); err != nil {
					errs <- fmt.Errorf("%s pod %d: %w", op, i, err)
					return
				}
				errs <- nil
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	run("ADD", func(i int) error {
		_, err := c.AddNetworkList(ctx, list, rtConf(ids[i], pods[i]))
		return err
	})
	eps := a.wantEndpoints(t, n)
	seen := map[netip.Addr]bool{}
	for _, ep := range eps {
		for _, ad := range ep.Addrs() {
			if seen[ad] {
				t.Errorf("address %s handed out twice", ad)
			}
			seen[ad] = true
		}
	}
	for i := range n {
		if eth := ifaceIn(t, pods[i].Path, "eth0"); !eth.ok || len(eth.addrs) != 2 {
			t.Errorf("pod %d eth0: %+v", i, eth)
		}
	}
	run("CHECK", func(i int) error { return c.CheckNetworkList(ctx, list, rtConf(ids[i], pods[i])) })
	run("DEL", func(i int) error { return c.DelNetworkList(ctx, list, rtConf(ids[i], pods[i])) })
	a.wantEndpoints(t, 0)
	if l := a.lxcLinks(t); len(l) != 0 {
		t.Errorf("lxc devices left in the agent netns: %v", l)
	}
}

// The endpoint limit (--endpoint-map-size / address families) gives 103.
func TestPrivilegedCNIEndpointLimit(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR, "--endpoint-map-size", "16") // 8 dual-stack endpoints
	ctx := context.Background()
	c := newCNI(t)
	list := conflist(t, "seta", "1.1.0", a.sock)
	for range 8 {
		addPod(t, c, list, testutils.RandName("ctr-"), testutils.NewNetNS(t, "seta-cnit-p-"), defaultNet)
	}
	pod := testutils.NewNetNS(t, "seta-cnit-p-")
	_, err := c.AddNetworkList(ctx, list, rtConf(testutils.RandName("ctr-"), pod))
	wantCode(t, err, cni.ErrEndpointLimit)
	a.wantEndpoints(t, 8)
	if l := a.lxcLinks(t); len(l) != 8 {
		t.Errorf("agent netns has lxc devices %v, want 8", l)
	}
	checkGone(t, a, pod, "")
}

// DEL after the runtime already removed the pod's netns (the usual order
// when a pod is torn down) succeeds and frees everything.
func TestPrivilegedCNIDelAfterNetNSGone(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	ctx := context.Background()
	c := newCNI(t)
	list := conflist(t, "seta", "1.1.0", a.sock)
	pod := testutils.NewNetNS(t, "seta-cnit-p-")
	id := testutils.RandName("ctr-")
	addPod(t, c, list, id, pod, defaultNet)
	if err := netns.DeleteNamed(pod.Name); err != nil {
		t.Fatalf("delete pod netns: %v", err)
	}
	if err := c.DelNetworkList(ctx, list, rtConf(id, pod)); err != nil {
		t.Fatalf("DEL with the netns gone: %v", err)
	}
	a.wantEndpoints(t, 0)
	if l := a.lxcLinks(t); len(l) != 0 {
		t.Errorf("lxc devices left in the agent netns: %v", l)
	}
	st, err := a.client.Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, p := range st.IPAM {
		if p.Used != 0 {
			t.Errorf("IPAM pool %s has %d addresses in use after DEL, want 0", p.CIDR, p.Used)
		}
	}
	if err := c.DelNetworkList(ctx, list, rtConf(id, pod)); err != nil {
		t.Errorf("second DEL: %v", err)
	}
}

// With both families, running out of IPv6 addresses must not leak the IPv4
// address already taken for the failed ADD.
func TestPrivilegedCNIIPAMExhaustionDualStack(t *testing.T) {
	testutils.Privileged(t)
	a := startAgent(t, "10.97.0.0/24", "fd00:97::/125") // 6 IPv6 addresses
	w := wantNet{
		v4: netip.MustParsePrefix("10.97.0.0/24"), gw4: netip.MustParseAddr("10.97.0.1"),
		v6: netip.MustParsePrefix("fd00:97::/125"), gw6: netip.MustParseAddr("fd00:97::1"),
	}
	ctx := context.Background()
	c := newCNI(t)
	list := conflist(t, "seta", "1.1.0", a.sock)
	used := func() map[string]int {
		st, err := a.client.Status(ctx)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		m := map[string]int{}
		for _, p := range st.IPAM {
			m[p.CIDR] = p.Used
		}
		return m
	}
	for range 6 {
		addPod(t, c, list, testutils.RandName("ctr-"), testutils.NewNetNS(t, "seta-cnit-p-"), w)
	}
	pod := testutils.NewNetNS(t, "seta-cnit-p-")
	_, err := c.AddNetworkList(ctx, list, rtConf(testutils.RandName("ctr-"), pod))
	wantCode(t, err, cni.ErrIPAMExhausted)
	if u := used(); u["10.97.0.0/24"] != 6 || u["fd00:97::/125"] != 6 {
		t.Errorf("IPAM use after the failed ADD: %v, want 6 of each", u)
	}
	a.wantEndpoints(t, 6)
	checkGone(t, a, pod, "")
}

// The spec lets a runtime attach one container to a network more than once
// with different interface names. The second attachment must not break the
// first: both pass CHECK, and removing the second leaves the first working.
func TestPrivilegedCNISecondInterface(t *testing.T) {
	testutils.Privileged(t)
	// One Seta interface per pod: a second attachment (same container,
	// another interface name) would have to share the pod's default
	// routes, so the agent refuses it and leaves the first one intact.
	a := startAgent(t, defaultV4CIDR, defaultV6CIDR)
	ctx := context.Background()
	c := newCNI(t)
	list := conflist(t, "seta", "1.1.0", a.sock)
	pod := testutils.NewNetNS(t, "seta-cnit-p-")
	id := testutils.RandName("ctr-")
	pa := addPod(t, c, list, id, pod, defaultNet)
	rt2 := &libcni.RuntimeConf{ContainerID: id, NetNS: pod.Path, IfName: "net1"}
	_, err := c.AddNetworkList(ctx, list, rt2)
	wantCode(t, err, 102)
	a.wantEndpoints(t, 1)
	if ifaceIn(t, pod.Path, "net1").ok {
		t.Error("a refused second interface was created")
	}
	checkPod(t, a, pod, pa, defaultNet)
	if err := c.CheckNetworkList(ctx, list, rtConf(id, pod)); err != nil {
		t.Errorf("CHECK eth0 after the refused second ADD: %v", err)
	}
}
