// Package cli implements the seta command-line tool. Most commands are thin
// views of the agent's REST API (pkg/client); the bpf commands read the
// datapath's pinned maps directly; `seta lab` comes from pkg/lab.
//
// Every command writes its results to cmd.OutOrStdout() and notes to
// cmd.ErrOrStderr(), and returns errors instead of printing them, so that
// Main prints each error exactly once and tests can capture everything.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/seta-net/seta/pkg/client"
	"github.com/seta-net/seta/pkg/lab"
	"github.com/seta-net/seta/pkg/version"
)

// DefaultTimeout bounds each request to the agent unless --timeout says otherwise.
const DefaultTimeout = 10 * time.Second

// globals holds the persistent flags of the root command.
type globals struct {
	socket  string
	timeout time.Duration
}

// client returns an API client for --socket and --timeout.
func (g *globals) client() (*client.Client, error) {
	if g.socket == "" {
		return nil, fmt.Errorf("--socket must not be empty (it names the agent's API socket; $%s sets the default)", client.SocketEnv)
	}
	if g.timeout < 0 {
		return nil, fmt.Errorf("--timeout must not be negative, got %s", g.timeout)
	}
	return client.New(g.socket, g.timeout), nil
}

// NewRoot returns the seta root command with all its subcommands.
func NewRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "seta",
		Short: "Inspect and operate Seta, the eBPF container-networking agent",
		Long: `seta inspects and operates Seta, an eBPF container-networking agent.

How Seta works, in short: a seta-agent runs on every node. When the container
runtime starts a pod, it calls the seta-cni plugin, which asks the agent for an
endpoint: a veth pair between the pod and the node, the pod's IPv4/IPv6
addresses from the node's IPAM pools, and entries in the eBPF maps that the
datapath programs use to forward the pod's traffic.

Most seta commands ask the agent through its API on a unix socket (--socket;
the default comes from $SETA_SOCKET). The 'bpf' commands instead read the
kernel's eBPF maps directly, which shows what the datapath really uses even
when the agent is down; they need root.

Start here:
  seta status              is the agent healthy, what does the kernel support?
  seta endpoint list       the pods on this node, their addresses and devices
  seta endpoint get 1      one endpoint in full, with its traffic counters
  seta policy import F     apply network policies (CiliumNetworkPolicy, NetworkPolicy)
  seta policy trace ...    would the policies let this traffic through, and why?
  seta identity list       the security identities policies match on
  seta service list        load-balanced services and their backends
  seta bpf endpoint list   the datapath's own view of the endpoints
  seta lab up              a whole Seta cluster on this machine to experiment with

Listings take -o json or -o yaml for scripts.`,
		Example: `  seta status
  seta --socket /run/seta/lab/seta/nodes/node1/agent.sock endpoint list
  SETA_SOCKET=/tmp/agent.sock seta endpoint get 3 -o yaml
  sudo seta bpf endpoint list`,
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		// No Args: cobra then reports an unknown subcommand with suggestions.
	}
	root.SetVersionTemplate("seta {{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&g.socket, "socket", client.DefaultSocket(),
		"path of the agent's API unix socket ($"+client.SocketEnv+" sets the default)")
	pf.DurationVar(&g.timeout, "timeout", DefaultTimeout, "time limit for each request to the agent (0 means none)")

	// A mistyped flag gets cobra's error plus a pointer to the command's help,
	// since SilenceUsage keeps cobra from printing the whole usage.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w\nRun '%s --help' for usage.", err, c.CommandPath())
	})

	root.AddCommand(
		versionCmd(g),
		statusCmd(g),
		endpointCmd(g),
		endpointsCmd(g),
		policyCmd(g),
		identityCmd(g),
		serviceCmd(g),
		bpfCmd(g),
		observeCmd(g),
		lab.Command(),
	)
	return root
}

// group makes cmd a command that only holds subcommands: alone it prints its
// help, and an unknown subcommand is an error (cobra itself would print the
// help and exit 0 for a non-root command).
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf("\n\nDid you mean this?\n\t%s\n", s[0])
		}
		return fmt.Errorf("%s\nRun '%s --help' for usage.", msg, c.CommandPath())
	}
	return cmd
}

// Main runs the seta command and returns the process exit code.
func Main() int {
	err := NewRoot().ExecuteContext(context.Background())
	if err == nil {
		return 0
	}
	// `seta lab pod exec` passes the pod command's exit code through; that
	// command has already said what went wrong.
	var ee *lab.ExitError
	if errors.As(err, &ee) && ee.Code > 0 {
		return ee.Code
	}
	fmt.Fprintln(os.Stderr, "seta:", err)
	return 1
}
