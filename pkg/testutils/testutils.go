// Package testutils has helpers for privileged tests: the gate that keeps
// them out of unprivileged runs, and network namespaces that are removed when
// the test ends, pass or fail.
package testutils

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/seta-net/seta/pkg/nsutil"
)

// PrivilegedEnv must be set to 1 to run privileged tests.
const PrivilegedEnv = "SETA_PRIVILEGED_TESTS"

// Privileged skips the test unless privileged tests were asked for; when
// they were and the process is not root, it fails rather than skip, so a
// misconfigured CI run cannot pass silently.
func Privileged(tb testing.TB) {
	tb.Helper()
	if os.Getenv(PrivilegedEnv) != "1" {
		tb.Skipf("privileged test: set %s=1 and run as root", PrivilegedEnv)
	}
	if os.Geteuid() != 0 {
		tb.Fatalf("%s=1 but not running as root", PrivilegedEnv)
	}
}

// RandName returns prefix plus 8 random hex digits.
func RandName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// NetNS is a named network namespace owned by a test.
type NetNS struct {
	Name string
	Path string
}

// NewNetNS creates a named namespace (visible in `ip netns`) and removes it
// on cleanup. The calling thread is left in its original namespace.
func NewNetNS(tb testing.TB, prefix string) *NetNS {
	tb.Helper()
	name := RandName(prefix)
	if err := nsutil.Create(name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nsutil.Delete(name) })
	return &NetNS{Name: name, Path: nsutil.Path(name)}
}

// Do runs fn on a thread inside the namespace.
func (n *NetNS) Do(tb testing.TB, fn func() error) error {
	tb.Helper()
	return nsutil.Do(n.Path, fn)
}

// Run runs a command inside the namespace and returns its combined output.
func (n *NetNS) Run(tb testing.TB, name string, args ...string) (string, error) {
	tb.Helper()
	var out []byte
	err := n.Do(tb, func() error {
		var err error
		out, err = exec.Command(name, args...).CombinedOutput()
		return err
	})
	return string(out), err
}

// Start starts a command inside the namespace; it is killed on cleanup.
func (n *NetNS) Start(tb testing.TB, name string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(name, args...)
	if err := n.Do(tb, cmd.Start); err != nil {
		tb.Fatalf("start %s in %s: %v", name, n.Name, err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// BuildBinaries builds the named main packages (e.g. "./cmd/seta-agent")
// into a temporary directory once per test binary and returns it.
func BuildBinaries(tb testing.TB, pkgs ...string) string {
	tb.Helper()
	dir := tb.TempDir()
	root := ModuleRoot(tb)
	args := append([]string{"build", "-o", dir + "/"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build %v: %v\n%s", pkgs, err, out)
	}
	return dir
}

// ModuleRoot finds the directory holding go.mod.
func ModuleRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found")
		}
		dir = parent
	}
}
