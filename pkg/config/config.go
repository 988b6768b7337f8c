// Package config holds the agent's configuration: defaults, the config file
// (YAML or JSON, unknown keys rejected), command-line flags that override
// the file, and validation that names the offending field.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	hubblemetrics "github.com/seta-net/seta/pkg/hubble/metrics"
	"github.com/seta-net/seta/pkg/ipam"
	"github.com/seta-net/seta/pkg/labels"
	"github.com/seta-net/seta/pkg/service"
)

// Agent is the agent's configuration. The JSON names are the config file's
// keys and match the flag names in camel case.
type Agent struct {
	StateDir        string `json:"stateDir"`
	APISocket       string `json:"apiSocket"`
	NodeName        string `json:"nodeName"`
	IPv4PodCIDR     string `json:"ipv4PodCIDR"`
	IPv6PodCIDR     string `json:"ipv6PodCIDR"`
	BPFRoot         string `json:"bpfRoot"`
	CgroupRoot      string `json:"cgroupRoot"`
	LogLevel        string `json:"logLevel"`
	AttachMode      string `json:"attachMode"`
	MTU             int    `json:"mtu"`
	EndpointMapSize int    `json:"endpointMapSize"`

	// PolicyEnforcement is default, always or never.
	PolicyEnforcement string `json:"policyEnforcement"`
	// PolicyAuditMode reports policy drops on every endpoint without
	// dropping.
	PolicyAuditMode bool `json:"policyAuditMode"`
	// AllowLocalhost admits ingress from the node itself whatever the
	// policy (kubelet probes), unless a deny rule matches.
	AllowLocalhost bool `json:"allowLocalhost"`
	// PolicyMapSize is the capacity of the policy map over all endpoints.
	PolicyMapSize int `json:"policyMapSize"`
	// PolicyDir is a directory of policy files the agent keeps applied.
	PolicyDir string `json:"policyDir,omitempty"`
	// LabelExclusions are regular expressions; labels whose key matches
	// one do not take part in identities.
	LabelExclusions []string `json:"labelExclusions,omitempty"`
	// IdentityGracePeriod is how long an unused identity is kept.
	IdentityGracePeriod string `json:"identityGracePeriod"`
	// EnableHostFirewall enforces the node's own policy (nodeSelector
	// rules) on its devices and towards its pods.
	EnableHostFirewall bool `json:"enableHostFirewall"`
	// NodeLabels are the node's labels, k=v, for nodeSelectors.
	NodeLabels []string `json:"nodeLabels,omitempty"`
	// Devices get the device programs (NodePort, host firewall); empty:
	// every device with a global address except Seta's own.
	Devices []string `json:"devices,omitempty"`
	// PrometheusServeAddr serves /metrics (host:port); empty: off.
	PrometheusServeAddr string `json:"prometheusServeAddr,omitempty"`
	// PprofAddress serves Go's runtime profiles (net/http/pprof) at
	// host:port, for finding where the agent spends its CPU; empty: off.
	PprofAddress string `json:"pprofAddress,omitempty"`

	// EnableHubble runs the flow decoder and the observer API.
	EnableHubble bool `json:"enableHubble"`
	// HubbleSocketPath is the observer API's unix socket.
	HubbleSocketPath string `json:"hubbleSocketPath"`
	// HubbleListenAddress also serves the observer API on TCP (host:port,
	// plaintext); empty: off.
	HubbleListenAddress string `json:"hubbleListenAddress,omitempty"`
	// HubbleEventBufferCapacity is the number of flows kept.
	HubbleEventBufferCapacity int `json:"hubbleEventBufferCapacity"`
	// HubbleMetrics are the Hubble flow metric families to export on the
	// Prometheus endpoint (e.g. drop, tcp, flow, port-distribution, icmp,
	// policy); empty: none.
	HubbleMetrics []string `json:"hubbleMetrics,omitempty"`
	// MonitorAggregation is how much the datapath aggregates trace events:
	// none, lowest, low, medium or maximum.
	MonitorAggregation string `json:"monitorAggregation"`
	// MonitorAggregationInterval is how often an active connection is
	// reported again at medium and maximum.
	MonitorAggregationInterval string `json:"monitorAggregationInterval"`
	// MonitorAggregationFlags are the TCP flags whose first appearance in a
	// direction is reported at medium and maximum; empty: the level's
	// default (syn, fin, rst, as Cilium's).
	MonitorAggregationFlags []string `json:"monitorAggregationFlags,omitempty"`
	// BPFEventsTraceEnabled lets the datapath report forwarded packets
	// (trace events); drops and policy verdicts are reported whenever
	// Hubble (the event ring's reader) is on.
	BPFEventsTraceEnabled bool `json:"bpfEventsTraceEnabled"`

	// EnableSocketLB translates service addresses at the socket level
	// (connect, sendmsg, recvmsg, getpeername) for every process below
	// CgroupRoot.
	EnableSocketLB bool `json:"enableSocketLB"`
	// BPFLBMapMax is the capacity of the service and backend maps (a
	// service takes one entry plus one per backend), Cilium's
	// --bpf-lb-map-max.
	BPFLBMapMax int `json:"bpfLBMapMax"`
	// NodePortRange is the port range of NodePort services, MIN-MAX.
	NodePortRange string `json:"nodePortRange"`
	// EnableNodePort translates NodePort and ExternalIP/LoadBalancer
	// traffic that arrives on Devices from outside the node.
	EnableNodePort bool `json:"enableNodePort"`
	// BPFNATGlobalMax is the capacity of the service NAT map of the tc
	// path (two entries per translated connection), Cilium's
	// --bpf-nat-global-max.
	BPFNATGlobalMax int `json:"bpfNATGlobalMax"`
}

