package cli

import (
	"github.com/spf13/cobra"

	"github.com/seta-net/seta/pkg/cli/output"
	"github.com/seta-net/seta/pkg/datapath/maps"
)

// bpfCTListCmd dumps the pinned conntrack table, each connection the way
// its opener sent its first packet.
func bpfCTListCmd(g *globals, bpfRoot *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the connections the datapath tracks",
		Long: `Dumps the pinned conntrack table (` + maps.CTMapName + `): one entry per connection,
shown as its opener sent its first packet (opener -> responder), with the
packets the opener sent, the replies it got, and how long the connection stays
live without another packet. Expired entries stay until the LRU map reuses
them. Connections translated from a service address on the tc path are shown
with the backend's address and marked "nat".

POLICY REV is the policy revision the opener's packets were last allowed
under: while it is the datapath's current revision, the connection's forward
packets skip the policy lookups; 0 means its next forward packet is checked.`,
		Example: `  sudo seta bpf ct list
  sudo seta bpf ct list -o json`,
		Args: cobra.NoArgs,
	}
	o := output.AddFlag(cmd)
	cmd.RunE = bpfList(g, bpfRoot, o, func(cmd *cobra.Command, root string) (any, func(*output.Tab), error) {
		m, err := maps.OpenPinnedCTMap(root)
		if err != nil {
			return nil, nil, err
		}
		defer m.Close()
		conns, err := m.Dump()
		if err != nil {
			return nil, nil, err
		}
		rows := maps.CTRows(conns, maps.MonotonicNow())
		return rows, func(t *output.Tab) {
			t.Row("PROTO", "CONNECTION", "PACKETS", "REPLIES", "EXPIRES", "POLICY REV", "FLAGS")
			for _, r := range rows {
				t.Row(r.Proto, r.Tuple, r.Packets, r.Replies, r.Expires, r.PolicyRev, r.Flags)
			}
		}, nil
	})
	return cmd
}
