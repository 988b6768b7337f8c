package nsutil_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/seta-net/seta/pkg/nsutil"
	"github.com/seta-net/seta/pkg/testutils"
)

// TestPrivilegedStartNamed: a process started with StartNamed sees the
// namespace's /etc/netns files over /etc, runs in the namespace, is the
// command itself (no intermediate process), and the machine's /etc is left
// as it was.
func TestPrivilegedStartNamed(t *testing.T) {
	testutils.Privileged(t)
	ns := testutils.NewNetNS(t, "nsutil-")
	hostResolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Skipf("no /etc/resolv.conf to bind over: %v", err)
	}
	dir := nsutil.EtcDir(ns.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A file without a namesake in /etc is skipped, not an error.
	if err := os.WriteFile(filepath.Join(dir, "seta-no-such-file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	cmd := exec.Command("sh", "-c", `cat /etc/resolv.conf; readlink /proc/self/ns/net; echo "pid $$"`)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := nsutil.StartNamed(ns.Name, cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var want string
	if err := ns.Do(t, func() error {
		var err error
		want, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, s := range []string{"nameserver 192.0.2.53\n", want + "\n", "pid " + strconv.Itoa(cmd.Process.Pid) + "\n"} {
		if !strings.Contains(got, s) {
			t.Errorf("output lacks %q:\n%s", s, got)
		}
	}
	if b, _ := os.ReadFile("/etc/resolv.conf"); !bytes.Equal(b, hostResolv) {
		t.Errorf("the machine's /etc/resolv.conf changed:\n%s", b)
	}

	// Without /etc/netns files it is a plain start in the namespace.
	os.RemoveAll(dir)
	out.Reset()
	cmd = exec.Command("cat", "/etc/resolv.conf")
	cmd.Stdout = &out
	if err := nsutil.StartNamed(ns.Name, cmd); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if !bytes.Equal(out.Bytes(), hostResolv) {
		t.Errorf("without /etc/netns: got\n%s", out.String())
	}
}
