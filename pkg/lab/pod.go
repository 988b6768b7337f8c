package lab

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/seta-net/seta/pkg/nsutil"
)

// NetworkName is the CNI network name lab pods attach to.
const NetworkName = "seta"

func cniConfPath(n *Node) string { return filepath.Join(n.CNIConfDir, "10-seta.conflist") }

// cniConfig is the node's network configuration list, as a runtime would
// find it in /etc/cni/net.d.
func cniConfig(n *Node) map[string]any {
	return map[string]any{
		"cniVersion": "1.1.0",
		"name":       NetworkName,
		"plugins": []any{map[string]any{
			"type":   "seta-cni",
			"socket": n.Socket,
		}},
	}
}

func writeCNIConfig(n *Node) error {
	if err := os.MkdirAll(n.CNIConfDir, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(cniConfig(n), "", "  ")
	return os.WriteFile(cniConfPath(n), b, 0o644)
}

// CNIConfList is the node's config with the pod's labels added as
// args.cni.labels, which is how the CNI conventions pass labels.
func CNIConfList(n *Node, labels []string) (*libcni.NetworkConfigList, error) {
	conf := cniConfig(n)
	if len(labels) > 0 {
		var ls []map[string]string
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			ls = append(ls, map[string]string{"key": k, "value": v})
		}
		conf["plugins"].([]any)[0].(map[string]any)["args"] = map[string]any{"cni": map[string]any{"labels": ls}}
	}
	b, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(b)
}

// CNI returns a libcni client that runs the lab's seta-cni binary.
func CNI(st *State) *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir([]string{st.CNIBin}, filepath.Join(Dir(st.Name), "cni-cache"), nil)
}

func runtimeConf(p *Pod) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: p.ContainerID,
		NetNS:       nsutil.Path(p.NetNS),
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ContainerID},
		},
	}
}

func podNetNSName(lab, namespace, name string) string {
	h := sha256.Sum256([]byte(namespace + "/" + name))
	return "seta-" + lab + "-pod-" + hex.EncodeToString(h[:])[:10]
}

// RunOptions configure RunPod.
type RunOptions struct {
	Lab       string
	Name      string
	Namespace string
	Node      string
	Labels    []string
	Command   []string
	// Out receives notes (a service update that did not reach every
	// agent); nil discards them.
	Out io.Writer
}

// ParseLabels parses "k=v,k2=v2".
func ParseLabels(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k+v, " \t\n") {
			return nil, fmt.Errorf("invalid label %q: want key=value", kv)
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}

