package cli

import (
	"github.com/spf13/cobra"

	"github.com/seta-net/seta/pkg/cli/output"
	"github.com/seta-net/seta/pkg/datapath/lb"
)

// bpfLBListCmd dumps the pinned load-balancer maps as the datapath sees
// them: each frontend's service entry, then its backend slots.
func bpfLBListCmd(g *globals, bpfRoot *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the service frontends, their backend slots and reverse-NAT entries",
		Long: `Dumps the pinned load-balancer maps: for each frontend (address:port/protocol,
and its internal-scope entry when the traffic policies differ) the service entry
(slot 0: number of backends taking new connections, flags, affinity timeout) and
each backend slot with the backend's address, ID and state. Terminating and
quarantined backends are not in slots: they keep their connections only.`,
		Example: `  sudo seta bpf lb list
  sudo seta bpf lb list -o json`,
		Args: cobra.NoArgs,
	}
	o := output.AddFlag(cmd)
	cmd.RunE = bpfList(g, bpfRoot, o, func(cmd *cobra.Command, root string) (any, func(*output.Tab), error) {
		m, err := lb.OpenPinned(root)
		if err != nil {
			return nil, nil, err
		}
		defer m.Close()
		rows, err := m.List()
		if err != nil {
			return nil, nil, err
		}
		return rows, func(t *output.Tab) {
			t.Row("FRONTEND", "SLOT", "BACKEND", "FLAGS", "REVNAT")
			for _, r := range rows {
				t.Row(r.Frontend, r.Slot, r.Backend, r.Flags, r.RevNat)
			}
		}, nil
	})
	return cmd
}
