package lab

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/seta-net/seta/pkg/cli/output"
	"github.com/seta-net/seta/pkg/client"
)

// NameEnv selects the lab when --name is not given; `seta lab env` sets it.
const NameEnv = "SETA_LAB"

func defaultName() string {
	if s := os.Getenv(NameEnv); s != "" {
		return s
	}
	return DefaultName
}

// Command returns `seta lab` and its subcommands.
func Command() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run a Seta cluster on this machine, in network namespaces",
		Long: `The lab builds a real Seta cluster on one machine: an underlay network
namespace with a bridge, one network namespace per node running its own
seta-agent, and pods as network namespaces attached through the seta-cni
plugin exactly as a container runtime would attach them. Nothing in the lab
is connected to this machine's own interfaces. Needs root.

Each node has its own cgroup (the agent's --cgroup-root, where its pods'
processes run) and a cluster DNS server; pods resolve service names
(NAME.NAMESPACE.svc.cluster.local) through the kube-dns service at
10.96.0.10. The DNS server only knows the lab's services: any other name is
refused, never forwarded.`,
		Example: `  seta lab up
  seta lab pod run web --labels app=web -- seta-nettool serve
  seta lab pod run client -- sleep infinity
  seta lab pod exec client -- ping -c1 10.244.1.2
  seta lab service create web --port 80 --target-port 8080 --selector app=web
  seta lab pod exec client -- seta-nettool http http://web.default.svc.cluster.local/
  eval "$(seta lab env)"; seta endpoint list
  seta lab down`,
	}
	cmd.PersistentFlags().StringVar(&name, "name", defaultName(), "lab name ($"+NameEnv+" sets the default)")
	cmd.AddCommand(upCmd(&name), downCmd(&name), statusCmd(&name), envCmd(&name), podCmd(&name), serviceCmd(&name),
		metricsCmd(&name), dnsServerCmd(&name))
	return cmd
}

func upCmd(name *string) *cobra.Command {
	var nodes int
	var agentArgs []string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create the lab (or repair it) and start its agents",
		Example: `  seta lab up
  seta lab up --name demo --nodes 1 --agent-arg=--attach-mode=clsact`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			agent, cniDir, err := FindBinaries()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			start := time.Now()
			st, err := Up(cmd.Context(), UpOptions{Name: *name, Nodes: nodes, AgentBin: agent, CNIBinDir: cniDir, AgentArgs: agentArgs,
				SetaBin: FindSeta(), Out: out})
			if err != nil {
				return err
			}
			flag := ""
			if *name != DefaultName {
				flag = " --name " + *name
			}
			fmt.Fprintf(out, "Lab %q is up (%s). Try:\n", st.Name, time.Since(start).Round(time.Millisecond))
			fmt.Fprintf(out, "  seta lab%s pod run web --labels app=web -- seta-nettool serve\n", flag)
			fmt.Fprintf(out, "  seta lab%s pod run client -- sleep infinity\n", flag)
			fmt.Fprintf(out, "  seta lab%s pod list\n", flag)
			fmt.Fprintf(out, "  seta lab%s pod exec client -- seta-nettool http http://WEB_IP:8080/\n", flag)
			fmt.Fprintf(out, "  seta lab%s service create web --port 80 --target-port 8080 --selector app=web\n", flag)
			fmt.Fprintf(out, "  seta lab%s pod exec client -- seta-nettool http http://web.default.svc.cluster.local/\n", flag)
			fmt.Fprintf(out, "  eval \"$(seta lab%s env)\" && seta status && seta endpoint list\n", flag)
			fmt.Fprintf(out, "  seta lab%s down\n", flag)
			return nil
		},
	}
	cmd.Flags().IntVar(&nodes, "nodes", 1, fmt.Sprintf("number of nodes (1 to %d)", MaxNodes))
	cmd.Flags().StringArrayVar(&agentArgs, "agent-arg", nil, "extra flag for every seta-agent (repeatable)")
	return cmd
}

func downCmd(name *string) *cobra.Command {
	return &cobra.Command{
		Use:     "down",
		Short:   "Remove the lab: pods, agents, namespaces, pins and state",
		Example: "  seta lab down\n  seta lab down --name demo",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return Down(context.Background(), DownOptions{Name: *name, Out: cmd.OutOrStdout()})
		},
	}
}

