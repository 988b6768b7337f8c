// Package nsutil creates named network namespaces and runs code inside them
// without leaving the caller's thread behind in the wrong namespace. The lab,
// the benchmarks and the privileged tests share it.
package nsutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
)

// Dir is where named network namespaces live (as with `ip netns`).
const Dir = "/run/netns"

// Path is the path of a named network namespace.
func Path(name string) string { return filepath.Join(Dir, name) }

// Create creates a named network namespace; an existing one is kept.
func Create(name string) error {
	if _, err := os.Stat(Path(name)); err == nil {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name) // also switches this thread into it
	if err != nil {
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	ns.Close()
	return restore(orig)
}

// Delete removes a named network namespace; a missing one is fine.
func Delete(name string) error {
	if _, err := os.Stat(Path(name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := netns.DeleteNamed(name); err != nil {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// Do runs fn on an OS thread switched into the namespace at path.
func Do(path string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("enter netns %s: %w", path, err)
	}
	return errors.Join(fn(), restore(orig))
}

// Start starts cmd inside the namespace at path. A child forked from a
// thread inherits that thread's network namespace, so the fork happens on a
// locked thread switched into the target.
func Start(path string, cmd *exec.Cmd) error {
	return Do(path, cmd.Start)
}

// restore switches the locked thread back. If that fails the thread is in
// the wrong namespace and must never run other goroutines: locking it once
// more makes the deferred unlock leave it locked, and Go discards a thread
// whose goroutine exits locked.
func restore(orig netns.NsHandle) error {
	if err := netns.Set(orig); err != nil {
		runtime.LockOSThread()
		return fmt.Errorf("return to original netns: %w", err)
	}
	return nil
}
