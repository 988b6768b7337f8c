package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seta-net/seta/pkg/testutils"
)

// agentIn runs seta-agent inside ns with args and returns its output; it
// must exit by itself within 20 s.
func agentIn(t *testing.T, ns *testutils.NetNS, args ...string) (string, error) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "seta-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bpf := filepath.Join("/sys/fs/bpf", testutils.RandName("seta-e2e-"))
	t.Cleanup(func() { os.RemoveAll(bpf) })
	base := []string{"--state-dir", dir + "/state", "--api-socket", dir + "/a.sock", "--bpf-root", bpf, "--node-name", "n1",
		"--enable-socket-lb=false", "--hubble-socket-path", dir + "/hubble.sock"}
	cmd := exec.Command(filepath.Join(bins(t), "seta-agent"), append(base, args...)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := ns.Do(t, cmd.Start); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("agent did not exit:\n%s", out.String())
		return "", nil
	}
}

func TestPrivilegedAgentRefusesBadConfig(t *testing.T) {
	testutils.Privileged(t)
	ns := testutils.NewNetNS(t, "seta-e2e-agent-")
	// The node already uses 10.50.0.0/24 on one of its links.
	if out, err := ns.Run(t, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := ns.Run(t, "ip", "addr", "add", "10.50.0.1/24", "dev", "up0"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"overlap", []string{"--ipv4-pod-cidr", "10.50.0.0/16"}, "overlaps 10.50.0.0/24"},
		{"host bits", []string{"--ipv4-pod-cidr", "10.60.0.1/24"}, "did you mean 10.60.0.0/24"},
		{"no cidr", nil, "at least one pod CIDR"},
		{"bad attach mode", []string{"--ipv4-pod-cidr", "10.60.0.0/24", "--attach-mode", "nope"}, "attachMode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := agentIn(t, ns, c.args...)
			if err == nil || !strings.Contains(out, c.want) {
				t.Errorf("agent %v: err=%v, want failure mentioning %q; output:\n%s", c.args, err, c.want, out)
			}
		})
	}
	// Nothing was set up by the refused starts.
	if out, _ := ns.Run(t, "ip", "link", "show", "seta_host"); !strings.Contains(out, "does not exist") {
		t.Errorf("a refused agent created seta_host:\n%s", out)
	}
}