// Default paths.
const (
	DefaultStateDir   = "/var/lib/seta"
	DefaultAPISocket  = "/var/run/seta/agent.sock"
	DefaultBPFRoot    = "/sys/fs/bpf/seta"
	DefaultCgroupRoot = "/run/seta/cgroupv2"
	DefaultHubbleSock = "/var/run/seta/hubble.sock"
)

// MaxHubbleEventBufferCapacity bounds the flow ring (each slot is a flow
// record of about 300 bytes, allocated when the agent starts: 75 MiB at
// the bound).
const MaxHubbleEventBufferCapacity = 1 << 18

// Defaults returns the built-in configuration.
func Defaults() Agent {
	host, _ := os.Hostname()
	return Agent{
		StateDir: DefaultStateDir, APISocket: DefaultAPISocket, NodeName: host,
		BPFRoot: DefaultBPFRoot, CgroupRoot: DefaultCgroupRoot, LogLevel: "info",
		AttachMode: "auto", MTU: 1500, EndpointMapSize: 65535,
		PolicyEnforcement: "default", AllowLocalhost: true, PolicyMapSize: 65536,
		LabelExclusions: labels.DefaultExclusions, IdentityGracePeriod: "15m",
		EnableHubble: true, HubbleSocketPath: DefaultHubbleSock, HubbleEventBufferCapacity: 4095,
		MonitorAggregation: "medium", MonitorAggregationInterval: "5s", BPFEventsTraceEnabled: true,
		EnableSocketLB: true, BPFLBMapMax: 65536, EnableNodePort: true, BPFNATGlobalMax: 262144,
		NodePortRange: service.DefaultNodePortRange.String(),
	}
}

// LoadFile merges the file at path over c. Unknown keys are errors.
func (c *Agent) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// Flags binds the configuration to flags. Call Apply after parsing to copy
// the flags that were set on the command line over the file's values.
type Flags struct {
	fs  *pflag.FlagSet
	val Agent
	// ConfigFile is the --config-file flag.
	ConfigFile string
}

