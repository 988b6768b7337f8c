package cli

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/spf13/cobra"

	"github.com/seta-net/seta/pkg/cli/output"
	"github.com/seta-net/seta/pkg/client"
	"github.com/seta-net/seta/pkg/config"
	"github.com/seta-net/seta/pkg/datapath/maps"
)

func bpfCmd(g *globals) *cobra.Command {
	var bpfRoot string
	cmd := group(&cobra.Command{
		Use:   "bpf",
		Short: "Read the datapath's eBPF maps directly (needs root)",
		Long: `The bpf commands read the eBPF maps that the agent pins on the bpf
filesystem, so they show exactly what the datapath programs see, even while the
agent is down. They need root (or CAP_BPF and CAP_SYS_ADMIN).

The maps live under the agent's --bpf-root. Without --bpf-root, seta asks the
agent where that is; if the agent cannot be reached, pass --bpf-root yourself
(the agent's default is ` + config.DefaultBPFRoot + `).`,
		Example: `  sudo seta bpf endpoint list
  sudo seta bpf endpoint list --bpf-root ` + config.DefaultBPFRoot + `
  sudo seta bpf metrics list -o json
  sudo seta bpf lb list
  sudo seta bpf nat list
  sudo seta bpf ct list`,
	})
	cmd.PersistentFlags().StringVar(&bpfRoot, "bpf-root", "",
		"directory where the agent pins its maps (default: ask the agent)")

	epCmd := group(&cobra.Command{
		Use:     "endpoint",
		Aliases: []string{"ep", "endpoints"},
		Short:   "Read the datapath's endpoints map",
		Example: "  sudo seta bpf endpoint list",
	})
	epCmd.AddCommand(bpfEndpointListCmd(g, &bpfRoot))

	mCmd := group(&cobra.Command{
		Use:     "metrics",
		Aliases: []string{"metric"},
		Short:   "Read the datapath's node-wide forward and drop counters",
		Example: "  sudo seta bpf metrics list",
	})
	mCmd.AddCommand(bpfMetricsListCmd(g, &bpfRoot))

	lbCmd := group(&cobra.Command{
		Use:     "lb",
		Short:   "Read the datapath's service load-balancing maps",
		Example: "  sudo seta bpf lb list",
	})
	lbCmd.AddCommand(bpfLBListCmd(g, &bpfRoot))

	natCmd := group(&cobra.Command{
		Use:     "nat",
		Short:   "Read the datapath's service NAT table (connections translated on the tc path)",
		Example: "  sudo seta bpf nat list",
	})
	natCmd.AddCommand(bpfNATListCmd(g, &bpfRoot))

	ctCmd := group(&cobra.Command{
		Use:     "ct",
		Aliases: []string{"conntrack"},
		Short:   "Read the datapath's connection tracking table",
		Example: "  sudo seta bpf ct list",
	})
	ctCmd.AddCommand(bpfCTListCmd(g, &bpfRoot))

	cmd.AddCommand(epCmd, mCmd, lbCmd, natCmd, ctCmd)
	return cmd
}

// bpfList is the RunE of a `seta bpf X list` command: it checks the output
// flag o, finds the bpffs root, and prints what list reads from the pinned
// map there (its rows, and how they look as a table).
func bpfList(g *globals, bpfRoot, o *string, list func(cmd *cobra.Command, root string) (any, func(*output.Tab), error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if _, err := output.Parse(*o); err != nil {
			return err
		}
		root, err := resolveBPFRoot(cmd, g, *bpfRoot)
		if err != nil {
			return err
		}
		rows, table, err := list(cmd, root)
		if err != nil {
			return err
		}
		return output.Print(cmd.OutOrStdout(), *o, rows, table)
	}
}

// resolveBPFRoot returns --bpf-root, or asks the agent for its bpfRoot.
func resolveBPFRoot(cmd *cobra.Command, g *globals, flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	c, err := g.client()
	if err != nil {
		return "", err
	}
	cfg, err := c.Config(cmd.Context())
	if errors.Is(err, client.ErrUnreachable) {
		return "", fmt.Errorf("cannot ask the agent at %s where its BPF maps are pinned, because it does not answer; "+
			"pass --bpf-root (the agent's default is %s)", c.Socket(), config.DefaultBPFRoot)
	}
	if err != nil {
		return "", fmt.Errorf("ask the agent at %s for its BPF root (or pass --bpf-root): %w", c.Socket(), err)
	}
	if cfg.BPFRoot == "" {
		return "", fmt.Errorf("the agent at %s did not report its BPF root; pass --bpf-root", c.Socket())
	}
	return cfg.BPFRoot, nil
}

// bpfEndpoint is one row of `seta bpf endpoint list`: an entry of the
// endpoints map joined with the endpoint's entry in the stats map.
type bpfEndpoint struct {
	Address    netip.Addr `json:"address"`
	EndpointID uint16     `json:"endpointID"`
	Ifindex    uint32     `json:"ifindex"`
	MAC        string     `json:"mac"`
	NodeMAC    string     `json:"nodeMAC"`
	// Stats is nil if the stats map has no entry for the endpoint.
	Stats *maps.EndpointStats `json:"stats,omitempty"`
}

