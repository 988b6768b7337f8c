package lab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Each lab node gets a cgroup v2 directory, <cgroup2>/seta-lab-LAB/NODE. Its
// agent attaches the socket-level load balancer there (--cgroup-root), and
// every pod process of the node starts inside it, so a node's socket LB
// applies to exactly that node's pods, as on a real machine where the agent
// attaches to the root of the node's cgroup tree.

// cgroup2Mount finds where the unified (v2) hierarchy is mounted: in
// /proc/self/mountinfo, the first mount of type cgroup2. On a pure v2
// system that is /sys/fs/cgroup; in a hybrid setup, /sys/fs/cgroup/unified.
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	return parseCgroup2Mount(f)
}

// parseCgroup2Mount reads mountinfo lines: "ID PARENT MAJ:MIN ROOT
// MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS".
func parseCgroup2Mount(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		// Only a mount of the hierarchy's root: a bind mount of a subtree
		// (a container's view) would put the lab's cgroups somewhere else.
		if len(pf) < 5 || len(qf) < 1 || qf[0] != "cgroup2" || pf[3] != "/" {
			continue
		}
		return unescapeMountinfo(pf[4]), nil
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cgroup2 filesystem is mounted")
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) that
// mountinfo uses in paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + (c - '0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// labCgroup is the lab's cgroup directory, the parent of its nodes'.
func labCgroup(mount, lab string) string { return filepath.Join(mount, "seta-lab-"+lab) }

// ensureCgroup creates the node's cgroup. Without a cgroup2 mount the lab
// still works, only without per-node socket load balancing; the node's
// Cgroup stays empty and the agent keeps its default --cgroup-root.
func ensureCgroup(st *State, n *Node, out io.Writer) error {
	if n.Cgroup != "" {
		if err := os.MkdirAll(n.Cgroup, 0o755); err != nil {
			return fmt.Errorf("cgroup of %s: %w", n.Name, err)
		}
		return nil
	}
	mount, err := cgroup2Mount()
	if err != nil {
		step(out, "%s: no cgroup v2 (%v): pods share the machine's cgroup, the socket load balancer does not apply to them", n.Name, err)
		return nil
	}
	st.Cgroup = labCgroup(mount, st.Name)
	dir := filepath.Join(st.Cgroup, n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup of %s: %w", n.Name, err)
	}
	n.Cgroup = dir
	return nil
}

// inCgroup makes cmd start inside the cgroup dir (none if dir is empty). It
// returns a function to call once cmd has started (or failed to).
//
// The child is cloned straight into the cgroup (clone3 CLONE_INTO_CGROUP), so
// it never runs a single instruction outside it: a pod's first connect()
// already goes through its node's socket load balancer.
func inCgroup(cmd *exec.Cmd, dir string) (done func(), err error) {
	if dir == "" {
		return func() {}, nil
	}
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = int(f.Fd())
	return func() { f.Close() }, nil
}

// removeCgroup removes a lab cgroup directory and its children, deepest
// first. Processes still inside (what a pod command left running after its
// own process group was stopped, or a `pod exec` still going) are all the
// lab's own: cgroup.kill ends them, so the directories can go.
func removeCgroup(dir string) error {
	if dir == "" {
		return nil
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeCgroup(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if populated(dir) {
		os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644)
		for i := 0; i < 250 && populated(dir); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
		errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

// populated reports whether a cgroup (or a descendant) holds processes.
func populated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "populated 1" {
			return true
		}
	}
	return false
}
