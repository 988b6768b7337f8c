package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
)

// Root is where labs keep their state, one directory per lab.
var Root = "/run/seta/lab"

// BPFRoot is the bpffs directory under which each lab node pins its maps.
var BPFRoot = "/sys/fs/bpf/seta-lab"

// DefaultName is the lab used when --name is not given.
const DefaultName = "default"

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// ValidName checks a lab, node, namespace or pod name.
func ValidName(kind, s string, maxLen int) error {
	if len(s) > maxLen || !nameRE.MatchString(s) {
		return fmt.Errorf("invalid %s name %q: use lower-case letters, digits and '-', at most %d characters, starting and ending with a letter or digit", kind, s, maxLen)
	}
	return nil
}

// Node is one lab node: a network namespace running seta-agent.
type Node struct {
	Name        string `json:"name"`
	NetNS       string `json:"netns"`
	UnderlayIP  string `json:"underlayIP"`
	UnderlayIP6 string `json:"underlayIP6"`
	PodCIDRv4   string `json:"podCIDRv4"`
	PodCIDRv6   string `json:"podCIDRv6"`
	Socket      string `json:"socket"`
	StateDir    string `json:"stateDir"`
	BPFRoot     string `json:"bpfRoot"`
	Log         string `json:"log"`
	CNIConfDir  string `json:"cniConfDir"`
	Agent       Proc   `json:"agent"`
	// Cgroup is the node's cgroup v2 directory: the agent's --cgroup-root,
	// and where the node's pod processes run. Empty without cgroup v2.
	Cgroup string `json:"cgroup,omitempty"`
	// DNS is the node's cluster DNS server (seta lab dns-server).
	DNS    Proc   `json:"dns"`
	DNSLog string `json:"dnsLog,omitempty"`
}

// HubbleSocket is the node agent's observer API socket, next to its API
// socket.
func (n *Node) HubbleSocket() string { return filepath.Join(filepath.Dir(n.Socket), "hubble.sock") }

// HubbleServer is the node's observer address as Hubble clients take it
// (HUBBLE_SERVER, --server).
func (n *Node) HubbleServer() string { return "unix://" + n.HubbleSocket() }

// Pod is one lab pod: a network namespace attached through seta-cni, with
// an optional command running inside it.
type Pod struct {
	Name        string   `json:"name"`
	Namespace   string   `json:"namespace"`
	Node        string   `json:"node"`
	NetNS       string   `json:"netns"`
	ContainerID string   `json:"containerID"`
	IPv4        string   `json:"ipv4,omitempty"`
	IPv6        string   `json:"ipv6,omitempty"`
	Labels      []string `json:"labels,omitempty"`
	Command     []string `json:"command,omitempty"`
	Log         string   `json:"log,omitempty"`
	Proc        Proc     `json:"proc"`
	// Terminating is set while the pod is being deleted: its service
	// backends are pushed as terminating, so connections drain, until it is
	// gone.
	Terminating bool `json:"terminating,omitempty"`
}

// Key is namespace/name.
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// State is a lab's persisted state.
type State struct {
	Name       string  `json:"name"`
	UnderlayNS string  `json:"underlayNetns"`
	Nodes      []*Node `json:"nodes"`
	Pods       []*Pod  `json:"pods"`
	// Binaries used: seta-agent and the directory holding seta-cni.
	AgentBin string `json:"agentBin"`
	CNIBin   string `json:"cniBinDir"`
	// SetaBin runs the lab's own helper processes (the DNS servers).
	SetaBin string `json:"setaBin,omitempty"`
	// Cgroup is the lab's cgroup v2 directory, parent of the nodes'.
	Cgroup string `json:"cgroup,omitempty"`
	// Services are the lab's services; their backends follow the pods.
	Services []*Service `json:"services,omitempty"`
}

// Node returns the named node.
func (s *State) Node(name string) *Node {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Pod returns the pod namespace/name.
func (s *State) Pod(namespace, name string) *Pod {
	for _, p := range s.Pods {
		if p.Namespace == namespace && p.Name == name {
			return p
		}
	}
	return nil
}

// RemovePod drops a pod from the state.
func (s *State) RemovePod(p *Pod) {
	s.Pods = slices.DeleteFunc(s.Pods, func(q *Pod) bool { return q == p })
}

// Service returns the service namespace/name.
func (s *State) Service(namespace, name string) *Service {
	for _, v := range s.Services {
		if v.Namespace == namespace && v.Name == name {
			return v
		}
	}
	return nil
}

// Dir is the lab's state directory.
func Dir(name string) string { return filepath.Join(Root, name) }

// StatePath is the file holding a lab's state.
func StatePath(name string) string { return statePath(name) }

func statePath(name string) string { return filepath.Join(Dir(name), "lab.json") }

// ErrNoLab means the lab does not exist.
var ErrNoLab = errors.New("lab not found")

// Load reads a lab's state.
func Load(name string) (*State, error) {
	b, err := os.ReadFile(statePath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q (start it with: seta lab up --name %s)", ErrNoLab, name, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("lab state %s is corrupt (remove the lab with: seta lab down --name %s): %w", statePath(name), name, err)
	}
	return &s, nil
}

// Save writes a lab's state atomically.
func (s *State) Save() error {
	if err := os.MkdirAll(Dir(s.Name), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(s.Name) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return os.Rename(tmp, statePath(s.Name))
}

// lock serialises lab commands on one lab with an flock on its directory.
// Only `up` creates the directory; every other command needs the lab to
// exist.
func lock(name string, create bool) (unlock func(), err error) {
	if create {
		if err := os.MkdirAll(Dir(name), 0o755); err != nil {
			return nil, fmt.Errorf("create lab dir: %w", err)
		}
	} else if _, err := os.Stat(Dir(name)); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q (start it with: seta lab up --name %s)", ErrNoLab, name, name)
	}
	f, err := os.OpenFile(filepath.Join(Dir(name), ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lab lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock lab %s: %w", name, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
