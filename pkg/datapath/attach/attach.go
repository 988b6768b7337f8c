// Package attach attaches the endpoint programs to a host-side veth, with
// tcx links pinned in bpffs (so they survive the agent) or, on kernels
// without tcx, with a clsact qdisc and direct-action filters (which live on
// the device). Both ways replace an existing attachment atomically, which is
// how a restarted agent swaps in new programs without dropping a packet.
package attach

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Mode is how programs are attached.
type Mode string

const (
	ModeTCX    Mode = "tcx"
	ModeClsact Mode = "clsact"
)

// ParseMode accepts "tcx" and "clsact".
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case ModeTCX, ModeClsact:
		return Mode(s), nil
	}
	return "", fmt.Errorf("unknown attach mode %q (want tcx or clsact)", s)
}

// Direction is the hook on the device.
type Direction string

const (
	Ingress Direction = "ingress"
	Egress  Direction = "egress"
)

// Attacher attaches programs in one mode.
type Attacher struct {
	mode   Mode
	pinDir string // tcx link pins: <pinDir>/<ifname>_<direction>
}

// New returns an Attacher; pinDir is used in tcx mode.
func New(mode Mode, pinDir string) (*Attacher, error) {
	if mode == ModeTCX {
		if err := os.MkdirAll(pinDir, 0o700); err != nil {
			return nil, fmt.Errorf("create link pin dir: %w", err)
		}
	}
	return &Attacher{mode: mode, pinDir: pinDir}, nil
}

// Mode returns the attach mode.
func (a *Attacher) Mode() Mode { return a.mode }

func (a *Attacher) pinPath(ifname string, dir Direction) string {
	return filepath.Join(a.pinDir, ifname+"_"+string(dir))
}

// Attach attaches prog at dir of the device, replacing what Seta attached
// there before.
func (a *Attacher) Attach(ifindex int, ifname string, dir Direction, prog *ebpf.Program) error {
	if a.mode == ModeTCX {
		return a.attachTCX(ifindex, ifname, dir, prog)
	}
	return attachClsact(ifindex, dir, prog)
}

func (a *Attacher) attachTCX(ifindex int, ifname string, dir Direction, prog *ebpf.Program) error {
	pin := a.pinPath(ifname, dir)
	// Reuse the pinned link only if it still points at this device: a
	// device deleted and re-created under the same name leaves a defunct
	// link behind.
	updated, err := updatePinned(pin, prog, func(info *link.Info) bool {
		return info.TCX() != nil && int(info.TCX().Ifindex) == ifindex
	})
	if err != nil || updated {
		return err
	}
	at := ebpf.AttachTCXIngress
	if dir == Egress {
		at = ebpf.AttachTCXEgress
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: at})
	if err != nil {
		return fmt.Errorf("attach tcx %s to %s: %w", dir, ifname, err)
	}
	defer l.Close()
	if err := l.Pin(pin); err != nil {
		return fmt.Errorf("pin tcx link %s: %w", pin, err)
	}
	return nil
}

// updatePinned swaps prog into the link pinned at pin when current says the
// link is still the right one (atomically: no packet or call sees no
// program). Otherwise it removes the pin, which detaches a stale link, and
// reports false: the caller attaches anew.
func updatePinned(pin string, prog *ebpf.Program, current func(*link.Info) bool) (bool, error) {
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			os.Remove(pin)
		}
		return false, nil
	}
	defer l.Close()
	if info, ierr := l.Info(); ierr == nil && current(info) {
		if err := l.Update(prog); err != nil {
			return false, fmt.Errorf("update link %s: %w", pin, err)
		}
		return true, nil
	}
	// Unpinning and closing the last reference detaches it.
	l.Unpin()
	return false, nil
}

func clsactParent(dir Direction) uint32 {
	if dir == Egress {
		return netlink.HANDLE_MIN_EGRESS
	}
	return netlink.HANDLE_MIN_INGRESS
}

func attachClsact(ifindex int, dir Direction, prog *ebpf.Program) error {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := netlink.QdiscReplace(qdisc); err != nil {
		return fmt.Errorf("add clsact qdisc to ifindex %d: %w", ifindex, err)
	}
	info, _ := prog.Info()
	name := "seta"
	if info != nil {
		name = info.Name
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex, Parent: clsactParent(dir), Handle: 1, Priority: 1,
			Protocol: unix.ETH_P_ALL,
		},
		Fd: prog.FD(), Name: name, DirectAction: true,
	}
	if err := netlink.FilterReplace(f); err != nil {
		return fmt.Errorf("attach clsact %s filter to ifindex %d: %w", dir, ifindex, err)
	}
	return nil
}

// Attached reports whether a Seta program is attached at dir of the device.
func (a *Attacher) Attached(ifindex int, ifname string, dir Direction) (bool, error) {
	if a.mode == ModeTCX {
		l, err := link.LoadPinnedLink(a.pinPath(ifname, dir), nil)
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("open tcx link pin: %w", err)
		}
		defer l.Close()
		info, err := l.Info()
		if err != nil {
			return false, fmt.Errorf("tcx link info: %w", err)
		}
		return info.TCX() != nil && int(info.TCX().Ifindex) == ifindex, nil
	}
	lk, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return false, err
	}
	filters, err := netlink.FilterList(lk, clsactParent(dir))
	if err != nil {
		return false, fmt.Errorf("list %s filters: %w", dir, err)
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.DirectAction {
			return true, nil
		}
	}
	return false, nil
}

// Release forgets the attachments of a device that is going away. The
// kernel detaches programs when the device is deleted; what remains are the
// tcx link pins, which this removes. Missing pins are not an error.
func (a *Attacher) Release(ifname string) error {
	if a.mode != ModeTCX {
		return nil
	}
	var errs []error
	for _, d := range []Direction{Ingress, Egress} {
		if err := os.Remove(a.pinPath(ifname, d)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Detach removes what Seta attached to a device that stays: in tcx mode
// its link pins (the links go with them), in clsact mode its filters, i.e.
// direct-action BPF filters whose program is one of Seta's (named cil_*):
// a filter someone else put on the device is left alone. A device that is
// gone, or has nothing of Seta's attached, is not an error.
func (a *Attacher) Detach(ifname string) error {
	if a.mode == ModeTCX {
		return a.Release(ifname)
	}
	lk, err := netlink.LinkByName(ifname)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	var errs []error
	for _, d := range []Direction{Ingress, Egress} {
		filters, err := netlink.FilterList(lk, clsactParent(d))
		if err != nil {
			// No clsact qdisc: nothing attached.
			continue
		}
		for _, f := range filters {
			bf, ok := f.(*netlink.BpfFilter)
			if !ok || !bf.DirectAction || !strings.HasPrefix(bf.Name, "cil_") {
				continue
			}
			if err := netlink.FilterDel(bf); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("delete %s filter of %s: %w", d, ifname, err))
			}
		}
	}
	return errors.Join(errs...)
}

// PinnedDevices lists device names that have tcx link pins, for garbage
// collection after a restart.
func (a *Attacher) PinnedDevices() ([]string, error) {
	if a.mode != ModeTCX {
		return nil, nil
	}
	ents, err := os.ReadDir(a.pinDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range ents {
		n := e.Name()
		for _, d := range []Direction{Ingress, Egress} {
			suf := "_" + string(d)
			if len(n) > len(suf) && n[len(n)-len(suf):] == suf {
				dev := n[:len(n)-len(suf)]
				if !seen[dev] {
					seen[dev] = true
					out = append(out, dev)
				}
			}
		}
	}
	return out, nil
}