// RunPod creates a pod namespace, attaches it through seta-cni and starts
// its command (if any) inside it, in the background with its output logged.
func RunPod(ctx context.Context, o RunOptions) (*Pod, error) {
	if err := checkRoot(); err != nil {
		return nil, err
	}
	if err := ValidName("pod", o.Name, 63); err != nil {
		return nil, err
	}
	if err := ValidName("namespace", o.Namespace, 63); err != nil {
		return nil, err
	}
	unlock, err := lock(o.Lab, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := Load(o.Lab)
	if err != nil {
		return nil, err
	}
	if st.Pod(o.Namespace, o.Name) != nil {
		return nil, fmt.Errorf("pod %s/%s already exists in lab %q", o.Namespace, o.Name, o.Lab)
	}
	if o.Node == "" {
		o.Node = st.Nodes[0].Name
	}
	node := st.Node(o.Node)
	if node == nil {
		return nil, fmt.Errorf("lab %q has no node %q", o.Lab, o.Node)
	}
	if len(o.Command) > 0 {
		if _, err := exec.LookPath(o.Command[0]); err != nil {
			return nil, fmt.Errorf("pod command: %w", err)
		}
	}
	id := make([]byte, 16)
	rand.Read(id)
	p := &Pod{
		Name: o.Name, Namespace: o.Namespace, Node: node.Name,
		NetNS: podNetNSName(o.Lab, o.Namespace, o.Name), ContainerID: hex.EncodeToString(id),
		Labels: o.Labels, Command: o.Command,
	}
	if err := nsutil.Create(p.NetNS); err != nil {
		return nil, err
	}
	if err := writePodEtc(p); err != nil {
		nsutil.Delete(p.NetNS)
		return nil, err
	}
	confList, err := CNIConfList(node, p.Labels)
	if err != nil {
		removePodEtc(p.NetNS)
		nsutil.Delete(p.NetNS)
		return nil, err
	}
	res, err := CNI(st).AddNetworkList(ctx, confList, runtimeConf(p))
	if err != nil {
		removePodEtc(p.NetNS)
		nsutil.Delete(p.NetNS)
		return nil, fmt.Errorf("attach pod %s through seta-cni: %w", p.Key(), err)
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		teardownPod(ctx, st, p)
		return nil, fmt.Errorf("read CNI result: %w", err)
	}
	for _, ip := range r.IPs {
		if ip.Address.IP.To4() != nil {
			p.IPv4 = ip.Address.IP.String()
		} else {
			p.IPv6 = ip.Address.IP.String()
		}
	}
	if len(o.Command) > 0 {
		if err := startPodCommand(st, p); err != nil {
			teardownPod(ctx, st, p)
			return nil, err
		}
		waitReady(st, p, o.Out)
	}
	before := Frontends(st)
	st.Pods = append(st.Pods, p)
	if err := st.Save(); err != nil {
		teardownPod(ctx, st, p)
		return nil, err
	}
	syncIfChanged(ctx, st, before, o.Out)
	return p, nil
}

// podEnv is the environment of every process started in a pod.
func podEnv(p *Pod) []string {
	return append(os.Environ(), "POD_NAME="+p.Name, "POD_NAMESPACE="+p.Namespace, "POD_IP="+p.IPv4, "POD_IPV6="+p.IPv6)
}

// startInPod starts cmd as a process of the pod: in its network namespace,
// in its own mount namespace with the pod's resolv.conf, and in its node's
// cgroup.
func startInPod(st *State, p *Pod, cmd *exec.Cmd) error {
	cg := ""
	if n := st.Node(p.Node); n != nil {
		cg = n.Cgroup
	}
	done, err := inCgroup(cmd, cg)
	if err != nil {
		return err
	}
	defer done()
	return nsutil.StartNamed(p.NetNS, cmd)
}

func startPodCommand(st *State, p *Pod) error {
	p.Log = filepath.Join(Dir(st.Name), "pods", p.Namespace+"_"+p.Name+".log")
	if err := os.MkdirAll(filepath.Dir(p.Log), 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("open pod log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(p.Command[0], p.Command[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = podEnv(p)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := startInPod(st, p, cmd); err != nil {
		return fmt.Errorf("start pod command: %w", err)
	}
	p.Proc = procOf(cmd.Process.Pid)
	go cmd.Wait()
	return nil
}

// teardownPod stops the pod's command, detaches it through seta-cni (DEL)
// and removes its namespace.
func teardownPod(ctx context.Context, st *State, p *Pod) error {
	var errs []error
	if err := p.Proc.Stop(5 * time.Second); err != nil {
		errs = append(errs, err)
	}
	if n := st.Node(p.Node); n != nil {
		if confList, err := CNIConfList(n, p.Labels); err == nil {
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if err := CNI(st).DelNetworkList(dctx, confList, runtimeConf(p)); err != nil {
				errs = append(errs, fmt.Errorf("detach pod %s: %w", p.Key(), err))
			}
			cancel()
		}
	}
	if err := nsutil.Delete(p.NetNS); err != nil {
		errs = append(errs, err)
	}
	if err := removePodEtc(p.NetNS); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DeletePod removes one pod. A pod that services select goes in two
// steps, as a terminating Kubernetes pod does: its backends are first
// pushed as terminating (no new connections, existing ones drain), and
// removed once the pod is gone. Notes go to out (nil discards them).
func DeletePod(ctx context.Context, lab, namespace, name string, out io.Writer) error {
	if err := checkRoot(); err != nil {
		return err
	}
	unlock, err := lock(lab, false)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := Load(lab)
	if err != nil {
		return err
	}
	p := st.Pod(namespace, name)
	if p == nil {
		return fmt.Errorf("lab %q has no pod %s/%s", lab, namespace, name)
	}
	before := Frontends(st)
	p.Terminating = true
	if err := st.Save(); err != nil {
		return err
	}
	syncIfChanged(ctx, st, before, out)
	before = Frontends(st)
	err = teardownPod(ctx, st, p)
	st.RemovePod(p)
	if serr := st.Save(); serr != nil {
		return errors.Join(err, serr)
	}
	syncIfChanged(ctx, st, before, out)
	return err
}

// ExecPod runs a command inside a pod's namespace with the caller's stdio and
// returns its exit code.
func ExecPod(lab, namespace, name string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if err := checkRoot(); err != nil {
		return 0, err
	}
	if len(argv) == 0 {
		return 0, errors.New("pod exec: no command given (seta lab pod exec NAME -- CMD ARGS...)")
	}
	st, err := Load(lab)
	if err != nil {
		return 0, err
	}
	p := st.Pod(namespace, name)
	if p == nil {
		return 0, fmt.Errorf("lab %q has no pod %s/%s", lab, namespace, name)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return 0, fmt.Errorf("pod exec: %w", err)
	}
	cmd := exec.Command(path, argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.Env = podEnv(p)
	if err := startInPod(st, p, cmd); err != nil {
		return 0, fmt.Errorf("pod exec: %w", err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("pod exec: %w", err)
	}
	return 0, nil
}

// PodIP returns a pod's address of the given family (4 or 6).
func PodIP(p *Pod, family int) net.IP {
	if family == 6 {
		return net.ParseIP(p.IPv6)
	}
	return net.ParseIP(p.IPv4)
}
