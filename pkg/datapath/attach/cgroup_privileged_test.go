package attach

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/seta-net/seta/pkg/testutils"
)

// cgroup2Root finds the cgroup v2 mount, or skips.
func cgroup2Root(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if f := strings.Fields(pre); ok && strings.HasPrefix(post, "cgroup2 ") && len(f) >= 5 && f[3] == "/" {
			return f[4]
		}
	}
	t.Skip("no cgroup v2 mount")
	return ""
}

func testCgroup(t *testing.T) string {
	t.Helper()
	p := filepath.Join(cgroup2Root(t), testutils.RandName("seta-attach-test-"))
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(p) })
	return p
}

func testBPFDir(t *testing.T) string {
	t.Helper()
	p := filepath.Join("/sys/fs/bpf", testutils.RandName("seta-attach-test-"))
	t.Cleanup(func() { os.RemoveAll(p) })
	return p
}

func connect4Prog(t *testing.T) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.CGroupSockAddr, AttachType: ebpf.AttachCGroupInet4Connect, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func attachedCount(t *testing.T, cg string) int {
	t.Helper()
	f, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachCGroupInet4Connect})
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Programs)
}

func isMountPoint(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[4] == path {
			return true
		}
	}
	return false
}

func TestPrivilegedEnsureCgroup2(t *testing.T) {
	testutils.Privileged(t)
	// A cgroup below the mount is used as it is.
	sub := testCgroup(t)
	if err := EnsureCgroup2(sub); err != nil {
		t.Fatal(err)
	}
	// A missing path below the mount becomes a new cgroup, not a mount.
	fresh := filepath.Join(sub, "fresh")
	if err := EnsureCgroup2(fresh); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(fresh) })
	if _, err := os.Stat(filepath.Join(fresh, "cgroup.procs")); err != nil {
		t.Errorf("no cgroup created at %s: %v", fresh, err)
	}
	if isMountPoint(t, fresh) {
		t.Errorf("%s was mounted over", fresh)
	}
	// A plain directory gets the hierarchy mounted.
	dir := filepath.Join(t.TempDir(), "cgroupv2")
	if ok, err := IsCgroup2(dir); ok || err != nil {
		t.Fatalf("IsCgroup2 of a missing path: %v %v", ok, err)
	}
	if err := EnsureCgroup2(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if ok, err := IsCgroup2(dir); !ok || err != nil {
		t.Fatalf("after EnsureCgroup2: cgroup2 %v, %v", ok, err)
	}
	// Again: already mounted, nothing to do.
	if err := EnsureCgroup2(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.Base(sub))); err != nil {
		t.Errorf("the mount does not show the hierarchy: %v", err)
	}
}

// A pinned link is updated in place on the same cgroup, and moved when the
// cgroup root changes; DetachCgroupLinks removes what is not kept.
func TestPrivilegedCgroupAttacher(t *testing.T) {
	testutils.Privileged(t)
	a, b := testCgroup(t), testCgroup(t)
	pins := testBPFDir(t)
	prog1, prog2 := connect4Prog(t), connect4Prog(t)

	ca, err := NewCgroupAttacher(a, pins)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Attach("connect4", ebpf.AttachCGroupInet4Connect, prog1); err != nil {
		t.Fatal(err)
	}
	if err := ca.Attach("connect4", ebpf.AttachCGroupInet4Connect, prog2); err != nil {
		t.Fatal(err)
	}
	if n := attachedCount(t, a); n != 1 {
		t.Errorf("after update: %d programs on %s, want 1", n, a)
	}
	if ok, err := ca.Attached("connect4"); !ok || err != nil {
		t.Errorf("Attached = %v, %v", ok, err)
	}

	cb, err := NewCgroupAttacher(b, pins)
	if err != nil {
		t.Fatal(err)
	}
	if err := cb.Attach("connect4", ebpf.AttachCGroupInet4Connect, prog1); err != nil {
		t.Fatal(err)
	}
	if na, nb := attachedCount(t, a), attachedCount(t, b); na != 0 || nb != 1 {
		t.Errorf("after moving: %d programs on the old cgroup, %d on the new, want 0 and 1", na, nb)
	}
	if ok, _ := ca.Attached("connect4"); ok {
		t.Error("the old cgroup's attacher still reports the link")
	}

	if err := DetachCgroupLinks(pins, map[string]bool{"connect4": true}); err != nil {
		t.Fatal(err)
	}
	if attachedCount(t, b) != 1 {
		t.Error("a kept link was detached")
	}
	if err := DetachCgroupLinks(pins, nil); err != nil {
		t.Fatal(err)
	}
	if n := attachedCount(t, b); n != 0 {
		t.Errorf("after detaching: %d programs", n)
	}
	if _, err := os.Stat(filepath.Join(pins, "connect4")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin left: %v", err)
	}
	if err := DetachCgroupLinks(filepath.Join(pins, "missing"), nil); err != nil {
		t.Errorf("missing pin dir: %v", err)
	}
	if _, err := NewCgroupAttacher(t.TempDir(), pins); err == nil {
		t.Error("a directory that is no cgroup was accepted")
	}
}
