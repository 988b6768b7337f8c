package attach

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// IsCgroup2 reports whether path is a directory of a cgroup v2 hierarchy
// (its root, wherever mounted, or any cgroup below it).
func IsCgroup2(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC, nil
}

// EnsureCgroup2 makes path a cgroup v2 directory: a path that already is one
// (a cgroup2 mount, or a cgroup below one, such as a lab node's own
// /sys/fs/cgroup/unified/seta-lab-x-node1) is used as it is, a missing path
// below a cgroup2 mount is created (a new cgroup); otherwise the cgroup2
// hierarchy is mounted there, as Cilium does for its --cgroup-root. On a host with a cgroup2 mount elsewhere (hybrid setups),
// that mount shows the same hierarchy: programs attached at its root see
// every process.
func EnsureCgroup2(path string) error {
	ok, err := IsCgroup2(path)
	if err != nil || ok {
		return err
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("create cgroup root %s: %w", path, err)
	}
	// A directory made below a cgroup2 mount is a new cgroup: use it.
	// Mounting over it would put the whole hierarchy in its place.
	if ok, err := IsCgroup2(path); err != nil || ok {
		return err
	}
	if err := unix.Mount("none", path, "cgroup2", 0, ""); err != nil {
		return fmt.Errorf("mount cgroup2 at %s (is cgroup v2 available? pass --cgroup-root with an existing cgroup2 directory): %w", path, err)
	}
	return nil
}

// cgroupID is the kernel's ID of the cgroup at path: the inode of its
// directory on cgroup2, which is what a cgroup link reports.
func cgroupID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat cgroup %s: %w", path, err)
	}
	return st.Ino, nil
}

// CgroupAttacher attaches programs to one cgroup with bpf links pinned under
// pinDir (one pin per program name), so they stay attached while the agent
// is away and a restarted agent swaps its new programs in with a link
// update: atomic, every socket call sees either the old program or the new.
type CgroupAttacher struct {
	path   string
	id     uint64
	pinDir string
}

// NewCgroupAttacher returns an attacher for the cgroup v2 directory path
// (see EnsureCgroup2), pinning links under pinDir.
func NewCgroupAttacher(path, pinDir string) (*CgroupAttacher, error) {
	ok, err := IsCgroup2(path)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s is not a cgroup v2 directory", path)
	}
	id, err := cgroupID(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return nil, fmt.Errorf("create link pin dir: %w", err)
	}
	return &CgroupAttacher{path: path, id: id, pinDir: pinDir}, nil
}

// Path is the cgroup's directory.
func (c *CgroupAttacher) Path() string { return c.path }

// Attach attaches prog at the hook at of the cgroup under the pin name,
// replacing the program a pinned link of that name holds, if that link is
// on the same cgroup and hook. A pinned link elsewhere (the cgroup root
// changed, or the cgroup was removed) is detached first.
func (c *CgroupAttacher) Attach(name string, at ebpf.AttachType, prog *ebpf.Program) error {
	pin := filepath.Join(c.pinDir, name)
	updated, err := updatePinned(pin, prog, func(info *link.Info) bool {
		cg := info.Cgroup()
		return cg != nil && cg.CgroupId == c.id && ebpf.AttachType(cg.AttachType) == at
	})
	if err != nil || updated {
		return err
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: c.path, Attach: at, Program: prog})
	if err != nil {
		return fmt.Errorf("attach %s to cgroup %s: %w", name, c.path, err)
	}
	defer l.Close()
	if err := l.Pin(pin); err != nil {
		// A link that cannot be pinned (legacy attachment on kernels
		// without cgroup bpf links) would be detached when the agent
		// exits: not what the agent promises.
		return fmt.Errorf("pin cgroup link %s: %w", pin, err)
	}
	return nil
}

// Attached reports whether the pinned link name holds a program on this
// cgroup.
func (c *CgroupAttacher) Attached(name string) (bool, error) {
	l, err := link.LoadPinnedLink(filepath.Join(c.pinDir, name), nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open cgroup link pin: %w", err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return false, fmt.Errorf("cgroup link info: %w", err)
	}
	return info.Cgroup() != nil && info.Cgroup().CgroupId == c.id, nil
}

// DetachCgroupLinks detaches every program pinned under pinDir except the
// names in keep, and removes their pins: the programs a previous agent
// attached that this one does not (socket LB turned off, a program
// renamed). A missing pinDir is not an error.
func DetachCgroupLinks(pinDir string, keep map[string]bool) error {
	ents, err := os.ReadDir(pinDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if keep[e.Name()] {
			continue
		}
		pin := filepath.Join(pinDir, e.Name())
		l, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			// Not a link (or unreadable): the pin itself still goes.
			errs = append(errs, removeMissingOK(pin))
			continue
		}
		errs = append(errs, l.Unpin(), l.Close())
	}
	return errors.Join(errs...)
}

func removeMissingOK(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
