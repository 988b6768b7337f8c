// Package floor attaches the smallest program that can forward between
// two veth endpoints: on the host-side veth's ingress, hand every packet to
// the other endpoint's device with bpf_redirect_peer, and nothing else: no
// lookups, no rewrite, no policy, no counters.
//
// It exists for benchmarks. Any datapath built on veth pairs (Seta's, and
// Cilium's without netkit) pays for one more device receive than two
// namespaces joined directly by one veth pair: the packet is received on
// the host-side veth before a program can redirect it. Measured through
// this program, that step alone gives the floor below which no such
// datapath can go, so a benchmark can tell how much of a datapath's cost is
// its own work and how much is the topology.
package floor

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/seta-net/seta/pkg/nsutil"
)

// Redirect is one attached program.
type Redirect struct {
	prog *ebpf.Program
	link link.Link
}

// program returns "return bpf_redirect_peer(target, 0);". It is assembled
// here rather than compiled from C: four instructions do not justify a
// generated object, and the target is an immediate, so the program does
// nothing at run time but the helper call.
func program(target int) (*ebpf.Program, error) {
	spec := &ebpf.ProgramSpec{
		Name:    "floor_redirect",
		Type:    ebpf.SchedCLS,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, int32(target)),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirectPeer.Call(),
			asm.Return(),
		},
	}
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		return nil, fmt.Errorf("load floor program: %w", err)
	}
	return p, nil
}

// Attach attaches, on the ingress of the device ifindex in the network
// namespace netnsPath, the program that redirects every packet to the peer
// of the device target (a host-side veth in the same namespace). The
// attachment is not pinned: it lasts until Close or the end of the process.
func Attach(netnsPath string, ifindex, target int) (*Redirect, error) {
	p, err := program(target)
	if err != nil {
		return nil, err
	}
	var l link.Link
	err = nsutil.Do(netnsPath, func() error {
		var err error
		l, err = link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: p, Attach: ebpf.AttachTCXIngress})
		return err
	})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("attach floor program to ifindex %d: %w", ifindex, err)
	}
	return &Redirect{prog: p, link: l}, nil
}

// Close detaches the program.
func (r *Redirect) Close() error {
	err := r.link.Close()
	if cerr := r.prog.Close(); err == nil {
		err = cerr
	}
	return err
}