// NodeStatus is one row of `seta lab status`.
type NodeStatus struct {
	Name       string `json:"name"`
	NetNS      string `json:"netns"`
	AgentPID   int    `json:"agentPID"`
	Agent      string `json:"agent"`
	Endpoints  int    `json:"endpoints"`
	Datapath   string `json:"datapath,omitempty"`
	PodCIDRv4  string `json:"podCIDRv4"`
	PodCIDRv6  string `json:"podCIDRv6"`
	Socket     string `json:"socket"`
	UnderlayIP string `json:"underlayIP"`
	DNSPID     int    `json:"dnsPID"`
	DNS        string `json:"dns"`
	Cgroup     string `json:"cgroup,omitempty"`
}

// Status reports each node of a lab.
func Status(ctx context.Context, lab string) ([]NodeStatus, *State, error) {
	st, err := Load(lab)
	if err != nil {
		return nil, nil, err
	}
	var out []NodeStatus
	for _, n := range st.Nodes {
		ns := NodeStatus{Name: n.Name, NetNS: n.NetNS, AgentPID: n.Agent.PID, PodCIDRv4: n.PodCIDRv4,
			PodCIDRv6: n.PodCIDRv6, Socket: n.Socket, UnderlayIP: strings.Split(n.UnderlayIP, "/")[0], Agent: "stopped",
			DNSPID: n.DNS.PID, DNS: "stopped", Cgroup: n.Cgroup}
		if n.DNS.Alive() {
			ns.DNS = "running"
		}
		if n.Agent.Alive() {
			ns.Agent = "unhealthy"
			s, err := client.New(n.Socket, 3*time.Second).Status(ctx)
			if err == nil {
				ns.Agent, ns.Endpoints, ns.Datapath = "running", s.Endpoints, s.Datapath.Mode
			}
		}
		out = append(out, ns)
	}
	return out, st, nil
}

func statusCmd(name *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show the lab's nodes, agents and pods",
		Example: "  seta lab status\n  seta lab status -o json",
		Args:    cobra.NoArgs,
	}
	o := output.AddFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		nodes, st, err := Status(cmd.Context(), *name)
		if err != nil {
			return err
		}
		v := map[string]any{"name": st.Name, "nodes": nodes, "pods": len(st.Pods), "services": len(st.Services)}
		return output.Print(cmd.OutOrStdout(), *o, v, func(t *output.Tab) {
			t.Row("NODE", "AGENT", "PID", "DATAPATH", "ENDPOINTS", "DNS", "UNDERLAY", "POD CIDRS", "SOCKET")
			for _, n := range nodes {
				t.Row(n.Name, n.Agent, n.AgentPID, n.Datapath, n.Endpoints, n.DNS, n.UnderlayIP, n.PodCIDRv4+" "+n.PodCIDRv6, n.Socket)
			}
		})
	}
	return cmd
}

func envCmd(name *string) *cobra.Command {
	return &cobra.Command{
		Use:   "env [NODE]",
		Short: "Print shell exports that point seta at a lab node's agent",
		Long: `Prints export lines for a lab node (default: the first), so that after
  eval "$(seta lab env)"
plain seta commands (status, endpoint list, bpf ...) talk to that node's agent
and lab commands use this lab; seta observe and a stock hubble CLI read that
node's flows (HUBBLE_SERVER).`,
		Example: "  eval \"$(seta lab env)\"\n  eval \"$(seta lab env node2)\"",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := Load(*name)
			if err != nil {
				return err
			}
			n := st.Nodes[0]
			if len(args) == 1 {
				if n = st.Node(args[0]); n == nil {
					return fmt.Errorf("lab %q has no node %q", *name, args[0])
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "export %s=%s\nexport %s=%s\nexport HUBBLE_SERVER=%s\n",
				client.SocketEnv, n.Socket, NameEnv, st.Name, n.HubbleServer())
			return nil
		},
	}
}

