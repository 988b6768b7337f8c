package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/seta-net/seta/pkg/lab"
	"github.com/seta-net/seta/pkg/nsutil"
)

// leftover is something an earlier run left behind, and the command that
// removes it.
type leftover struct {
	what, remove string
	pid          int // a process in one of the harness's namespaces
}

// ownNamespaces are the namespaces of (a), (b) and (f), which the harness names
// itself (the labs name theirs).
func ownNamespaces() []string {
	c, s := vethNS()
	n, bc, bs := bridgeNS()
	fn, fc, fs := floorNS()
	return []string{c, s, n, bc, bs, fn, fc, fs}
}

// leftovers lists what an earlier run left behind.
func leftovers() []leftover {
	var found []leftover
	var nsInodes = map[uint64]string{}
	for _, ns := range ownNamespaces() {
		if st, err := os.Stat(nsutil.Path(ns)); err == nil {
			found = append(found, leftover{what: "network namespace " + ns, remove: "ip netns del " + ns})
			if s, ok := st.Sys().(*syscall.Stat_t); ok {
				nsInodes[s.Ino] = ns
			}
		}
	}
	for _, id := range setaIDs {
		name := labName(id)
		if _, err := os.Stat(lab.Dir(name)); err == nil || labLeftover(name) {
			found = append(found, leftover{what: "lab " + name, remove: abs("seta") + " lab down --name " + name})
		}
	}
	if _, err := os.Stat(stateDir); err == nil {
		found = append(found, leftover{what: "state directory " + stateDir, remove: "rm -r " + stateDir})
	}
	return append(found, strays(nsInodes)...)
}

// labLeftover tells whether anything of a lab whose state directory is gone
// is still there: its namespaces, /etc/netns directories, bpf pins or
// cgroup.
func labLeftover(name string) bool {
	prefix := "seta-" + name + "-"
	for _, dir := range []string{nsutil.Dir, filepath.Dir(nsutil.EtcDir("x"))} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix) {
				return true
			}
		}
	}
	if _, err := os.Stat(filepath.Join(lab.BPFRoot, name)); err == nil {
		return true
	}
	if m := cgroup2Mount(); m != "" {
		if _, err := os.Stat(filepath.Join(m, "seta-lab-"+name)); err == nil {
			return true
		}
	}
	return false
}

// cgroup2Mount is where cgroup v2 is mounted, "" if nowhere.
func cgroup2Mount() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		before, after, ok := strings.Cut(sc.Text(), " - ")
		if f := strings.Fields(before); ok && strings.HasPrefix(after, "cgroup2 ") && len(f) >= 5 {
			return f[4]
		}
	}
	return ""
}

func hasCgroup2() bool { return cgroup2Mount() != "" }

// strays are processes running in the harness's own namespaces (servers of
// a run that was killed before its cleanup).
func strays(nsInodes map[uint64]string) []leftover {
	if len(nsInodes) == 0 {
		return nil
	}
	var found []leftover
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) != nil {
			continue
		}
		ns, ok := nsInodes[st.Ino]
		if !ok {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		found = append(found, leftover{pid: pid, remove: "kill " + e.Name(),
			what: fmt.Sprintf("process %d (%s) in %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "), ns)})
	}
	return found
}

// killStrays ends the processes leftovers found in the harness's own
// namespaces (--clean only).
func killStrays() {
	for _, l := range leftovers() {
		if l.pid > 0 {
			syscall.Kill(l.pid, syscall.SIGKILL)
		}
	}
}

func leftoverMessage(found []leftover) string {
	var b strings.Builder
	self, err := os.Executable()
	if err != nil {
		self = "datapath"
	}
	b.WriteString("datapath: leftovers of an earlier run; remove them with `" + self + " --clean`, or one by one:\n")
	for _, l := range found {
		fmt.Fprintf(&b, "  %s: %s\n", l.what, l.remove)
	}
	return strings.TrimRight(b.String(), "\n")
}
