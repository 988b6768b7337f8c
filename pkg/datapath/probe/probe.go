// Package probe asks the running kernel which eBPF features it has. Each
// probe has three outcomes: supported, missing (ebpf.ErrNotSupported), or
// inconclusive (any other error), which is reported as such and never
// silently taken for either.
package probe

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Status of one feature.
type Status string

const (
	Supported    Status = "supported"
	Missing      Status = "missing"
	Inconclusive Status = "inconclusive"
)

// Feature is the outcome of one probe.
type Feature struct {
	Name     string `json:"name"`
	Status   Status `json:"status"`
	Required bool   `json:"required"`
	// MinKernel is the first Linux version that has the feature.
	MinKernel string `json:"minKernel"`
	Detail    string `json:"detail,omitempty"`
}

// Report is the outcome of every probe.
type Report struct {
	Kernel   string    `json:"kernel"`
	Features []Feature `json:"features"`
}

// Has reports whether name was probed as supported.
func (r Report) Has(name string) bool {
	for _, f := range r.Features {
		if f.Name == name {
			return f.Status == Supported
		}
	}
	return false
}

// Err returns an error naming every required feature that is missing or
// could not be probed, or nil.
func (r Report) Err() error {
	var msgs []string
	for _, f := range r.Features {
		if !f.Required || f.Status == Supported {
			continue
		}
		m := fmt.Sprintf("%s is %s (needs Linux %s)", f.Name, f.Status, f.MinKernel)
		if f.Detail != "" {
			m += ": " + f.Detail
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("kernel %s lacks what the datapath needs: %s", r.Kernel, strings.Join(msgs, "; "))
}

// Feature names.
const (
	FeatSchedCLS     = "bpf program type sched_cls"
	FeatHashMap      = "bpf map type hash"
	FeatPerCPUHash   = "bpf map type percpu_hash"
	FeatLPMTrie      = "bpf map type lpm_trie"
	FeatRingBuf      = "bpf map type ringbuf"
	FeatRedirectPeer = "bpf helper bpf_redirect_peer"
	FeatKernelBTF    = "kernel BTF"
	FeatTCX          = "tcx attachment"
	FeatHashOfMaps   = "bpf map type hash_of_maps"
	// FeatSockAddrHooks: the cgroup sock_addr hooks socket load balancing
	// attaches to, up to recvmsg and getpeername (the newest), and the
	// cgroup bpf links that keep them attached while the agent is away.
	FeatSockAddrHooks = "cgroup sock_addr hooks (connect, sendmsg, recvmsg, getpeername)"
	FeatNetnsCookie   = "bpf helper bpf_get_netns_cookie (cgroup sock_addr)"
)

// SocketLBFeatures are what socket load balancing needs; the agent only
// requires them when it is on.
var SocketLBFeatures = []string{FeatSockAddrHooks, FeatNetnsCookie}

// ErrFor returns an error naming each of the features, required or not,
// that is missing or could not be probed, with what needs them; nil when
// all are supported.
func (r Report) ErrFor(what string, names ...string) error {
	var msgs []string
	for _, name := range names {
		found := false
		for _, f := range r.Features {
			if f.Name != name {
				continue
			}
			found = true
			if f.Status == Supported {
				break
			}
			m := fmt.Sprintf("%s is %s (needs Linux %s)", f.Name, f.Status, f.MinKernel)
			if f.Detail != "" {
				m += ": " + f.Detail
			}
			msgs = append(msgs, m)
		}
		if !found {
			msgs = append(msgs, name+" was not probed")
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: kernel %s lacks %s", what, r.Kernel, strings.Join(msgs, "; "))
}

// Run probes the kernel. It needs CAP_BPF/CAP_NET_ADMIN; the tcx probe
// briefly attaches a pass-through program to the loopback device of the
// caller's network namespace.
func Run() Report {
	var r Report
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		r.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	add := func(name, minKernel string, required bool, err error) {
		f := Feature{Name: name, MinKernel: minKernel, Required: required, Status: Supported}
		switch {
		case err == nil:
		case errors.Is(err, ebpf.ErrNotSupported):
			f.Status, f.Detail = Missing, err.Error()
		default:
			f.Status, f.Detail = Inconclusive, err.Error()
		}
		r.Features = append(r.Features, f)
	}
	add(FeatSchedCLS, "4.1", true, features.HaveProgramType(ebpf.SchedCLS))
	add(FeatHashMap, "3.19", true, features.HaveMapType(ebpf.Hash))
	add(FeatPerCPUHash, "4.6", true, features.HaveMapType(ebpf.PerCPUHash))
	add(FeatLPMTrie, "4.11", false, features.HaveMapType(ebpf.LPMTrie))
	add(FeatRingBuf, "5.8", false, features.HaveMapType(ebpf.RingBuf))
	add(FeatRedirectPeer, "5.10", true, features.HaveProgramHelper(ebpf.SchedCLS, asm.FnRedirectPeer))
	_, btfErr := btf.LoadKernelSpec()
	add(FeatKernelBTF, "5.4", false, btfErr)
	add(FeatTCX, "6.6", false, probeTCX())
	// The load-balancing maps are loaded whether socket LB is on or not.
	add(FeatHashOfMaps, "4.12", true, features.HaveMapType(ebpf.HashOfMaps))
	add(FeatSockAddrHooks, "5.8", false, probeSockAddrHook())
	add(FeatNetnsCookie, "5.7", false, features.HaveProgramHelper(ebpf.CGroupSockAddr, asm.FnGetNetnsCookie))
	return r
}

// probeSockAddrHook loads a cgroup sock_addr program for getpeername6, the
// newest of the hooks socket LB uses (Linux 5.8, like cgroup bpf links'
// update). The kernel checks the expected attach type at load, so EINVAL
// means the hook is unknown. Nothing is attached.
func probeSockAddrHook() error {
	if err := features.HaveProgramType(ebpf.CGroupSockAddr); err != nil {
		return err
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:       ebpf.CGroupSockAddr,
		AttachType: ebpf.AttachCgroupInet6GetPeername,
		License:    "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 1), // proceed
			asm.Return(),
		},
	})
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%w: getpeername hook: %v", ebpf.ErrNotSupported, err)
	}
	if err != nil {
		return fmt.Errorf("load probe program: %w", err)
	}
	return prog.Close()
}

// probeTCX attaches a program that returns TCX_NEXT to lo and detaches it at
// once. It is the only reliable test: the attach type exists in headers long
// before a kernel implements it.
func probeTCX() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.SchedCLS,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, -1), // TCX_NEXT: hand over to the next program.
			asm.Return(),
		},
	})
	if err != nil {
		return fmt.Errorf("load probe program: %w", err)
	}
	defer prog.Close()
	l, err := link.AttachTCX(link.TCXOptions{Interface: lo.Attrs().Index, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return err
	}
	return l.Close()
}
