package cli

import (
	"github.com/spf13/cobra"

	"github.com/seta-net/seta/pkg/cli/output"
	"github.com/seta-net/seta/pkg/datapath/lb"
)

// bpfNATListCmd dumps the pinned NAT map of the tc path: per translated
// connection its forward and its reverse entry.
func bpfNATListCmd(g *globals, bpfRoot *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the NAT entries of service connections translated on the tc path",
		Long: `Dumps the pinned NAT map (seta_lb_nat) of the tc-level service translation:
connections that socket LB did not translate (pods with socket LB off,
processes outside the agent's cgroup, NodePort and external addresses reached
from outside the node).

Each connection has two entries. A forward entry is keyed by the tuple the
client sends (client -> service address) and rewrites the destination to the
backend (and, with SNAT, the source: hairpin, or a NodePort backend on another
node). A reverse entry is keyed by the tuple the backend's replies carry and
restores the service address as their source (and, with SNAT, the client as
destination). Entries outlive their connections until the LRU map reuses
them; a connection is live as long as its conntrack entry is.`,
		Example: `  sudo seta bpf nat list
  sudo seta bpf nat list -o json`,
		Args: cobra.NoArgs,
	}
	o := output.AddFlag(cmd)
	cmd.RunE = bpfList(g, bpfRoot, o, func(cmd *cobra.Command, root string) (any, func(*output.Tab), error) {
		m, err := lb.OpenPinnedNAT(root)
		if err != nil {
			return nil, nil, err
		}
		defer m.Close()
		entries, err := m.Dump()
		if err != nil {
			return nil, nil, err
		}
		rows := lb.NATRows(entries)
		return rows, func(t *output.Tab) {
			t.Row("DIRECTION", "PROTO", "TUPLE", "REWRITE", "BACKEND", "SERVICE", "FLAGS")
			for _, r := range rows {
				t.Row(r.Direction, r.Proto, r.Tuple, r.Rewrite, r.Backend, r.Service, r.Flags)
			}
		}, nil
	})
	return cmd
}