// NewFlags registers the agent's flags on fs with the defaults.
func NewFlags(fs *pflag.FlagSet) *Flags {
	f := &Flags{fs: fs}
	d := Defaults()
	fs.StringVar(&f.ConfigFile, "config-file", "", "YAML or JSON config file; flags given on the command line override it")
	fs.StringVar(&f.val.StateDir, "state-dir", d.StateDir, "directory for the agent's persistent state (endpoints)")
	fs.StringVar(&f.val.APISocket, "api-socket", d.APISocket, "unix socket of the agent's REST API")
	fs.StringVar(&f.val.NodeName, "node-name", d.NodeName, "name of this node")
	fs.StringVar(&f.val.IPv4PodCIDR, "ipv4-pod-cidr", "", "IPv4 CIDR pod addresses are taken from, e.g. 10.200.1.0/24")
	fs.StringVar(&f.val.IPv6PodCIDR, "ipv6-pod-cidr", "", "IPv6 CIDR pod addresses are taken from, e.g. fd00:5e7a:0:1::/64")
	fs.StringVar(&f.val.BPFRoot, "bpf-root", d.BPFRoot, "directory on a bpf filesystem where maps and links are pinned")
	fs.StringVar(&f.val.CgroupRoot, "cgroup-root", d.CgroupRoot, "cgroup v2 root for socket-level programs")
	fs.StringVar(&f.val.LogLevel, "log-level", d.LogLevel, "debug, info, warn or error")
	fs.StringVar(&f.val.AttachMode, "attach-mode", d.AttachMode, "how programs attach to devices: auto (tcx if the kernel has it), tcx or clsact")
	fs.IntVar(&f.val.MTU, "mtu", d.MTU, "MTU of pod interfaces")
	fs.IntVar(&f.val.EndpointMapSize, "endpoint-map-size", d.EndpointMapSize, "capacity of the endpoint BPF maps (pod addresses)")
	fs.StringVar(&f.val.PolicyEnforcement, "policy-enforcement", d.PolicyEnforcement, "default (enforce once a policy selects an endpoint), always or never")
	fs.BoolVar(&f.val.PolicyAuditMode, "policy-audit-mode", d.PolicyAuditMode, "report policy drops on every endpoint, but drop nothing")
	fs.BoolVar(&f.val.AllowLocalhost, "allow-localhost", d.AllowLocalhost, "always admit ingress from the node itself (kubelet probes) unless a deny rule matches")
	fs.IntVar(&f.val.PolicyMapSize, "policy-map-size", d.PolicyMapSize, "capacity of the policy BPF map (entries over all endpoints)")
	fs.StringVar(&f.val.PolicyDir, "policy-dir", d.PolicyDir, "directory of policy files (YAML/JSON) to keep applied; changes are picked up")
	fs.StringSliceVar(&f.val.LabelExclusions, "label-exclusions", d.LabelExclusions, "regular expressions on label keys that do not take part in identities")
	fs.StringVar(&f.val.IdentityGracePeriod, "identity-grace-period", d.IdentityGracePeriod, "how long an unused identity is kept before it is freed")
	fs.BoolVar(&f.val.EnableHostFirewall, "enable-host-firewall", d.EnableHostFirewall, "enforce the node's own policy (nodeSelector rules) on its devices and towards its pods")
	fs.StringSliceVar(&f.val.NodeLabels, "node-labels", d.NodeLabels, "the node's labels, k=v,..., which nodeSelectors match")
	fs.StringSliceVar(&f.val.Devices, "devices", d.Devices, "devices for NodePort and the host firewall (default: every device with a global address)")
	fs.StringVar(&f.val.PrometheusServeAddr, "prometheus-serve-addr", d.PrometheusServeAddr, "serve Prometheus metrics at this host:port (e.g. :9962); empty: off")
	fs.StringVar(&f.val.PprofAddress, "pprof-address", d.PprofAddress, "serve Go's runtime profiles (/debug/pprof/) at this host:port, e.g. localhost:6060 (unauthenticated: keep it on loopback); empty: off")
	fs.BoolVar(&f.val.EnableHubble, "enable-hubble", d.EnableHubble, "decode datapath events into flows and serve the Hubble observer API")
	fs.StringVar(&f.val.HubbleSocketPath, "hubble-socket-path", d.HubbleSocketPath, "unix socket of the Hubble observer API")
	fs.StringVar(&f.val.HubbleListenAddress, "hubble-listen-address", d.HubbleListenAddress, "also serve the Hubble observer API on this host:port (plaintext); empty: off")
	fs.IntVar(&f.val.HubbleEventBufferCapacity, "hubble-event-buffer-capacity", d.HubbleEventBufferCapacity, "number of flows kept for the observer API")
	fs.StringSliceVar(&f.val.HubbleMetrics, "hubble-metrics", d.HubbleMetrics, "Hubble flow metrics to export with the Prometheus metrics, e.g. drop,tcp,flow,port-distribution,icmp,policy")
	fs.StringVar(&f.val.MonitorAggregation, "monitor-aggregation", d.MonitorAggregation, "how much the datapath aggregates trace events: none, lowest, low, medium or maximum")
	fs.StringVar(&f.val.MonitorAggregationInterval, "monitor-aggregation-interval", d.MonitorAggregationInterval, "at medium and maximum, report an active connection again after this long")
	fs.StringSliceVar(&f.val.MonitorAggregationFlags, "monitor-aggregation-flags", d.MonitorAggregationFlags, "at medium and maximum, TCP flags (syn,ack,fin,rst,psh,urg,ece,cwr) reported when first seen in a direction; empty: syn,fin,rst")
	fs.BoolVar(&f.val.BPFEventsTraceEnabled, "bpf-events-trace-enabled", d.BPFEventsTraceEnabled, "report forwarded packets (trace events) from the datapath; drops and policy verdicts are reported whenever Hubble is on")
	fs.BoolVar(&f.val.EnableSocketLB, "enable-socket-lb", d.EnableSocketLB, "translate service addresses at the socket level for every process below --cgroup-root")
	fs.IntVar(&f.val.BPFLBMapMax, "bpf-lb-map-max", d.BPFLBMapMax, "capacity of the service and backend BPF maps (a service takes one entry plus one per backend)")
	fs.StringVar(&f.val.NodePortRange, "node-port-range", d.NodePortRange, "port range of NodePort services, MIN-MAX")
	fs.BoolVar(&f.val.EnableNodePort, "enable-node-port", d.EnableNodePort, "translate NodePort and ExternalIP/LoadBalancer traffic arriving on --devices from outside the node")
	fs.IntVar(&f.val.BPFNATGlobalMax, "bpf-nat-global-max", d.BPFNATGlobalMax, "capacity of the service NAT BPF map of the tc path (two entries per translated connection)")
	return f
}

