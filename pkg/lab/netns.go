package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
)

// netnsDir is where named network namespaces live (as with `ip netns`).
const netnsDir = "/run/netns"

func netnsPath(name string) string { return filepath.Join(netnsDir, name) }

// createNetNS creates a named network namespace without leaving the calling
// goroutine's thread in it. An existing one is kept.
func createNetNS(name string) error {
	if _, err := os.Stat(netnsPath(name)); err == nil {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	ns.Close()
	if err := netns.Set(orig); err != nil {
		// The thread is in the wrong namespace and must not be reused:
		// returning with the thread still locked makes Go discard it.
		runtime.LockOSThread()
		return fmt.Errorf("return to original netns: %w", err)
	}
	return nil
}

// deleteNetNS removes a named network namespace; a missing one is fine.
func deleteNetNS(name string) error {
	if _, err := os.Stat(netnsPath(name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := netns.DeleteNamed(name); err != nil {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// inNetNS runs fn on a thread switched into the named namespace.
func inNetNS(name string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(netnsPath(name))
	if err != nil {
		return fmt.Errorf("open netns %s: %w", name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("enter netns %s: %w", name, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		runtime.LockOSThread() // discard this thread, see createNetNS
		return errors.Join(ferr, fmt.Errorf("return to original netns: %w", err))
	}
	return ferr
}

// startInNetNS starts cmd inside the named namespace. A child forked from a
// thread inherits that thread's network namespace, so the fork happens on a
// locked thread switched into the target.
func startInNetNS(name string, cmd *exec.Cmd) error {
	return inNetNS(name, cmd.Start)
}

// CreateNetNS creates a named network namespace (for tools such as the
// benchmarks that attach namespaces themselves).
func CreateNetNS(name string) error { return createNetNS(name) }

// DeleteNetNS removes a named network namespace; a missing one is fine.
func DeleteNetNS(name string) error { return deleteNetNS(name) }

// NetNSPath is the path of a named network namespace.
func NetNSPath(name string) string { return netnsPath(name) }