func podCmd(name *string) *cobra.Command {
	cmd := &cobra.Command{Use: "pod", Short: "Run, inspect and delete lab pods"}
	var namespace string
	cmd.PersistentFlags().StringVarP(&namespace, "namespace", "n", "default", "pod namespace")

	var node, labels string
	run := &cobra.Command{
		Use:   "run NAME [--node N] [--labels k=v,...] [-- CMD ARGS...]",
		Short: "Create a pod attached through seta-cni, optionally running a command in it",
		Long: `Creates a network namespace for the pod, attaches it through the seta-cni
plugin (as a container runtime would, via libcni), then starts CMD inside it
in the background. CMD's output goes to a log file shown by 'pod list -o json'.`,
		Example: `  seta lab pod run web --labels app=web -- seta-nettool serve
  seta lab pod run db -n prod --node node1 -- sleep infinity`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if n := cmd.ArgsLenAtDash(); n > 1 || (n == -1 && len(args) > 1) {
				return fmt.Errorf("put the pod's command after --, e.g. seta lab pod run %s -- sleep infinity", args[0])
			}
			ls, err := ParseLabels(labels)
			if err != nil {
				return err
			}
			p, err := RunPod(cmd.Context(), RunOptions{Lab: *name, Name: args[0], Namespace: namespace, Node: node, Labels: ls, Command: args[1:], Out: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pod %s on %s: %s %s\n", p.Key(), p.Node, p.IPv4, p.IPv6)
			return nil
		},
	}
	run.Flags().StringVar(&node, "node", "", "node to run on (default: the first)")
	run.Flags().StringVar(&labels, "labels", "", "pod labels, k=v,k2=v2")

	exec := &cobra.Command{
		Use:     "exec NAME -- CMD ARGS...",
		Short:   "Run a command inside a pod's network namespace; its exit code is passed through",
		Example: "  seta lab pod exec client -- ping -c1 10.244.1.2",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := ExecPod(*name, namespace, args[0], args[1:], cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}

	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the lab's pods",
		Example: "  seta lab pod list\n  seta lab pod list -o json",
		Args:    cobra.NoArgs,
	}
	lo := output.AddFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		st, err := Load(*name)
		if err != nil {
			return err
		}
		type row struct {
			*Pod
			Running bool `json:"running"`
		}
		rows := []row{}
		for _, p := range st.Pods {
			rows = append(rows, row{Pod: p, Running: p.Proc.Alive()})
		}
		return output.Print(cmd.OutOrStdout(), *lo, rows, func(t *output.Tab) {
			t.Row("NAMESPACE", "NAME", "NODE", "IPV4", "IPV6", "LABELS", "COMMAND")
			for _, r := range rows {
				c := strings.Join(r.Command, " ")
				if len(r.Command) > 0 && !r.Running {
					c += " (exited)"
				}
				t.Row(r.Namespace, r.Name, r.Node, r.IPv4, r.IPv6, strings.Join(r.Labels, ","), c)
			}
		})
	}

	del := &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete pods: stop their command, detach them through seta-cni, remove their namespace",
		Example: "  seta lab pod delete web",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if err := DeletePod(cmd.Context(), *name, namespace, a, cmd.ErrOrStderr()); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "pod %s/%s deleted\n", namespace, a)
			}
			return nil
		},
	}
	cmd.AddCommand(run, exec, list, del)
	return cmd
}

// ExitError carries a command's exit code through cobra to main.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("command exited with code %d", e.Code) }

func metricsCmd(name *string) *cobra.Command {
	return &cobra.Command{
		Use:   "metrics [NODE]",
		Short: "Print a lab node agent's Prometheus metrics",
		Long: `Every lab agent serves Prometheus metrics on ` + MetricsAddr + ` inside its
node's network namespace (which the machine cannot reach); this fetches them
from there.`,
		Example: "  seta lab metrics\n  seta lab metrics node2 | grep seta_drop",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := Load(*name)
			if err != nil {
				return err
			}
			n := st.Nodes[0]
			if len(args) == 1 {
				if n = st.Node(args[0]); n == nil {
					return fmt.Errorf("lab %q has no node %q", *name, args[0])
				}
			}
			body, err := FetchMetrics(n)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(body)
			return err
		},
	}
}
