package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func parse(t *testing.T, args ...string) (Agent, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f := NewFlags(fs)
	if err := fs.Parse(args); err != nil {
		return Agent{}, err
	}
	return f.Config()
}

func TestFlagsOverrideFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(file, []byte("ipv4PodCIDR: 10.1.0.0/24\nmtu: 9000\nnodeName: from-file\n"), 0o644)
	c, err := parse(t, "--config-file", file, "--node-name", "from-flag")
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "from-flag" || c.MTU != 9000 || c.IPv4PodCIDR != "10.1.0.0/24" || c.APISocket != DefaultAPISocket {
		t.Errorf("unexpected config %+v", c)
	}
}

func TestJSONFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "agent.json")
	os.WriteFile(file, []byte(`{"ipv6PodCIDR": "fd00:1::/64", "attachMode": "clsact"}`), 0o644)
	c, err := parse(t, "--config-file", file)
	if err != nil || c.AttachMode != "clsact" || c.IPv6PodCIDR != "fd00:1::/64" {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestInvalid(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "u.yaml")
	os.WriteFile(unknown, []byte("ipv4PodCIDR: 10.1.0.0/24\npodCidr: x\n"), 0o644)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no cidr", nil, "at least one pod CIDR"},
		{"host bits", []string{"--ipv4-pod-cidr", "10.1.0.5/24"}, "did you mean 10.1.0.0/24"},
		{"v6 in v4", []string{"--ipv4-pod-cidr", "fd00::/64"}, "ipv4PodCIDR"},
		{"garbage cidr", []string{"--ipv6-pod-cidr", "nope"}, "ipv6PodCIDR"},
		{"tiny", []string{"--ipv4-pod-cidr", "10.1.0.0/30"}, "too small"},
		{"mtu", []string{"--ipv4-pod-cidr", "10.1.0.0/24", "--mtu", "100"}, "mtu"},
		{"attach", []string{"--ipv4-pod-cidr", "10.1.0.0/24", "--attach-mode", "xdp"}, "attachMode"},
		{"log level", []string{"--ipv4-pod-cidr", "10.1.0.0/24", "--log-level", "loud"}, "logLevel"},
		{"relative", []string{"--ipv4-pod-cidr", "10.1.0.0/24", "--state-dir", "state"}, "stateDir"},
		{"unknown key", []string{"--config-file", unknown}, "podCidr"},
		{"node port range", []string{"--ipv4-pod-cidr", "10.1.0.0/24", "--node-port-range", "32767-30000"}, "nodePortRange"},
		{"missing file", []string{"--config-file", filepath.Join(dir, "nope.yaml")}, "read config file"},
		{"nat map", []string{"--ipv4-pod-cidr", "10.1.0.0/24", "--bpf-nat-global-max", "10"}, "bpfNATGlobalMax"},
		{"device name", []string{"--ipv4-pod-cidr", "10.1.0.0/24", "--devices", "eth0,a/b"}, "devices"},
		{"pprof address", []string{"--ipv4-pod-cidr", "10.1.0.0/24", "--pprof-address", "6060"}, "pprofAddress"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestNodePortFlags(t *testing.T) {
	c, err := parse(t, "--ipv4-pod-cidr", "10.1.0.0/24")
	if err != nil || !c.EnableNodePort || c.BPFNATGlobalMax != 262144 {
		t.Fatalf("defaults: NodePort %v, NAT map %d, %v", c.EnableNodePort, c.BPFNATGlobalMax, err)
	}
	c, err = parse(t, "--ipv4-pod-cidr", "10.1.0.0/24", "--enable-node-port=false", "--bpf-nat-global-max", "4096", "--devices", "eth1")
	if err != nil || c.EnableNodePort || c.BPFNATGlobalMax != 4096 || len(c.Devices) != 1 {
		t.Fatalf("flags: %+v, %v", c, err)
	}
}

func TestPprofAddress(t *testing.T) {
	c, err := parse(t, "--ipv4-pod-cidr", "10.1.0.0/24")
	if err != nil || c.PprofAddress != "" {
		t.Fatalf("default: pprof %q, %v; want off", c.PprofAddress, err)
	}
	c, err = parse(t, "--ipv4-pod-cidr", "10.1.0.0/24", "--pprof-address", "localhost:6060")
	if err != nil || c.PprofAddress != "localhost:6060" {
		t.Fatalf("flag: pprof %q, %v", c.PprofAddress, err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Defaults()
	c.MTU, c.AttachMode = 1, "bogus"
	err := c.Validate()
	for _, want := range []string{"mtu", "attachMode", "pod CIDR"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %q", err, want)
		}
	}
}

// The example in docs/ must stay a valid configuration.
func TestExampleConfig(t *testing.T) {
	c, err := parse(t, "--config-file", "../../docs/agent-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "node1" || c.IPv6PodCIDR != "fd00:5e7a:0:1::/64" {
		t.Errorf("unexpected %+v", c)
	}
}