// Config returns the defaults, overlaid with the config file (if any), then
// with every flag set on the command line, and validated.
func (f *Flags) Config() (Agent, error) {
	c := Defaults()
	if f.ConfigFile != "" {
		if err := c.LoadFile(f.ConfigFile); err != nil {
			return Agent{}, err
		}
	}
	set := map[string]func(){
		"state-dir":                    func() { c.StateDir = f.val.StateDir },
		"api-socket":                   func() { c.APISocket = f.val.APISocket },
		"node-name":                    func() { c.NodeName = f.val.NodeName },
		"ipv4-pod-cidr":                func() { c.IPv4PodCIDR = f.val.IPv4PodCIDR },
		"ipv6-pod-cidr":                func() { c.IPv6PodCIDR = f.val.IPv6PodCIDR },
		"bpf-root":                     func() { c.BPFRoot = f.val.BPFRoot },
		"cgroup-root":                  func() { c.CgroupRoot = f.val.CgroupRoot },
		"log-level":                    func() { c.LogLevel = f.val.LogLevel },
		"attach-mode":                  func() { c.AttachMode = f.val.AttachMode },
		"mtu":                          func() { c.MTU = f.val.MTU },
		"endpoint-map-size":            func() { c.EndpointMapSize = f.val.EndpointMapSize },
		"policy-enforcement":           func() { c.PolicyEnforcement = f.val.PolicyEnforcement },
		"policy-audit-mode":            func() { c.PolicyAuditMode = f.val.PolicyAuditMode },
		"allow-localhost":              func() { c.AllowLocalhost = f.val.AllowLocalhost },
		"policy-map-size":              func() { c.PolicyMapSize = f.val.PolicyMapSize },
		"policy-dir":                   func() { c.PolicyDir = f.val.PolicyDir },
		"label-exclusions":             func() { c.LabelExclusions = f.val.LabelExclusions },
		"identity-grace-period":        func() { c.IdentityGracePeriod = f.val.IdentityGracePeriod },
		"enable-host-firewall":         func() { c.EnableHostFirewall = f.val.EnableHostFirewall },
		"node-labels":                  func() { c.NodeLabels = f.val.NodeLabels },
		"devices":                      func() { c.Devices = f.val.Devices },
		"prometheus-serve-addr":        func() { c.PrometheusServeAddr = f.val.PrometheusServeAddr },
		"pprof-address":                func() { c.PprofAddress = f.val.PprofAddress },
		"enable-hubble":                func() { c.EnableHubble = f.val.EnableHubble },
		"hubble-socket-path":           func() { c.HubbleSocketPath = f.val.HubbleSocketPath },
		"hubble-listen-address":        func() { c.HubbleListenAddress = f.val.HubbleListenAddress },
		"hubble-event-buffer-capacity": func() { c.HubbleEventBufferCapacity = f.val.HubbleEventBufferCapacity },
		"hubble-metrics":               func() { c.HubbleMetrics = f.val.HubbleMetrics },
		"monitor-aggregation":          func() { c.MonitorAggregation = f.val.MonitorAggregation },
		"monitor-aggregation-interval": func() { c.MonitorAggregationInterval = f.val.MonitorAggregationInterval },
		"monitor-aggregation-flags":    func() { c.MonitorAggregationFlags = f.val.MonitorAggregationFlags },
		"bpf-events-trace-enabled":     func() { c.BPFEventsTraceEnabled = f.val.BPFEventsTraceEnabled },
		"node-port-range":              func() { c.NodePortRange = f.val.NodePortRange },
		"enable-socket-lb":             func() { c.EnableSocketLB = f.val.EnableSocketLB },
		"bpf-lb-map-max":               func() { c.BPFLBMapMax = f.val.BPFLBMapMax },
		"enable-node-port":             func() { c.EnableNodePort = f.val.EnableNodePort },
		"bpf-nat-global-max":           func() { c.BPFNATGlobalMax = f.val.BPFNATGlobalMax },
	}
	f.fs.Visit(func(fl *pflag.Flag) {
		if apply, ok := set[fl.Name]; ok {
			apply()
		}
	})
	return c, c.Validate()
}