func bpfEndpointListCmd(g *globals, bpfRoot *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the endpoints map with each endpoint's traffic counters",
		Long: `Dumps the pinned endpoints map: for every pod address, the endpoint ID, the
ifindex of its host-side device, the pod's MAC and the node-side MAC the
datapath rewrites packets with. The counters come from the per-endpoint stats
map: RX is traffic delivered to the pod, TX traffic the pod sent.`,
		Example: `  sudo seta bpf endpoint list
  sudo seta bpf endpoint list --bpf-root /sys/fs/bpf/seta -o json`,
		Args: cobra.NoArgs,
	}
	o := output.AddFlag(cmd)
	cmd.RunE = bpfList(g, bpfRoot, o, func(cmd *cobra.Command, root string) (any, func(*output.Tab), error) {
		rows, err := dumpBPFEndpoints(cmd, root)
		if err != nil {
			return nil, nil, err
		}
		return rows, func(t *output.Tab) {
			t.Row("ADDRESS", "ENDPOINT ID", "IFINDEX", "MAC", "NODE MAC", "RX PKTS", "RX BYTES", "TX PKTS", "TX BYTES")
			for _, r := range rows {
				rx, rxb, tx, txb := "", "", "", ""
				if s := r.Stats; s != nil {
					rx, rxb, tx, txb = fmt.Sprint(s.RxPackets), fmt.Sprint(s.RxBytes), fmt.Sprint(s.TxPackets), fmt.Sprint(s.TxBytes)
				}
				t.Row(r.Address, r.EndpointID, r.Ifindex, r.MAC, r.NodeMAC, rx, rxb, tx, txb)
			}
		}, nil
	})
	return cmd
}

func dumpBPFEndpoints(cmd *cobra.Command, root string) ([]bpfEndpoint, error) {
	em, err := maps.OpenPinnedEndpointMap(root)
	if err != nil {
		return nil, err
	}
	defer em.Close()
	entries, err := em.Dump()
	if err != nil {
		return nil, err
	}
	// Without counters the addresses are still worth showing.
	var stats map[uint16]maps.EndpointStats
	if sm, err := maps.OpenPinnedEpStatsMap(root); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: no counters: %v\n", err)
	} else {
		stats, err = sm.Dump()
		sm.Close()
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: no counters: %v\n", err)
		}
	}
	rows := make([]bpfEndpoint, 0, len(entries))
	for a, v := range entries {
		r := bpfEndpoint{
			Address: a, EndpointID: v.Id, Ifindex: v.Ifindex,
			MAC: net.HardwareAddr(v.Mac[:]).String(), NodeMAC: net.HardwareAddr(v.NodeMac[:]).String(),
		}
		if stats != nil {
			s := stats[v.Id] // an endpoint that counted nothing yet has no entry
			r.Stats = &s
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b bpfEndpoint) int { return a.Address.Compare(b.Address) })
	return rows, nil
}

// bpfMetric is one row of `seta bpf metrics list`.
type bpfMetric struct {
	Reason     maps.Reason `json:"reason"`
	ReasonCode uint8       `json:"reasonCode"`
	Direction  string      `json:"direction"`
	Packets    uint64      `json:"packets"`
	Bytes      uint64      `json:"bytes"`
}

func bpfMetricsListCmd(g *globals, bpfRoot *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the node-wide forward and drop counters by reason and direction",
		Long: `Dumps the pinned metrics map: how many packets and bytes the datapath
forwarded or dropped on this node, by reason and direction (ingress: towards a
pod; egress: sent by a pod). A growing drop reason points at the problem.`,
		Example: `  sudo seta bpf metrics list
  sudo seta bpf metrics list --bpf-root /sys/fs/bpf/seta -o yaml`,
		Args: cobra.NoArgs,
	}
	o := output.AddFlag(cmd)
	cmd.RunE = bpfList(g, bpfRoot, o, func(cmd *cobra.Command, root string) (any, func(*output.Tab), error) {
		mm, err := maps.OpenPinnedMetricsMap(root)
		if err != nil {
			return nil, nil, err
		}
		defer mm.Close()
		m, err := mm.Dump()
		if err != nil {
			return nil, nil, err
		}
		rows := make([]bpfMetric, 0, len(m))
		for k, v := range m {
			rows = append(rows, bpfMetric{Reason: k.Reason, ReasonCode: uint8(k.Reason), Direction: k.Direction, Packets: v.Packets, Bytes: v.Bytes})
		}
		slices.SortFunc(rows, func(a, b bpfMetric) int {
			return cmp.Or(cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.Direction, b.Direction))
		})
		return rows, func(t *output.Tab) {
			t.Row("REASON", "DIRECTION", "PACKETS", "BYTES")
			for _, r := range rows {
				t.Row(r.Reason, r.Direction, r.Packets, r.Bytes)
			}
		}, nil
	})
	return cmd
}
