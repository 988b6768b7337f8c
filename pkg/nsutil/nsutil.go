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
	"golang.org/x/sys/unix"
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

// Output runs cmd inside the namespace at path to completion and returns
// its standard output and error together (exec.Cmd.CombinedOutput).
func Output(path string, cmd *exec.Cmd) (string, error) {
	var out []byte
	err := Do(path, func() error {
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	return string(out), err
}

// EtcDir is where files that override /etc for the processes of a named
// network namespace live (iproute2's convention: `ip netns exec NAME` binds
// /etc/netns/NAME/resolv.conf over /etc/resolv.conf, and so does
// StartNamed).
func EtcDir(name string) string { return filepath.Join("/etc/netns", name) }

// StartNamed starts cmd inside the named network namespace as `ip netns
// exec` would: when EtcDir(name) holds files, the process gets a private
// mount namespace in which each of them is bind-mounted over its namesake in
// /etc, so for example a pod has its own resolv.conf. cmd.Process is the
// command itself (no intermediate process), so its PID can be tracked.
func StartNamed(name string, cmd *exec.Cmd) error {
	binds, err := etcBinds(name)
	if err != nil {
		return err
	}
	if len(binds) == 0 {
		return Start(Path(name), cmd)
	}
	// The mount namespace is unshared by one OS thread, which cmd is then
	// forked from. That thread must never run anything else: its goroutine
	// exits still locked, which makes the Go runtime end the thread.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- startIsolated(name, binds, cmd)
	}()
	return <-errc
}

// etcBinds lists the regular files in EtcDir(name) whose namesakes exist in
// /etc, as [source, target] pairs.
func etcBinds(name string) ([][2]string, error) {
	ents, err := os.ReadDir(EtcDir(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var binds [][2]string
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		dst := filepath.Join("/etc", e.Name())
		// A bind mount needs an existing target; iproute2 skips the others too.
		if _, err := os.Stat(dst); err != nil {
			continue
		}
		binds = append(binds, [2]string{filepath.Join(EtcDir(name), e.Name()), dst})
	}
	return binds, nil
}

// startIsolated runs on a locked thread that is discarded afterwards.
func startIsolated(name string, binds [][2]string, cmd *exec.Cmd) error {
	// CLONE_NEWNS also gives the thread its own root/cwd (CLONE_FS), which
	// the kernel allows for one thread of a multi-threaded process.
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	// Mounts made here must not propagate back to the machine; mounts the
	// machine makes later still show up here.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	for _, b := range binds {
		if err := unix.Mount(b[0], b[1], "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", b[0], b[1], err)
		}
	}
	target, err := netns.GetFromPath(Path(name))
	if err != nil {
		return fmt.Errorf("open netns %s: %w", Path(name), err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("enter netns %s: %w", Path(name), err)
	}
	return cmd.Start()
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