// Validate checks every field and reports all problems at once.
func (c Agent) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	for _, f := range []struct{ field, path string }{
		{"stateDir", c.StateDir}, {"apiSocket", c.APISocket}, {"bpfRoot", c.BPFRoot}, {"cgroupRoot", c.CgroupRoot},
	} {
		if f.path == "" || !filepath.IsAbs(f.path) {
			bad(f.field, "must be an absolute path, got %q", f.path)
		}
	}
	if len(c.APISocket) > 107 {
		bad("apiSocket", "path is %d bytes, longer than a unix socket path may be (107)", len(c.APISocket))
	}
	if c.NodeName == "" {
		bad("nodeName", "must not be empty")
	}
	if c.IPv4PodCIDR == "" && c.IPv6PodCIDR == "" {
		bad("ipv4PodCIDR/ipv6PodCIDR", "at least one pod CIDR is required")
	}
	if c.IPv4PodCIDR != "" {
		if _, err := ipam.ParsePodCIDR(c.IPv4PodCIDR, 4); err != nil {
			bad("ipv4PodCIDR", "%v", err)
		}
	}
	if c.IPv6PodCIDR != "" {
		if _, err := ipam.ParsePodCIDR(c.IPv6PodCIDR, 6); err != nil {
			bad("ipv6PodCIDR", "%v", err)
		}
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		bad("logLevel", "%v", err)
	}
	switch c.AttachMode {
	case "auto", "tcx", "clsact":
	default:
		bad("attachMode", "must be auto, tcx or clsact, got %q", c.AttachMode)
	}
	if c.MTU < 1280 || c.MTU > 65535 {
		bad("mtu", "must be between 1280 and 65535, got %d", c.MTU)
	}
	if c.EndpointMapSize < 16 || c.EndpointMapSize > 65535 {
		bad("endpointMapSize", "must be between 16 and 65535, got %d", c.EndpointMapSize)
	}
	switch c.PolicyEnforcement {
	case "default", "always", "never":
	default:
		bad("policyEnforcement", "must be default, always or never, got %q", c.PolicyEnforcement)
	}
	if c.PolicyMapSize < 64 || c.PolicyMapSize > 1<<24 {
		bad("policyMapSize", "must be between 64 and 16777216, got %d", c.PolicyMapSize)
	}
	if c.BPFLBMapMax < 64 || c.BPFLBMapMax > 1<<24 {
		bad("bpfLBMapMax", "must be between 64 and 16777216, got %d", c.BPFLBMapMax)
	}
	if c.BPFNATGlobalMax < 1024 || c.BPFNATGlobalMax > 1<<24 {
		bad("bpfNATGlobalMax", "must be between 1024 and 16777216, got %d", c.BPFNATGlobalMax)
	}
	for _, d := range c.Devices {
		if d == "" || len(d) > 15 || strings.ContainsAny(d, "/ \t") {
			bad("devices", "%q is not a network device name", d)
		}
	}
	if c.PolicyDir != "" && !filepath.IsAbs(c.PolicyDir) {
		bad("policyDir", "must be an absolute path, got %q", c.PolicyDir)
	}
	if _, err := labels.NewFilter(c.LabelExclusions); err != nil {
		bad("labelExclusions", "%v", err)
	}
	if c.PrometheusServeAddr != "" {
		if _, _, err := net.SplitHostPort(c.PrometheusServeAddr); err != nil {
			bad("prometheusServeAddr", "want host:port such as :9962, got %q", c.PrometheusServeAddr)
		}
	}
	if c.PprofAddress != "" {
		if _, _, err := net.SplitHostPort(c.PprofAddress); err != nil {
			bad("pprofAddress", "want host:port such as localhost:6060, got %q", c.PprofAddress)
		}
	}
	if _, err := labels.ParseAll(c.NodeLabels, labels.SourceK8s); err != nil {
		bad("nodeLabels", "%v", err)
	}
	if c.EnableHubble {
		if c.HubbleSocketPath == "" || !filepath.IsAbs(c.HubbleSocketPath) {
			bad("hubbleSocketPath", "must be an absolute path, got %q", c.HubbleSocketPath)
		} else if len(c.HubbleSocketPath) > 107 {
			bad("hubbleSocketPath", "path is %d bytes, longer than a unix socket path may be (107)", len(c.HubbleSocketPath))
		}
		if c.HubbleEventBufferCapacity < 1 || c.HubbleEventBufferCapacity > MaxHubbleEventBufferCapacity {
			bad("hubbleEventBufferCapacity", "must be between 1 and %d, got %d", MaxHubbleEventBufferCapacity, c.HubbleEventBufferCapacity)
		}
	}
	if c.HubbleListenAddress != "" {
		if _, _, err := net.SplitHostPort(c.HubbleListenAddress); err != nil {
			bad("hubbleListenAddress", "want host:port such as localhost:4244, got %q", c.HubbleListenAddress)
		}
	}
	if err := hubblemetrics.Validate(c.HubbleMetrics); err != nil {
		bad("hubbleMetrics", "%v", err)
	}
	if d, err := time.ParseDuration(c.MonitorAggregationInterval); err != nil || d < time.Second || d > 12*time.Hour {
		bad("monitorAggregationInterval", "must be a duration from 1s to 12h, got %q", c.MonitorAggregationInterval)
	}
	if d, err := time.ParseDuration(c.IdentityGracePeriod); err != nil || d < 0 {
		bad("identityGracePeriod", "must be a duration such as 15m, got %q", c.IdentityGracePeriod)
	}
	if _, err := service.ParsePortRange(c.NodePortRange); err != nil {
		bad("nodePortRange", "%v", err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid agent configuration: %w", errors.Join(errs...))
	}
	return nil
}

// ParseLogLevel maps a level name to slog.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
}
